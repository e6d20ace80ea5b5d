using System.Net;
using System.Net.Sockets;
using Engine.Client;
using Engine.Protocol;

namespace Engine.IntegrationTests;

/// <summary>
/// The client's window when answers come out of order: a scripted engine on a real socket holds
/// the first request (as a primary that lost its backup holds what waits at its ack gate) and
/// rejects every later one at once (as it answers new requests "no backup").
/// </summary>
public class ClientWindowTests
{
    [Test]
    public async Task An_old_unanswered_request_holds_the_window_and_no_request_is_ever_lost_track_of()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var release = new TaskCompletionSource();
        Task engine = Task.Run(async () =>
        {
            using Socket socket = await listener.AcceptSocketAsync();
            var buffer = new byte[Frame.HeaderBytes + ReplyCodec.LogonBodyBytes];
            await ReadExactly(socket, buffer);
            var ack = new LogonAck { ClientId = 1, Status = LogonStatus.Ok, LastClientSeq = 0, Epoch = 1 };
            var frame = new byte[ReplyCodec.MaxFrameBytes];
            await socket.SendAsync(frame.AsMemory(0, ReplyCodec.EncodeLogonAck(in ack, frame)));
            var request = new byte[Frame.HeaderBytes + TransactionCodec.NewOrderBodyBytes];
            Transaction held = default;
            for (int i = 0; i < 24; i++)
            {
                await ReadExactly(socket, request);
                Assert.That(TransactionCodec.Decode(request, out Transaction tx), Is.EqualTo(RejectReason.None));
                if (tx.ClientSeq == 1)
                {
                    held = tx; // answered only when the test says so
                    _ = release.Task.ContinueWith(async _ =>
                    {
                        var answer = new byte[ReplyCodec.MaxFrameBytes];
                        await socket.SendAsync(answer.AsMemory(0, ReplyCodec.EncodeRejected(1, held.ClientSeq, RejectReason.NoBackup, 0, "no backup", answer)));
                    }, TaskScheduler.Default);
                    continue;
                }
                await socket.SendAsync(frame.AsMemory(0, ReplyCodec.EncodeRejected(1, tx.ClientSeq, RejectReason.NoBackup, 0, "no backup", frame)));
            }
        });

        await using EngineClient client = await EngineClient.ConnectAsync(new ClientOptions
        {
            Endpoints = [$"127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}"],
            ClientId = 1,
            Token = "t",
            MaxInFlight = 4,
            AnswerTimeout = TimeSpan.FromMinutes(1),
        });
        int answered = 0;
        client.Answered += _ => Interlocked.Increment(ref answered);
        // Seqs 1-4 fill the window and 2-4 are answered at once; with 4 slots, seq 5 maps to seq 1's
        // slot, still held: the sender must wait there, however many later answers came back.
        int sent = 0;
        for (int i = 0; i < 8; i++)
        {
            Transaction tx = Transaction.NewOrder(0, 0, 1, 1, (ulong)i + 1, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 1000, 1);
            if (!client.TrySend(ref tx, timeoutMs: 300))
            {
                break;
            }
            sent++;
        }
        Assert.That(sent, Is.EqualTo(4), "the fifth request waits for the first's slot");
        WaitUntil(() => Volatile.Read(ref answered) == 3, "seqs 2-4 answered");
        Assert.That(client.InFlight, Is.EqualTo(1), "only the held request is in flight");

        // The held request is answered: its slot frees and sending goes on.
        release.SetResult();
        WaitUntil(() => Volatile.Read(ref answered) == 4, "the held request answered");
        for (int i = 0; i < 20; i++)
        {
            Transaction tx = Transaction.NewOrder(0, 0, 1, 1, (ulong)i + 100, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 1000, 1);
            Assert.That(client.TrySend(ref tx, timeoutMs: 5_000), Is.True, $"request {i} after the release");
        }
        WaitUntil(() => Volatile.Read(ref answered) == 24 && client.InFlight == 0, "every request answered and none left counted in flight");
        await engine.WaitAsync(TimeSpan.FromSeconds(30));
    }

    private static void WaitUntil(Func<bool> condition, string what)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(30)), $"timed out waiting for {what}");
            Thread.Sleep(5);
        }
    }

    private static async Task ReadExactly(Socket socket, byte[] buffer)
    {
        int got = 0;
        while (got < buffer.Length)
        {
            int read = await socket.ReceiveAsync(buffer.AsMemory(got), SocketFlags.None);
            if (read == 0)
            {
                throw new IOException("closed");
            }
            got += read;
        }
    }
}
