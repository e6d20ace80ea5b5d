using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text.Json;
using Engine.Cli;
using Engine.Client;
using Engine.Core.Server;
using Engine.IntegrationTests.Support;
using Engine.Protocol;

namespace Engine.IntegrationTests;

/// <summary>A real <c>engine serve</c> process, driven through <see cref="EngineClient"/> and raw sockets.</summary>
public class ServeTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private static Transaction Limit(ulong id, Side side, long price, long quantity, uint account = 1) =>
        Transaction.NewOrder(0, 0, account, 1, id, side, OrderType.Limit, TimeInForce.Gtc, price, quantity);

    [Test]
    public async Task Orders_get_receipts_and_both_sides_get_their_fills()
    {
        using var server = new EngineServer();
        await using EngineClient buyer = await server.ConnectAsync(1);
        await using EngineClient seller = await server.ConnectAsync(2);
        var buyerReports = new List<ExecutionReport>();
        var sellerReports = new List<ExecutionReport>();
        buyer.Executed += r => { lock (buyerReports) { buyerReports.Add(r); } };
        seller.Executed += r => { lock (sellerReports) { sellerReports.Add(r); } };

        SubmitResult bid = await buyer.SubmitAsync(Limit(1, Side.Buy, 1000, 10));
        SubmitResult ask = await seller.SubmitAsync(Limit(7, Side.Sell, 1000, 4));
        SubmitResult badTick = await seller.SubmitAsync(Transaction.NewOrder(0, 0, 1, 2, 8, Side.Sell, OrderType.Limit, TimeInForce.Gtc, 1003, 1));
        SubmitResult foreign = await seller.SubmitAsync(Transaction.Cancel(0, 0, 1, 1, 9, 1));

        Assert.Multiple(() =>
        {
            Assert.That(bid.Accepted, Is.True, bid.ToString());
            Assert.That(bid.Receipt.Lsn, Is.EqualTo(EngineServer.InitialLsns + 1), "the first order after the new ledger's reference data");
            Assert.That(bid.Receipt.BlockNo, Is.GreaterThanOrEqualTo(1));
            Assert.That(ask.Accepted, Is.True, ask.ToString());
            Assert.That(ask.Receipt.Lsn, Is.EqualTo(EngineServer.InitialLsns + 2));
            Assert.That(badTick.Rejection.Reason, Is.EqualTo(RejectReason.PriceNotOnTick), "GLOBEX has a tick of 5");
            Assert.That(badTick.Rejection.Lsn, Is.Zero, "a validation rejection never reaches the ledger");
            Assert.That(foreign.Rejection.Reason, Is.EqualTo(RejectReason.UnknownOrder), "a client cannot cancel another's order");
            Assert.That(foreign.Rejection.Lsn, Is.EqualTo(EngineServer.InitialLsns + 3), "a state rejection is logged");
        });
        Until(() => { lock (buyerReports) { return buyerReports.Count == 1; } }, "the buyer's fill");
        Until(() => { lock (sellerReports) { return sellerReports.Count == 1; } }, "the seller's fill");
        Assert.Multiple(() =>
        {
            Assert.That(buyerReports[0].ExecType, Is.EqualTo(ExecType.PartialFill));
            Assert.That(buyerReports[0].LeavesQuantity, Is.EqualTo(6));
            Assert.That(sellerReports[0].ExecType, Is.EqualTo(ExecType.Fill));
            Assert.That(sellerReports[0].TradeId, Is.EqualTo(buyerReports[0].TradeId));
            Assert.That(sellerReports[0].LastPrice, Is.EqualTo(1000));
        });

        NodeStatusReport status = await server.StatusAsync();
        Assert.That(status.State!.Trades, Is.EqualTo(1UL));
        NodeStatusReport light = await server.StatusAsync(state: false);
        Assert.That(light.State, Is.Null, "?state=false walks no book");
        Assert.That(light.Status!.Applied, Is.GreaterThan(0));
    }

    [Test]
    public async Task A_resent_request_gets_the_original_receipt_and_is_not_journaled_twice()
    {
        using var server = new EngineServer();
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync("127.0.0.1", server.Port);
        await socket.SendAsync(Logon(8));
        await ReadAtLeast(socket, Frame.HeaderBytes + ReplyCodec.LogonAckBodyBytes);

        var order = Transaction.NewOrder(8, 1, 1, 1, 1, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 1000, 5);
        var frame = new byte[TransactionCodec.MaxFrameBytes];
        int length = TransactionCodec.Encode(in order, frame);
        await socket.SendAsync(frame.AsMemory(0, length));
        await socket.SendAsync(frame.AsMemory(0, length)); // a client resending after a lost connection

        int accepted = Frame.HeaderBytes + ReplyCodec.AcceptedBodyBytes;
        var replies = new byte[2 * accepted];
        await ReadInto(socket, replies);
        Assert.That(ReplyCodec.DecodeAccepted(replies.AsSpan(0, accepted), out Receipt first), Is.EqualTo(RejectReason.None));
        Assert.That(ReplyCodec.DecodeAccepted(replies.AsSpan(accepted, accepted), out Receipt second), Is.EqualTo(RejectReason.None));
        Assert.That(second, Is.EqualTo(first), "the same receipt, LSN and block hash");

        NodeStatus status = (await server.StatusAsync()).Status!;
        Assert.Multiple(() =>
        {
            Assert.That(status.Lsn, Is.EqualTo(EngineServer.InitialLsns + 1), "journaled once");
            Assert.That(status.Duplicates, Is.EqualTo(1));
            Assert.That(status.ReceiveToAnswer!.Count, Is.EqualTo(2), "both answers timed in /status, from the read to the socket");
            Assert.That(status.ReceiveToAnswer.P50Us, Is.GreaterThan(0));
        });
    }

    [Test]
    public void A_wrong_token_is_refused()
    {
        using var server = new EngineServer();
        var error = Assert.ThrowsAsync<UnauthorizedAccessException>(async () => await server.ConnectAsync(1, "not-the-token"));
        Assert.That(error!.Message, Does.Contain("BadCredentials"));
        // The engine logs asynchronously: wait for the line rather than race it.
        server.Process.WaitForLog(o => o.Contains("logon refused for client 1", StringComparison.Ordinal), "the refusal in the engine's log", Wait);
    }

    [Test]
    public async Task Garbage_and_oversized_frames_close_only_that_session()
    {
        using var server = new EngineServer();
        await using EngineClient good = await server.ConnectAsync(3);
        Assert.That((await good.SubmitAsync(Limit(1, Side.Buy, 990, 1))).Accepted, Is.True);

        foreach (byte[] poison in new[] { Oversized(), RandomBytes() })
        {
            using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync("127.0.0.1", server.Port);
            await socket.SendAsync(Logon(4));
            await ReadAtLeast(socket, Frame.HeaderBytes + ReplyCodec.LogonAckBodyBytes);
            await socket.SendAsync(poison);
            Assert.That(await ClosedByPeer(socket), Is.True, "the engine closes a session that sends garbage");
        }

        // The other session is untouched.
        Assert.That((await good.SubmitAsync(Limit(2, Side.Buy, 990, 1))).Accepted, Is.True);
        server.Process.WaitForLog(o => o.Contains("protocol violation", StringComparison.Ordinal), "the violation in the engine's log", Wait);

        static byte[] Oversized()
        {
            var frame = new byte[16];
            BinaryPrimitives.WriteUInt32LittleEndian(frame, 1 << 20);
            return frame;
        }

        static byte[] RandomBytes()
        {
            var bytes = new byte[64];
            new Random(5).NextBytes(bytes);
            bytes[0] = 0xFF; // a length far above the limit
            return bytes;
        }
    }

    [Test]
    public async Task A_client_that_never_reads_is_disconnected_without_slowing_others()
    {
        using var server = new EngineServer(environment: new Dictionary<string, string> { ["ENGINE_MAXOUTBOUNDBYTESPERSESSION"] = "65536" });
        using var silent = new Socket(SocketType.Stream, ProtocolType.Tcp);
        silent.ReceiveBufferSize = 4096;
        await silent.ConnectAsync("127.0.0.1", server.Port);
        await silent.SendAsync(Logon(5));

        // Stream orders and never read a reply: the session's 64 KiB outbound buffer must overflow.
        var frame = new byte[TransactionCodec.MaxFrameBytes];
        bool cut = false;
        for (ulong seq = 1; seq <= 400_000 && !cut; seq++)
        {
            var tx = Transaction.NewOrder(5, seq, 1, 1, seq, Side.Buy, OrderType.Limit, TimeInForce.Ioc, 900, 1);
            int length = TransactionCodec.Encode(in tx, frame);
            try
            {
                await silent.SendAsync(frame.AsMemory(0, length));
            }
            catch (SocketException)
            {
                cut = true;
            }
            if (seq % 10_000 == 0 && server.Process.LogText.Contains("the client does not read", StringComparison.Ordinal))
            {
                cut = true;
            }
        }
        server.Process.WaitForLog(o => o.Contains("the client does not read", StringComparison.Ordinal), "the slow reader to be disconnected", Wait);

        await using EngineClient other = await server.ConnectAsync(6);
        SubmitResult result = await other.SubmitAsync(Limit(1, Side.Sell, 2000, 1));
        Assert.That(result.Accepted, Is.True, "another client is served as usual");
    }

    [Test]
    public async Task A_client_that_reads_late_gets_every_answer_in_order_once_it_reads()
    {
        // The session's outbound buffers start at 64 KiB and grow toward their limit (16 MiB here): the
        // fill reports of 80,000 trades against one resting order (~7 MB, more than the kernel's 4 MiB
        // send buffer holds) wait in them while its owner reads nothing, and none is lost or reordered.
        using var server = new EngineServer(environment: new Dictionary<string, string> { ["ENGINE_MAXOUTBOUNDBYTESPERSESSION"] = (16 << 20).ToString(System.Globalization.CultureInfo.InvariantCulture) });
        using var late = new Socket(SocketType.Stream, ProtocolType.Tcp);
        late.ReceiveBufferSize = 4096;
        await late.ConnectAsync("127.0.0.1", server.Port);
        await late.SendAsync(Logon(8));
        const int Fills = 80_000;
        var frame = new byte[TransactionCodec.MaxFrameBytes];
        var resting = Transaction.NewOrder(8, 1, 1, 1, 1, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 900, Fills);
        await late.SendAsync(frame.AsMemory(0, TransactionCodec.Encode(in resting, frame)));

        await using (EngineClient seller = await server.ConnectAsync(9))
        {
            for (int sent = 0; sent < Fills; sent += 500)
            {
                SubmitResult[] results = await Task.WhenAll(Enumerable.Range(sent, 500).Select(k => seller.SubmitAsync(Limit((ulong)k + 1, Side.Sell, 900, 1, account: 2))));
                Assert.That(results.All(r => r.Accepted), Is.True, "every sell accepted");
            }
        }

        // Now read: the logon's answer, the order's receipt, then one fill report per trade, in order.
        var buffer = new byte[1 << 16];
        int filled = 0;
        long cumulative = 0;
        int kinds = 0;
        using var timeout = new CancellationTokenSource(Wait);
        while (cumulative < Fills)
        {
            int read = await late.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, timeout.Token);
            Assert.That(read, Is.Not.Zero, $"the engine closed the session after {cumulative} fills");
            filled += read;
            int offset = 0;
            while (filled - offset >= 4 && filled - offset >= Frame.PeekLength(buffer.AsSpan(offset)))
            {
                int length = Frame.PeekLength(buffer.AsSpan(offset));
                ReadOnlySpan<byte> reply = buffer.AsSpan(offset, length);
                Assert.That(Frame.Check(reply, out MessageType type, out _), Is.EqualTo(RejectReason.None));
                kinds |= type switch { MessageType.LogonAck => 1, MessageType.Accepted => 2, _ => 0 };
                if (type == MessageType.ExecutionReport)
                {
                    Assert.That(ReplyCodec.DecodeExecutionReport(reply, out ExecutionReport report), Is.EqualTo(RejectReason.None));
                    Assert.That(report.CumQuantity, Is.EqualTo(cumulative + 1), "the fills in the order they happened, none missing");
                    cumulative = report.CumQuantity;
                }
                offset += length;
            }
            buffer.AsSpan(offset, filled - offset).CopyTo(buffer);
            filled -= offset;
        }
        Assert.That(kinds, Is.EqualTo(3), "the logon's answer and the order's receipt came first");
        Assert.That(server.Process.LogText, Does.Not.Contain("the client does not read"));
    }

    [Test]
    public async Task After_sigkill_a_restart_has_every_acked_order_and_the_same_state()
    {
        using var server = new EngineServer(extraArgs: ["--durability", "disk"]);
        var receipts = new List<Receipt>();
        await using (EngineClient client = await server.ConnectAsync(7))
        {
            var random = new Random(3);
            var pending = new List<Task<SubmitResult>>();
            for (ulong id = 1; id <= 2000; id++)
            {
                var side = random.Next(2) == 0 ? Side.Buy : Side.Sell;
                pending.Add(client.SubmitAsync(Limit(id, side, 995 + random.Next(10), 1 + random.Next(20), account: (uint)random.Next(1, 4))));
            }
            foreach (SubmitResult result in await Task.WhenAll(pending))
            {
                Assert.That(result.Accepted, Is.True, result.ToString());
                receipts.Add(result.Receipt);
            }
        }
        NodeStateSummary before = (await server.StatusAsync()).State!;

        server.KillHard();
        server.Start();

        NodeStateSummary after = (await server.StatusAsync()).State!;
        Assert.Multiple(() =>
        {
            Assert.That(after.Lsn, Is.EqualTo(before.Lsn));
            Assert.That(after.Checksum, Is.EqualTo(before.Checksum));
            Assert.That(after.OpenOrders, Is.EqualTo(before.OpenOrders));
        });

        // Every receipt's LSN holds that very request in the journal, and the client resumes after its last seq.
        using var verify = EngineProcess.Start("log", "dump", server.JournalDirectory, "--json");
        Assert.That(verify.WaitForExit(Wait), Is.Zero, verify.StdErr);
        var journaled = verify.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => JsonDocument.Parse(line).RootElement)
            .ToDictionary(e => e.GetProperty("lsn").GetUInt64(), e => (e.GetProperty("client_id").GetUInt32(), e.GetProperty("client_seq").GetUInt64()));
        foreach (Receipt receipt in receipts)
        {
            Assert.That(journaled[receipt.Lsn], Is.EqualTo((receipt.ClientId, receipt.ClientSeq)), $"lsn {receipt.Lsn}");
        }
        await using EngineClient again = await server.ConnectAsync(7);
        Assert.That(again.LastClientSeqAtLogon, Is.EqualTo(2000UL));
        SubmitResult next = await again.SubmitAsync(Limit(5000, Side.Buy, 900, 1));
        Assert.That(next.Accepted, Is.True);
        Assert.That(next.Receipt.ClientSeq, Is.EqualTo(2001UL));
    }

    private static byte[] Logon(uint clientId)
    {
        var frame = new byte[Frame.HeaderBytes + ReplyCodec.LogonBodyBytes];
        ReplyCodec.EncodeLogon(clientId, $"dev-token-{clientId}", frame);
        return frame;
    }

    private static async Task ReadAtLeast(Socket socket, int bytes)
    {
        var buffer = new byte[bytes];
        int got = 0;
        using var timeout = new CancellationTokenSource(Wait);
        while (got < bytes)
        {
            int read = await socket.ReceiveAsync(buffer.AsMemory(got), SocketFlags.None, timeout.Token);
            Assert.That(read, Is.GreaterThan(0), "the engine closed the connection during logon");
            got += read;
        }
    }

    private static async Task ReadInto(Socket socket, byte[] buffer)
    {
        int got = 0;
        using var timeout = new CancellationTokenSource(Wait);
        while (got < buffer.Length)
        {
            int read = await socket.ReceiveAsync(buffer.AsMemory(got), SocketFlags.None, timeout.Token);
            Assert.That(read, Is.GreaterThan(0), "the engine closed the connection");
            got += read;
        }
    }

    private static async Task<bool> ClosedByPeer(Socket socket)
    {
        var buffer = new byte[1024];
        using var timeout = new CancellationTokenSource(Wait);
        try
        {
            while (true)
            {
                if (await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token) == 0)
                {
                    return true;
                }
            }
        }
        catch (SocketException)
        {
            return true;
        }
    }

    private static void Until(Func<bool> condition, string what)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > Wait)
            {
                Assert.Fail($"timed out waiting for {what}");
            }
            Thread.Sleep(2);
        }
    }
}
