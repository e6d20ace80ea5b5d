using System.Net.Sockets;
using System.Text.Json;
using Engine.Cli;
using Engine.Client;
using Engine.IntegrationTests.Support;
using Engine.Protocol;

namespace Engine.IntegrationTests;

/// <summary>How operators run the engine: configuration, shutdown, back-pressure, the load generator.</summary>
public class OperationsTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    [Test]
    public async Task Sigterm_drains_commits_and_exits_zero_and_a_restart_has_the_same_state()
    {
        using var server = new EngineServer();
        await using (EngineClient client = await server.ConnectAsync(9))
        {
            var pending = Enumerable.Range(1, 500).Select(i => client.SubmitAsync(
                Transaction.NewOrder(0, 0, 1, 1, (ulong)i, i % 2 == 0 ? Side.Buy : Side.Sell, OrderType.Limit, TimeInForce.Gtc, 990 + i % 20, 5))).ToList();
            Assert.That((await Task.WhenAll(pending)).All(r => r.Accepted), Is.True);
        }
        NodeStateSummary before = (await server.StatusAsync()).State!;

        using (var kill = System.Diagnostics.Process.Start("kill", ["-TERM", server.Process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            kill.WaitForExit();
        }
        Assert.That(server.Process.WaitForExit(Wait), Is.Zero, "SIGTERM is a clean stop");
        Assert.That(server.Process.LogText, Does.Contain("inbound drained, outbound drained"));

        server.Start();
        NodeStateSummary after = (await server.StatusAsync()).State!;
        Assert.That(after.Checksum, Is.EqualTo(before.Checksum));
        Assert.That(after.Lsn, Is.EqualTo(EngineServer.InitialLsns + 500));
    }

    [Test]
    public async Task A_configuration_file_replaces_the_development_set_and_flags_override_it()
    {
        string config = Path.Combine(Path.GetTempPath(), $"engine-config-{Guid.NewGuid():N}.json");
        await File.WriteAllTextAsync(config, """
            {
              "Durability": "Disk",
              "MaxInFlightPerClient": 16,
              "Instruments": [ { "Id": 7, "Symbol": "ZETA", "TickSize": 10 } ],
              "Accounts": [ { "Id": 70, "MaxOrderQuantity": 100, "MaxOrderNotional": 1000000, "MaxOpenOrders": 5 } ],
              "Clients": [ { "Id": 42, "Token": "s3cret", "Accounts": [ 70 ] } ]
            }
            """);
        try
        {
            using var server = new EngineServer(extraArgs: ["--config", config, "--durability", "memory"]);
            Assert.That(server.Process.LogText, Does.Contain($"configuration file {config}: 1 instruments, 1 accounts, 1 clients"));
            Assert.That(server.Process.LogText, Does.Contain("durability memory"), "the flag wins over the file");
            Assert.That(server.Process.LogText, Does.Contain("in-flight ≤ 16/client"), "the file wins over the default");

            Assert.ThrowsAsync<UnauthorizedAccessException>(async () => await server.ConnectAsync(1), "the development clients are gone");
            await using EngineClient client = await server.ConnectAsync(42, "s3cret");
            SubmitResult tooBig = await client.SubmitAsync(Transaction.NewOrder(0, 0, 70, 7, 1, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 100, 101));
            SubmitResult wrongAccount = await client.SubmitAsync(Transaction.NewOrder(0, 0, 1, 7, 2, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 100, 1));
            SubmitResult fine = await client.SubmitAsync(Transaction.NewOrder(0, 0, 70, 7, 3, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 100, 1));
            Assert.Multiple(() =>
            {
                Assert.That(tooBig.Rejection.Reason, Is.EqualTo(RejectReason.RiskMaxQuantity));
                Assert.That(wrongAccount.Rejection.Reason, Is.EqualTo(RejectReason.AccountNotAllowed));
                Assert.That(fine.Accepted, Is.True, fine.ToString());
            });
        }
        finally
        {
            File.Delete(config);
        }
    }

    [Test]
    public void A_bad_setting_is_refused_with_its_name()
    {
        using var serve = EngineProcess.Start(new Dictionary<string, string> { ["ENGINE_RINGSIZE"] = "1000" },
            "serve", "--data", Path.Combine(Path.GetTempPath(), $"never-{Guid.NewGuid():N}"), "--listen", "127.0.0.1:0");
        Assert.That(serve.WaitForExit(Wait), Is.EqualTo(2));
        Assert.That(serve.StdErr, Does.Contain("power of two"));

        using var noData = EngineProcess.Start("serve", "--listen", "127.0.0.1:0");
        Assert.That(noData.WaitForExit(Wait), Is.EqualTo(2));
        Assert.That(noData.StdErr, Does.Contain("--data is required"));
    }

    [Test]
    public async Task Requests_beyond_the_in_flight_limit_are_answered_busy_at_once()
    {
        using var server = new EngineServer(environment: new Dictionary<string, string> { ["ENGINE_MAXINFLIGHTPERCLIENT"] = "8" });
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync("127.0.0.1", server.Port);
        var logon = new byte[Frame.HeaderBytes + ReplyCodec.LogonBodyBytes];
        ReplyCodec.EncodeLogon(11, "dev-token-11", logon);
        await socket.SendAsync(logon);

        // 200 requests in one write: the session takes at most 8 into the engine at a time.
        var burst = new byte[200 * 60];
        for (int i = 0; i < 200; i++)
        {
            var tx = Transaction.NewOrder(11, (ulong)i + 1, 1, 1, (ulong)i + 1, Side.Buy, OrderType.Limit, TimeInForce.Ioc, 900, 1);
            TransactionCodec.Encode(in tx, burst.AsSpan(i * 60));
        }
        await socket.SendAsync(burst);

        int busy = 0, answered = 0;
        var buffer = new byte[64 * 1024];
        int filled = 0;
        using var timeout = new CancellationTokenSource(Wait);
        bool ackSeen = false;
        while (answered < 200)
        {
            filled += await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, timeout.Token);
            int offset = 0;
            while (filled - offset >= 4 && filled - offset >= Frame.PeekLength(buffer.AsSpan(offset)))
            {
                int length = Frame.PeekLength(buffer.AsSpan(offset));
                ReadOnlySpan<byte> frame = buffer.AsSpan(offset, length);
                Frame.Check(frame, out MessageType type, out _);
                if (type == MessageType.LogonAck)
                {
                    ackSeen = true;
                }
                else if (type == MessageType.Rejected && ReplyCodec.DecodeRejected(frame, out Rejection r) == RejectReason.None)
                {
                    answered++;
                    busy += r.Reason == RejectReason.Busy ? 1 : 0;
                }
                else if (type == MessageType.Accepted)
                {
                    answered++;
                }
                offset += length;
            }
            buffer.AsSpan(offset, filled - offset).CopyTo(buffer);
            filled -= offset;
        }
        Assert.Multiple(() =>
        {
            Assert.That(ackSeen, Is.True);
            Assert.That(busy, Is.GreaterThan(0), "some were refused at once");
            Assert.That(busy, Is.LessThan(200), "and the rest were taken");
        });
    }

    [Test]
    public void The_load_generator_checks_every_receipt_against_the_journal()
    {
        using var server = new EngineServer();
        using var load = EngineProcess.Start("load", "--target", server.Endpoint, "--max", "--count", "20000", "--connections", "2", "--journal", server.JournalDirectory, "--json");
        Assert.That(load.WaitForExit(Wait), Is.Zero, load.StdErr);
        JsonElement result = JsonDocument.Parse(load.StdOut.Trim().Split('\n')[^1]).RootElement;
        Assert.Multiple(() =>
        {
            Assert.That(result.GetProperty("sent").GetInt64(), Is.EqualTo(20_000));
            Assert.That(result.GetProperty("acked").GetInt64() + result.GetProperty("rejected").GetInt64(), Is.EqualTo(20_000));
            Assert.That(result.GetProperty("lost").GetInt64(), Is.Zero);
            Assert.That(result.GetProperty("duplicates").GetInt64(), Is.Zero);
            Assert.That(result.GetProperty("errors").GetInt64(), Is.Zero);
            Assert.That(result.GetProperty("p99_us").GetDouble(), Is.GreaterThan(0));
        });
    }
}
