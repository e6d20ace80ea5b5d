using System.Diagnostics;
using System.Net.Sockets;
using Engine.Client;
using Engine.IntegrationTests.Support;
using Engine.Protocol;

namespace Engine.IntegrationTests;

/// <summary>
/// A frozen engine (SIGSTOP, a long pause) keeps its sockets open: its clients can only tell it is
/// gone by its silence. The engine heartbeats every session it has sent nothing for a while; a client
/// that hears nothing for its silence timeout fails over, instead of waiting out its answer timeout
/// (or, with nothing in flight, for ever).
/// </summary>
public class HeartbeatTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    [Test]
    public async Task An_idle_session_that_asks_hears_heartbeats()
    {
        using var server = new EngineServer();
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync("127.0.0.1", server.Port);
        var logon = new byte[Frame.HeaderBytes + ReplyCodec.LogonBodyBytes];
        ReplyCodec.EncodeLogon(1, "dev-token-1", logon, heartbeatMs: 50);
        await socket.SendAsync(logon);

        var frame = new byte[ReplyCodec.MaxFrameBytes];
        await ReadFrame(socket, frame, Frame.HeaderBytes + ReplyCodec.LogonAckBodyBytes);
        Assert.That(ReplyCodec.DecodeLogonAck(frame.AsSpan(0, Frame.HeaderBytes + ReplyCodec.LogonAckBodyBytes), out LogonAck ack), Is.EqualTo(RejectReason.None));
        Assert.That(ack.Status, Is.EqualTo(LogonStatus.Ok));

        // Nothing sent: the next frames are heartbeats, well-formed, with no body.
        for (int i = 0; i < 3; i++)
        {
            await ReadFrame(socket, frame, ReplyCodec.HeartbeatFrameBytes);
            Assert.That(Frame.Check(frame.AsSpan(0, ReplyCodec.HeartbeatFrameBytes), out MessageType type, out ReadOnlySpan<byte> body), Is.EqualTo(RejectReason.None));
            Assert.That(type, Is.EqualTo(MessageType.Heartbeat));
            Assert.That(body.Length, Is.Zero);
        }
    }

    /// <summary>A client from before heartbeats (its logon asks for none) is sent none: only answers to what it sent.</summary>
    [Test]
    public async Task A_session_that_does_not_ask_hears_no_heartbeat()
    {
        using var server = new EngineServer();
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync("127.0.0.1", server.Port);
        var logon = new byte[Frame.HeaderBytes + ReplyCodec.LogonBodyBytes];
        ReplyCodec.EncodeLogon(2, "dev-token-2", logon);
        await socket.SendAsync(logon);
        var frame = new byte[ReplyCodec.MaxFrameBytes];
        await ReadFrame(socket, frame, Frame.HeaderBytes + ReplyCodec.LogonAckBodyBytes);

        await Task.Delay(300); // idle for many of the engine's heartbeat intervals (20 ms at least)
        Transaction order = Order(1);
        order.ClientId = 2;
        order.ClientSeq = 1;
        var request = new byte[TransactionCodec.MaxFrameBytes];
        await socket.SendAsync(request.AsMemory(0, TransactionCodec.Encode(in order, request)));

        await ReadFrame(socket, frame, Frame.HeaderBytes + ReplyCodec.AcceptedBodyBytes);
        Assert.That(ReplyCodec.DecodeAccepted(frame.AsSpan(0, Frame.HeaderBytes + ReplyCodec.AcceptedBodyBytes), out Receipt receipt), Is.EqualTo(RejectReason.None),
            "the first frame after the logon answer is the order's");
        Assert.That(receipt.ClientSeq, Is.EqualTo(1UL));
    }

    [Test]
    public async Task A_client_leaves_a_frozen_engine_for_its_silence_not_its_answer_timeout()
    {
        using var server = new EngineServer();
        await using EngineClient client = await EngineClient.ConnectAsync(new ClientOptions
        {
            Endpoints = [server.Endpoint],
            ClientId = 1,
            Token = "dev-token-1",
            SilenceTimeout = TimeSpan.FromMilliseconds(300),
            AnswerTimeout = TimeSpan.FromMinutes(10), // never the reason here
            ReconnectFor = TimeSpan.FromMinutes(1),
        });
        int reconnects = 0;
        client.Reconnected += (_, _) => Interlocked.Increment(ref reconnects);
        SubmitResult first = await client.SubmitAsync(Order(1));
        Assert.That(first.Accepted, Is.True);

        Assert.That(server.Process.Signal("STOP"), Is.True, "SIGSTOP");
        try
        {
            // Idle, nothing in flight: only the silence can tell.
            WaitUntil(() => client.SilenceFailovers >= 1, "the client to give up the frozen engine for its silence");
        }
        finally
        {
            server.Process.Signal("CONT"); // in a finally: an assertion here would hide the test's own failure
        }

        WaitUntil(() => Volatile.Read(ref reconnects) >= 1, "the client to log on again once the engine is back");
        SubmitResult next = await client.SubmitAsync(Order(2));
        Assert.That(next.Accepted, Is.True);
    }

    private static Transaction Order(ulong id) => Transaction.NewOrder(0, 0, 1, 1, id, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 990, 1);

    private static async Task ReadFrame(Socket socket, byte[] buffer, int bytes)
    {
        int got = 0;
        using var timeout = new CancellationTokenSource(Wait);
        while (got < bytes)
        {
            int read = await socket.ReceiveAsync(buffer.AsMemory(got, bytes - got), SocketFlags.None, timeout.Token);
            Assert.That(read, Is.GreaterThan(0), "the engine closed the connection");
            got += read;
        }
    }

    private static void WaitUntil(Func<bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.That(clock.Elapsed, Is.LessThan(Wait), $"timed out waiting for {what}");
            Thread.Sleep(5);
        }
    }
}
