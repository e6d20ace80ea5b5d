using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.IntegrationTests.Support;
using Engine.Replication;

namespace Engine.IntegrationTests;

/// <summary>
/// The process pair, first cut: a real primary mirroring synchronously to a real backup, the
/// primary killed with SIGKILL under load, the backup taking over, the clients failing over.
/// </summary>
public class PairTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    [Test]
    public void Killing_the_primary_under_load_loses_no_acknowledged_order()
    {
        string root = Path.Combine(Path.GetTempPath(), $"pair-{Guid.NewGuid():N}");
        int primaryPort = Ports.Free(), backupPort = Ports.Free(), primaryReplication = Ports.Free(), backupReplication = Ports.Free();
        string primaryData = Path.Combine(root, "primary"), backupData = Path.Combine(root, "backup");
        try
        {
            using var primary = EngineProcess.Start("serve", "--role", "primary", "--data", primaryData, "--listen", $"127.0.0.1:{primaryPort}",
                "--replication-listen", $"127.0.0.1:{primaryReplication}");
            using var backup = EngineProcess.Start(new Dictionary<string, string> { ["ENGINE_CHECKSUMEVERYBLOCKS"] = "50" },
                "serve", "--role", "backup", "--data", backupData, "--listen", $"127.0.0.1:{backupPort}",
                "--peer", $"127.0.0.1:{primaryReplication}", "--replication-listen", $"127.0.0.1:{backupReplication}", "--allow-solo");
            primary.WaitForEvent(PairEventKind.BackupInStep, "the pair to be in step", Wait);

            using var load = EngineProcess.Start("load", "--target", $"127.0.0.1:{primaryPort},127.0.0.1:{backupPort}", "--rate", "5000",
                "--duration", "6", "--connections", "4", "--journal", Path.Combine(backupData, "journal"), "--json");
            // Kill once the load has run for two seconds (its own progress line says so).
            load.WaitForError(e => e.Contains(" 2 s ", StringComparison.Ordinal), "two seconds of load", Wait);
            primary.KillHard();
            PairEvent takeOver = backup.WaitForEvent(PairEventKind.TakeOver, "the backup to take over", Wait);

            Assert.That(load.WaitForExit(Wait), Is.Zero, load.StdErr);
            JsonElement result = JsonDocument.Parse(load.StdOut.Trim().Split('\n')[^1]).RootElement;
            Assert.Multiple(() =>
            {
                Assert.That(result.GetProperty("lost").GetInt64(), Is.Zero, "acked orders missing from the new primary's journal");
                Assert.That(result.GetProperty("duplicates").GetInt64(), Is.Zero);
                Assert.That(result.GetProperty("errors").GetInt64(), Is.Zero, "requests never answered");
                Assert.That(result.GetProperty("reconnects").GetInt64(), Is.GreaterThanOrEqualTo(4), "every client failed over");
                Assert.That(result.GetProperty("acked").GetInt64(), Is.GreaterThan(10_000));
            });
            Assert.That(takeOver.Epoch, Is.EqualTo(2UL));

            // The old primary comes back as the backup of the new one: it catches up (discarding a
            // suffix that was never acknowledged, if it has one) and follows live.
            primary.Dispose();
            int mark = backup.EventCount;
            string oldJournalAside = "";
            // Restarted with its old command line (--role primary), it finds its peer is primary in a
            // higher epoch and steps down to backup by itself.
            // It also compares state checksums with the new primary every 50 blocks.
            using (var rejoined = EngineProcess.Start(new Dictionary<string, string> { ["ENGINE_CHECKSUMEVERYBLOCKS"] = "50" },
                "serve", "--role", "primary", "--data", primaryData, "--listen", $"127.0.0.1:{primaryPort}",
                "--peer", $"127.0.0.1:{backupReplication}", "--replication-listen", $"127.0.0.1:{primaryReplication}"))
            {
                rejoined.WaitForEvent(PairEventKind.SteppingDown, "the old primary to step down", Wait);
                backup.WaitForEvent(PairEventKind.BackupInStep, "the old primary to catch up", Wait, since: mark);
                using var more = EngineProcess.Start("load", "--target", $"127.0.0.1:{backupPort}", "--rate", "5000", "--duration", "2", "--connections", "2", "--client", "11", "--json");
                Assert.That(more.WaitForExit(Wait), Is.Zero, more.StdErr);
                oldJournalAside = rejoined.LogText.Contains("moved the diverged journal", StringComparison.Ordinal) ? "yes" : "no";
                Assert.That(rejoined.HasEvent(PairEventKind.StateMismatch), Is.False);
                Assert.That(rejoined.HasEvent(PairEventKind.ChecksumMatched), Is.True, "the two books were compared after the rejoin");
                rejoined.Terminate(Wait); // the backup stops first, so the primary's last blocks are in both
            }
            using (var stop = System.Diagnostics.Process.Start("kill", ["-TERM", backup.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            {
                stop.WaitForExit();
            }
            Assert.That(backup.WaitForExit(Wait), Is.Zero);
            Dictionary<ulong, (ulong Epoch, string Hash)> follower = Blocks(Path.Combine(primaryData, "journal"));
            Dictionary<ulong, (ulong Epoch, string Hash)> leader = Blocks(Path.Combine(backupData, "journal"));
            Assert.That(follower.Keys.Max(), Is.EqualTo(leader.Keys.Max()), $"the heads are equal after the rejoin (journal moved aside: {oldJournalAside})");
            Assert.That(follower[follower.Keys.Max()].Hash, Is.EqualTo(leader[leader.Keys.Max()].Hash));
            Assert.That(leader.Values.Any(b => b.Epoch == 2), Is.True, "the new primary sealed blocks in the new epoch");
        }
        finally
        {
            if (Directory.Exists(root))
            {
                Directory.Delete(root, recursive: true);
            }
        }
    }

    /// <param name="lease">none: no lease at all; allow-solo: the operator's, given at start; witness: from a
    /// real `engine witness`; go-solo: the operator's, given after the fact with `engine admin go-solo`.</param>
    [TestCase("none")]
    [TestCase("allow-solo")]
    [TestCase("go-solo")]
    public async Task A_primary_whose_backup_dies_follows_the_solo_rule(string lease)
    {
        string root = Path.Combine(Path.GetTempPath(), $"pair-{Guid.NewGuid():N}");
        int primaryPort = Ports.Free(), backupPort = Ports.Free(), primaryReplication = Ports.Free(), backupReplication = Ports.Free(), admin = Ports.Free(), witnessPort = Ports.Free();
        try
        {
            using var witness = lease == "witness" ? EngineProcess.Start("witness", "--listen", $"127.0.0.1:{witnessPort}") : null;
            witness?.WaitForOutput(o => o.Contains("listening", StringComparison.Ordinal), "the witness to start", Wait);
            var args = new List<string> { "serve", "--role", "primary", "--data", Path.Combine(root, "primary"), "--listen", $"127.0.0.1:{primaryPort}",
                "--replication-listen", $"127.0.0.1:{primaryReplication}", "--admin", $"127.0.0.1:{admin}" };
            args.AddRange(lease switch
            {
                "allow-solo" => ["--allow-solo"],
                "witness" => ["--witness", $"127.0.0.1:{witnessPort}"],
                _ => [],
            });
            using var primary = EngineProcess.Start([.. args]);
            using var backup = EngineProcess.Start("serve", "--role", "backup", "--data", Path.Combine(root, "backup"), "--listen", $"127.0.0.1:{backupPort}",
                "--peer", $"127.0.0.1:{primaryReplication}", "--replication-listen", $"127.0.0.1:{backupReplication}");
            primary.WaitForEvent(PairEventKind.BackupInStep, "the pair to be in step", Wait);
            await using var client = await Engine.Client.EngineClient.ConnectAsync(new Engine.Client.ClientOptions
            {
                Endpoints = [$"127.0.0.1:{primaryPort}"],
                ClientId = 1,
                Token = "dev-token-1",
            });
            Assert.That((await client.SubmitAsync(Order(1))).Accepted, Is.True);

            int mark = primary.EventCount;
            backup.KillHard();
            primary.WaitForEvent(PairEventKind.BackupLost, "the primary to notice", Wait, since: mark);
            if (lease == "witness")
            {
                // The grant after the loss: the primary also held the lease at start-up, before its backup was in step.
                primary.WaitForEvents(events => events.Skip(mark).SkipWhile(e => e.Kind != PairEventKind.BackupLost).Any(e => e.Kind == PairEventKind.LeaseGranted),
                    "the witness's lease after the backup's loss (backup_lost, then lease_granted)", Wait);
            }
            Engine.Client.SubmitResult after = await client.SubmitAsync(Order(2)).WaitAsync(Wait);
            if (lease is "none" or "go-solo")
            {
                Assert.That(after.Rejection.Reason, Is.EqualTo(Engine.Protocol.RejectReason.NoBackup), "without a lease, nothing is acknowledged");
            }
            else
            {
                Assert.That(after.Accepted, Is.True, $"with the lease ({lease}) the primary goes on alone: {after}");
            }
            if (lease == "go-solo")
            {
                using var goSolo = EngineProcess.Start("admin", "go-solo", "--admin", $"127.0.0.1:{admin}");
                Assert.That(goSolo.WaitForExit(Wait), Is.Zero, goSolo.StdErr);
                Engine.Client.SubmitResult granted = await client.SubmitAsync(Order(3)).WaitAsync(Wait);
                Assert.That(granted.Accepted, Is.True, $"after go-solo: {granted}");
            }
        }
        finally
        {
            if (Directory.Exists(root))
            {
                Directory.Delete(root, recursive: true);
            }
        }
    }

    [Test]
    public async Task A_connection_that_never_says_hello_does_not_hold_up_the_replication_endpoint()
    {
        string root = Path.Combine(Path.GetTempPath(), $"pair-{Guid.NewGuid():N}");
        int replication = Ports.Free();
        try
        {
            using var primary = EngineProcess.Start("serve", "--role", "primary", "--data", root, "--listen", $"127.0.0.1:{Ports.Free()}",
                "--replication-listen", $"127.0.0.1:{replication}");
            primary.WaitForEvent(PairEventKind.PrimaryStarted, "the primary to start", Wait);
            var endpoint = new IPEndPoint(IPAddress.Loopback, replication);
            using var silent = new TcpClient();
            await silent.ConnectAsync(endpoint); // connects, says nothing
            // Who is primary, asked as an old primary coming back asks it.
            using var probe = await ReplicationLink.ConnectAsync(endpoint, Engine.Security.ClusterCredentials.Development("node@probe"), TimeSpan.FromSeconds(10), CancellationToken.None);
            await probe.SendAsync(ReplicationFrame.Hello(ReplicationType.Hello, ReplicationFrame.ProbeOnly, default(ChainHead)), CancellationToken.None);
            using var answerWait = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            var answer = await probe.ReadAsync(answerWait.Token);
            Assert.That(answer?.Type, Is.EqualTo(ReplicationType.HelloAck), "the probe behind the silent connection is answered");
            Assert.That(ReplicationFrame.ReadHello(answer!.Value.Payload.Span, out _).Epoch, Is.EqualTo(1UL));
        }
        finally
        {
            if (Directory.Exists(root))
            {
                Directory.Delete(root, recursive: true);
            }
        }
    }

    /// <summary>
    /// A primary cut off from both its backup and the witness while the backup takes over: a client
    /// that asks it now is answered at once ("no backup"), so its answer timeout never fires and it
    /// would stay there until the partition heals. The cut-off primary sends its clients over instead.
    /// </summary>
    [Test]
    public async Task A_primary_cut_off_from_backup_and_witness_sends_new_clients_to_the_node_that_took_over()
    {
        string root = Path.Combine(Path.GetTempPath(), $"pair-{Guid.NewGuid():N}");
        var any = new IPEndPoint(IPAddress.Loopback, 0);
        int primaryPort = Ports.Free(), backupPort = Ports.Free(), primaryReplication = Ports.Free(), backupReplication = Ports.Free(), witnessPort = Ports.Free();
        try
        {
            using var witness = EngineProcess.Start("witness", "--listen", $"127.0.0.1:{witnessPort}");
            witness.WaitForOutput(o => o.Contains("listening", StringComparison.Ordinal), "the witness to start", Wait);
            using var link = new Engine.Cli.Drill.FaultProxy(any, new IPEndPoint(IPAddress.Loopback, primaryReplication));
            using var primaryToWitness = new Engine.Cli.Drill.FaultProxy(any, new IPEndPoint(IPAddress.Loopback, witnessPort));
            using var primary = EngineProcess.Start("serve", "--role", "primary", "--data", Path.Combine(root, "primary"), "--listen", $"127.0.0.1:{primaryPort}",
                "--replication-listen", $"127.0.0.1:{primaryReplication}", "--witness", $"127.0.0.1:{primaryToWitness.Port}");
            // Alone, the primary takes the solo lease; only then the backup comes, so that the lease's
            // way back is one ordered sequence (an ask still in flight when the backup got in step was
            // granted after the test had looked, and the cut below kept the release from the witness:
            // a holder keeps the lease until it gives it back, and nobody could take over).
            primary.WaitForEvent(PairEventKind.LeaseGranted, "the primary alone to take the solo lease", Wait);
            using var backup = EngineProcess.Start("serve", "--role", "backup", "--data", Path.Combine(root, "backup"), "--listen", $"127.0.0.1:{backupPort}",
                "--peer", $"127.0.0.1:{link.Port}", "--replication-listen", $"127.0.0.1:{backupReplication}", "--witness", $"127.0.0.1:{witnessPort}");
            primary.WaitForEvents(events => events.Any(e => e.Kind == PairEventKind.BackupInStep) && events.Any(e => e.Kind == PairEventKind.LeaseReleased),
                "the pair to be in step and the primary's solo lease back with the witness", Wait);

            link.Set(Engine.Cli.Drill.LinkFault.Blackhole);
            primaryToWitness.Set(Engine.Cli.Drill.LinkFault.Blackhole);
            backup.WaitForEvent(PairEventKind.TakeOver, "the backup to take over with the witness's lease", Wait);

            // A front-end that knows both nodes, starting now (the partition holds throughout).
            var clock = System.Diagnostics.Stopwatch.StartNew();
            Engine.Client.SubmitResult result;
            ulong id = 0;
            int answeredBy;
            do
            {
                Assert.That(clock.Elapsed, Is.LessThan(Wait), "clients of the cut-off primary never reached the node that took over (answered 'no backup' instead)");
                await using var client = await Engine.Client.EngineClient.ConnectAsync(new Engine.Client.ClientOptions
                {
                    Endpoints = [$"127.0.0.1:{primaryPort}", $"127.0.0.1:{backupPort}"],
                    ClientId = 1,
                    Token = "dev-token-1",
                });
                result = await client.SubmitAsync(Order(++id)).WaitAsync(Wait);
                answeredBy = client.Endpoint.Port;
                if (!result.Accepted)
                {
                    Assert.That(result.Rejection.Reason, Is.EqualTo(Engine.Protocol.RejectReason.NoBackup), result.ToString());
                    await Task.Delay(100);
                }
            }
            while (!result.Accepted);
            Assert.That(answeredBy, Is.EqualTo(backupPort), "acknowledged by the node that took over");
            primary.WaitForEvent(PairEventKind.ClientsSentAway, "the cut-off primary to say so", Wait);
        }
        finally
        {
            if (Directory.Exists(root))
            {
                Directory.Delete(root, recursive: true);
            }
        }
    }

    private static void WaitUntil(Func<bool> condition, string what)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            Assert.That(clock.Elapsed, Is.LessThan(Wait), $"timed out waiting for {what}");
            Thread.Sleep(5);
        }
    }

    private static Engine.Protocol.Transaction Order(ulong id) => Engine.Protocol.Transaction.NewOrder(0, 0, 1, 1, id,
        Engine.Protocol.Side.Buy, Engine.Protocol.OrderType.Limit, Engine.Protocol.TimeInForce.Gtc, 990, 1);

    private static Dictionary<ulong, (ulong, string)> Blocks(string journal)
    {
        var blocks = new Dictionary<ulong, (ulong, string)>();
        using JournalReader reader = JournalReader.Open(journal);
        VerifyReport report = reader.Verify();
        Assert.That(report.Intact, Is.True, $"{journal}: {report.Fault}");
        reader.Scan((entry, _) =>
        {
            BlockFormat.TryReadHeader(entry, out BlockHeader header);
            blocks[header.BlockNo] = (header.Epoch, BlockFormat.StoredHash(entry, in header).ToString());
            return true;
        });
        return blocks;
    }

}
