using Engine.Cli;
using Engine.Client;
using Engine.IntegrationTests.Support;
using Engine.Protocol;
using Engine.Replication;

namespace Engine.IntegrationTests;

/// <summary>
/// Reference data in the ledger, on real processes: the operator's verbs (<c>engine admin
/// instrument-halt</c> and the rest) are admin transactions that survive a kill -9, and two nodes of
/// a pair started with different configuration files hold the same state, the backup following the
/// ledger (not its file) once it takes over.
/// </summary>
public class ReferenceDataTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    [Test]
    public async Task The_operators_changes_are_journaled_refuse_with_their_own_reasons_and_survive_a_kill()
    {
        using var server = new EngineServer();
        string admin = $"127.0.0.1:{server.AdminPort}";
        await using (EngineClient client = await server.ConnectAsync(clientId: 1))
        {
            Assert.That((await client.SubmitAsync(Order(2, 5000))).Accepted, Is.True, "instrument 2 trades");
            Assert.That(Admin("instrument-halt", "--admin", admin, "--id", "2"), Does.Contain("halt instrument 2: done at LSN"));
            Assert.That((await client.SubmitAsync(Order(2, 5000))).Rejection.Reason, Is.EqualTo(RejectReason.InstrumentHalted));
            Assert.That((await client.SubmitAsync(Order(9, 500))).Rejection.Reason, Is.EqualTo(RejectReason.UnknownInstrument), "not yet defined");
            Assert.That(Admin("instrument-define", "--admin", admin, "--id", "9", "--symbol", "NEWCO", "--tick", "5", "--reference-price", "500"), Does.Contain("done at LSN"));
            SubmitResult onNew = await client.SubmitAsync(Order(9, 500));
            Assert.That(onNew.Accepted, Is.True, $"a new instrument, without a restart: {onNew}");
            Assert.That(Admin("cancel-all", "--admin", admin, "--client", "1"), Does.Contain("cancel all orders of client 1: done"));
        }

        server.KillHard();
        server.Start();
        ReferenceReport reference = await GetReferenceAsync(admin);
        Assert.Multiple(() =>
        {
            Assert.That(reference.Instruments.Single(i => i.Id == 2).Halted, Is.True, "replayed: still halted");
            Assert.That(reference.Instruments.Single(i => i.Id == 9).Symbol, Is.EqualTo("NEWCO"));
            Assert.That(reference.DiffersFromConfiguration, Has.Some.Contains("instrument 9 (NEWCO) is in the ledger, not configured"));
        });
        Assert.That(server.Process.LogText, Does.Contain("differs from the ledger's reference data").And.Contain("following the ledger"));
        NodeStatusReport status = await server.StatusAsync();
        Assert.That(status.State!.OpenOrders, Is.Zero, "the cancel-all, replayed");
        await using (EngineClient client = await server.ConnectAsync(clientId: 1))
        {
            Assert.That((await client.SubmitAsync(Order(2, 5000))).Rejection.Reason, Is.EqualTo(RejectReason.InstrumentHalted));
            Assert.That(Admin("instrument-resume", "--admin", admin, "--id", "2"), Does.Contain("resume instrument 2: done"));
            Assert.That((await client.SubmitAsync(Order(2, 5000))).Accepted, Is.True, "trading resumed");
        }
        Assert.That(AdminFails("instrument-halt", "--admin", admin, "--id", "77"), Does.Contain("refused (UnknownInstrument)"));
        Assert.That(AdminFails("client-add", "--admin", admin, "--id", "5", "--accounts", "3-1"), Does.Contain("ends before it starts"));
    }

    [Test]
    public async Task Two_nodes_started_with_different_configuration_files_hold_the_same_state_and_the_backup_follows_the_ledger()
    {
        string root = Path.Combine(Path.GetTempPath(), $"reference-{Guid.NewGuid():N}");
        Directory.CreateDirectory(root);
        int portA = Ports.Free(), portB = Ports.Free(), replicationA = Ports.Free(), replicationB = Ports.Free(), adminA = Ports.Free(), adminB = Ports.Free();
        // A's file: instruments 1 (tick 1) and 2; account 1 may hold 1,000 a order. B's: instrument 1 ticks by 10, no
        // instrument 2 but a 3, account 1 only 5 a order. The same clients and tokens (credentials stay in each file).
        string configA = Write(root, "a.json", """
            { "Instruments": [ { "Id": 1, "Symbol": "ACME", "TickSize": 1, "ReferencePrice": 1000 }, { "Id": 2, "Symbol": "ONLYA", "TickSize": 5, "ReferencePrice": 5000 } ],
              "Accounts": [ { "Id": 1, "MaxOrderQuantity": 1000, "MaxOrderNotional": 1000000000, "MaxOpenOrders": 100 } ],
              "Clients": [ { "Id": 1, "Token": "token-one", "Accounts": [ 1 ] }, { "Id": 2, "Token": "token-two", "Accounts": [ 1 ] } ] }
            """);
        string configB = Write(root, "b.json", """
            { "Instruments": [ { "Id": 1, "Symbol": "ACME", "TickSize": 10, "ReferencePrice": 1000 }, { "Id": 3, "Symbol": "ONLYB", "TickSize": 1, "ReferencePrice": 100 } ],
              "Accounts": [ { "Id": 1, "MaxOrderQuantity": 5, "MaxOrderNotional": 1000000000, "MaxOpenOrders": 100 } ],
              "Clients": [ { "Id": 1, "Token": "token-one", "Accounts": [ 1 ] }, { "Id": 2, "Token": "token-two", "Accounts": [ 1 ] } ] }
            """);
        var everyBlock = new Dictionary<string, string> { ["ENGINE_CHECKSUMEVERYBLOCKS"] = "1" };
        try
        {
            using var a = EngineProcess.Start(everyBlock, "serve", "--role", "primary", "--data", Path.Combine(root, "a"), "--config", configA,
                "--listen", $"127.0.0.1:{portA}", "--replication-listen", $"127.0.0.1:{replicationA}", "--admin", $"127.0.0.1:{adminA}");
            using var b = EngineProcess.Start(everyBlock, "serve", "--role", "backup", "--data", Path.Combine(root, "b"), "--config", configB,
                "--listen", $"127.0.0.1:{portB}", "--peer", $"127.0.0.1:{replicationA}", "--replication-listen", $"127.0.0.1:{replicationB}",
                "--admin", $"127.0.0.1:{adminB}", "--allow-solo");
            a.WaitForEvent(PairEventKind.BackupInStep, "the pair to be in step", Wait);

            await using (EngineClient client = await Connect(portA, portB))
            {
                // Each of these is refused by B's file and accepted by the ledger's reference data (A's).
                Assert.That((await client.SubmitAsync(Order(1, 1003, quantity: 50))).Accepted, Is.True, "tick 1 and quantity 50");
                SubmitResult onTwo = await client.SubmitAsync(Order(2, 5005, quantity: 40));
                Assert.That(onTwo.Accepted, Is.True, $"instrument 2: {onTwo}");
            }
            string halted = Admin("instrument-halt", "--admin", $"127.0.0.1:{adminA}", "--id", "2");
            ulong haltBlock = ulong.Parse(System.Text.RegularExpressions.Regex.Match(halted, @"in block (\d+)").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
            await using (EngineClient client = await Connect(portA, portB))
            {
                Assert.That((await client.SubmitAsync(Order(1, 1001, quantity: 7))).Accepted, Is.True, "a block after the halt's, so that the halt's is compared");
            }
            // The backup compares its state checksum with the primary's after every block (reference data included).
            b.WaitForEvent(PairEventKind.ChecksumMatched, "the backup's state to match the primary's after the halt", Wait, where: e => e.BlockNo >= haltBlock);
            Assert.That(a.HasEvent(PairEventKind.StateMismatch) || b.HasEvent(PairEventKind.StateMismatch), Is.False, "compared after every block, never different");
            ReferenceReport seenByB = await GetReferenceAsync($"127.0.0.1:{adminB}");
            Assert.That(seenByB.Instruments.Select(i => (i.Id, i.Tick, i.Halted)), Is.EqualTo(new[] { (1u, 1L, false), (2u, 5L, true) }), "the ledger's, on the backup");
            Assert.That(seenByB.DiffersFromConfiguration, Has.Some.Contains("instrument 1: configured ACME tick 10"));

            a.KillHard();
            b.WaitForEvent(PairEventKind.TakeOver, "B to take over", Wait);
            await using (EngineClient client = await Connect(portB, portA))
            {
                Assert.That((await client.SubmitAsync(Order(1, 1007, quantity: 60))).Accepted, Is.True, "B follows the ledger: tick 1, quantity 60");
                Assert.That((await client.SubmitAsync(Order(2, 5005, quantity: 1))).Rejection.Reason, Is.EqualTo(RejectReason.InstrumentHalted), "the ledger's halt on an instrument B's file does not have");
                Assert.That((await client.SubmitAsync(Order(3, 100, quantity: 1))).Rejection.Reason, Is.EqualTo(RejectReason.UnknownInstrument), "B's own instrument is not the ledger's");
            }
            Assert.That(b.LogText, Does.Contain("differs from the ledger's reference data").And.Contain("following the ledger"));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private static long s_orderIds;

    /// <summary>A buy that rests (each with an order id of its own).</summary>
    private static Transaction Order(uint instrument, long price, long quantity = 1) =>
        Transaction.NewOrder(0, 0, 1, instrument, (ulong)Interlocked.Increment(ref s_orderIds), Side.Buy, OrderType.Limit, TimeInForce.Gtc, price, quantity);

    private static Task<EngineClient> Connect(int first, int second) => EngineClient.ConnectAsync(new ClientOptions
    {
        Endpoints = [$"127.0.0.1:{first}", $"127.0.0.1:{second}"],
        ClientId = 1,
        Token = "token-one",
        ReconnectFor = TimeSpan.FromSeconds(30),
    });

    private static string Write(string root, string name, string json)
    {
        string path = Path.Combine(root, name);
        File.WriteAllText(path, json);
        return path;
    }

    /// <summary>Runs <c>engine admin ARGS</c>, which must succeed; returns what it printed.</summary>
    private static string Admin(params string[] args)
    {
        using EngineProcess command = EngineProcess.Start(["admin", .. args]);
        Assert.That(command.WaitForExit(Wait), Is.Zero, $"engine admin {string.Join(' ', args)}: {command.StdOut}{command.StdErr}");
        return command.StdOut;
    }

    /// <summary>Runs <c>engine admin ARGS</c>, which must fail; returns what it said.</summary>
    private static string AdminFails(params string[] args)
    {
        using EngineProcess command = EngineProcess.Start(["admin", .. args]);
        Assert.That(command.WaitForExit(Wait), Is.Not.Zero, $"engine admin {string.Join(' ', args)} succeeded: {command.StdOut}");
        return command.StdOut + command.StdErr;
    }

    private static async Task<ReferenceReport> GetReferenceAsync(string admin)
    {
        using var http = new HttpClient { Timeout = Wait };
        return ReferenceReport.Parse(await http.GetByteArrayAsync(new Uri($"http://{admin}/reference")));
    }
}
