using System.Text.Json;
using Engine.Cli;
using Engine.Client;
using Engine.Core.Book;
using Engine.Core.Journaling;
using Engine.IntegrationTests.Support;
using Engine.Protocol;

namespace Engine.IntegrationTests;

/// <summary>
/// Snapshots in real processes: a node killed with SIGKILL at seeded random moments while it takes
/// snapshots every few blocks restarts from its newest snapshot with every acknowledged order and
/// the state a replay from genesis reaches; the two nodes of a pair snapshot the same state at the
/// same blocks.
/// </summary>
public class SnapshotTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    private static Transaction Limit(ulong id, Side side, long price, long quantity, uint account) =>
        Transaction.NewOrder(0, 0, account, 1, id, side, OrderType.Limit, TimeInForce.Gtc, price, quantity);

    /// <remarks>
    /// With <c>keep</c> the journal holds the whole chain, and a replay of it from genesis must reach the
    /// state the snapshots gave. With <c>archive</c> (the default) every snapshot after the second
    /// compacts the journal, so the kills land during compactions too: the archive and the journal then
    /// verify as one chain from genesis, and hold every acknowledged order.
    /// </remarks>
    [TestCase("keep")]
    [TestCase("archive")]
    public async Task Killed_at_random_moments_while_snapshotting_a_node_restarts_from_a_snapshot_with_every_acked_order_and_the_replayed_state(string retention)
    {
        var snapshotsOften = new Dictionary<string, string> { ["ENGINE_SNAPSHOTEVERYBLOCKS"] = "20", ["ENGINE_SNAPSHOTRETAIN"] = "2", ["ENGINE_JOURNALRETENTION"] = retention };
        using var server = new EngineServer(environment: snapshotsOften, extraArgs: ["--durability", "disk"]);
        var random = new Random(12);
        var receipts = new List<Receipt>();
        ulong nextId = 1;
        for (int round = 0; round < 3; round++)
        {
            // Orders in small batches (many blocks, so snapshots keep coming), until the kill at a seeded moment.
            using var stop = new CancellationTokenSource();
            Task<List<Receipt>> load = SubmitUntilKilledAsync(server, nextId, random.Next(), stop.Token);
            await WaitForSnapshotsAsync(server, atLeast: (ulong)(round + 1) * 40);
            await Task.Delay(random.Next(0, 200)); // the kill's moment: somewhere in the stream of blocks and snapshots
            ulong snapshotted = (await server.StatusAsync(state: false)).Snapshots!.SnapshotBlock!.Value;
            server.KillHard();
            stop.Cancel();
            List<Receipt> acked = await load;
            receipts.AddRange(acked);
            nextId += 100_000;

            server.Start();
            NodeStatusReport status = await server.StatusAsync();
            Assert.That(status.Recovery!.SnapshotBlock, Is.Not.Null, $"round {round}: recovered from a snapshot");
            // Not a count of blocks: how far the snapshot replica lags behind the head depends on the machine's load.
            Assert.That(status.Recovery.SnapshotBlock, Is.GreaterThanOrEqualTo(snapshotted), $"round {round}: from the newest snapshot complete before the kill, or a later one");
            Assert.That(status.Recovery.ReplayedBlocks, Is.EqualTo((long)(status.Recovery.HeadBlock - status.Recovery.SnapshotBlock!.Value)), $"round {round}: only the blocks after that snapshot replayed");
        }

        NodeStatusReport last = await server.StatusAsync();
        NodeStateSummary recovered = last.State!;
        server.KillHard();
        if (retention == "keep")
        {
            // The same journal without its snapshots: replayed from genesis, the same state.
            Directory.Delete(Path.Combine(server.JournalDirectory, "snapshots"), recursive: true);
            var off = new Dictionary<string, string> { ["ENGINE_SNAPSHOTEVERYBLOCKS"] = "0", ["ENGINE_SNAPSHOTEVERYSECONDS"] = "0" };
            using var replayed = new EngineServer(server.Data, off);
            NodeStatusReport status = await replayed.StatusAsync();
            Assert.That(status.Recovery!.SnapshotBlock, Is.Null);
            Assert.That(status.State!.Lsn, Is.EqualTo(recovered.Lsn));
            Assert.That(status.State.Checksum, Is.EqualTo(recovered.Checksum), "the snapshot's state plus replay is the state of a replay from genesis");
            replayed.KillHard();
        }
        else
        {
            Assert.That(last.Snapshots!.JournalBaseBlock, Is.GreaterThan(0UL), "compacted: the journal starts at a snapshot's block");
            using var verify = EngineProcess.Start("log", "verify", server.JournalDirectory, "--json");
            Assert.That(verify.WaitForExit(Wait), Is.Zero, verify.StdOut + verify.StdErr);
            JsonElement report = JsonDocument.Parse(verify.StdOut).RootElement;
            Assert.That(report.GetProperty("started_at_base").ValueKind, Is.EqualTo(JsonValueKind.Null), "verified from genesis, through the archive");
            Assert.That(report.GetProperty("archived_blocks").GetInt64(), Is.GreaterThan(0));
        }

        using var dump = EngineProcess.Start("log", "dump", server.JournalDirectory, "--json");
        Assert.That(dump.WaitForExit(Wait), Is.Zero, dump.StdErr);
        var journaled = dump.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => JsonDocument.Parse(line).RootElement)
            .ToDictionary(e => e.GetProperty("lsn").GetUInt64(), e => (e.GetProperty("client_id").GetUInt32(), e.GetProperty("client_seq").GetUInt64()));
        Assert.That(receipts, Has.Count.GreaterThan(100));
        foreach (Receipt receipt in receipts)
        {
            Assert.That(journaled[receipt.Lsn], Is.EqualTo((receipt.ClientId, receipt.ClientSeq)), $"acknowledged lsn {receipt.Lsn}");
        }
    }

    /// <summary>Submits batches of 5 orders from client 7 until cancelled or the node dies; returns the receipts of the accepted ones.</summary>
    private static async Task<List<Receipt>> SubmitUntilKilledAsync(EngineServer server, ulong firstId, int seed, CancellationToken stop)
    {
        var receipts = new List<Receipt>();
        var random = new Random(seed);
        try
        {
            await using EngineClient client = await EngineClient.ConnectAsync(new ClientOptions
            {
                Endpoints = [server.Endpoint], ClientId = 7, Token = "dev-token-7", ReconnectFor = TimeSpan.FromMilliseconds(200), AnswerTimeout = TimeSpan.FromSeconds(2),
            }, CancellationToken.None);
            for (ulong id = firstId; !stop.IsCancellationRequested; id += 5)
            {
                var batch = new List<Task<SubmitResult>>();
                for (ulong i = 0; i < 5; i++)
                {
                    batch.Add(client.SubmitAsync(Limit(id + i, random.Next(2) == 0 ? Side.Buy : Side.Sell, 995 + random.Next(10), 1 + random.Next(20), (uint)random.Next(1, 4)), CancellationToken.None)); // every answer awaited: the stop ends the loop, not a request
                }
                foreach (SubmitResult result in await Task.WhenAll(batch))
                {
                    if (result.Accepted)
                    {
                        receipts.Add(result.Receipt);
                    }
                }
            }
        }
        catch (Exception e) when (e is EngineUnavailableException or IOException or TimeoutException or OperationCanceledException or System.Net.Sockets.SocketException)
        {
            // The node was killed: what was acknowledged before is what counts.
        }
        return receipts;
    }

    private static async Task WaitForSnapshotsAsync(EngineServer server, ulong atLeast)
    {
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while ((await server.StatusAsync(state: false)).Snapshots?.SnapshotBlock is not { } block || block < atLeast)
        {
            Assert.That(waited.Elapsed, Is.LessThan(Wait), $"a snapshot of block {atLeast} or later");
            await Task.Delay(20);
        }
    }

    [Test]
    public async Task Engine_admin_snapshot_takes_one_now_and_a_restart_starts_from_it()
    {
        // Snapshots only on demand: neither interval comes due in the test.
        var onDemand = new Dictionary<string, string> { ["ENGINE_SNAPSHOTEVERYBLOCKS"] = "1000000", ["ENGINE_SNAPSHOTEVERYSECONDS"] = "3600" };
        using var server = new EngineServer(environment: onDemand);
        await using (EngineClient client = await server.ConnectAsync(5))
        {
            for (ulong id = 1; id <= 20; id++)
            {
                Assert.That((await client.SubmitAsync(Limit(id, Side.Buy, 900 + (long)id, 1, 1))).Accepted, Is.True);
            }
        }
        NodeStatusReport before = await server.StatusAsync();
        Assert.That(before.Snapshots!.SnapshotBlock, Is.Null, "none taken yet");

        string admin = $"127.0.0.1:{server.AdminPort}";
        using (var command = EngineProcess.Start("admin", "snapshot", "--admin", admin))
        {
            Assert.That(command.WaitForExit(Wait), Is.Zero, command.StdErr);
            Assert.That(command.StdOut, Does.Contain($"snapshot after block {before.Block}"));
        }
        using (var again = EngineProcess.Start("admin", "snapshot", "--admin", admin))
        {
            Assert.That(again.WaitForExit(Wait), Is.Zero, again.StdErr);
            Assert.That(again.StdOut, Does.Contain($"snapshot after block {before.Block}"), "nothing new: the same one");
        }
        Assert.That((await server.StatusAsync(state: false)).Snapshots!.Taken, Is.EqualTo(1));

        using (var unsigned = new HttpClient())
        {
            using HttpResponseMessage refused = await unsigned.PostAsync(new Uri($"http://{admin}/admin/snapshot"), null);
            Assert.That((int)refused.StatusCode, Is.EqualTo(401), "only an operator's signed request");
        }

        server.KillHard();
        server.Start();
        NodeStatusReport after = await server.StatusAsync();
        Assert.That(after.Recovery!.SnapshotBlock, Is.EqualTo(before.Block), "started from it");
        Assert.That(after.Recovery.ReplayedBlocks, Is.Zero);
        Assert.That(after.State!.Checksum, Is.EqualTo(before.State!.Checksum));
    }

    [Test]
    public async Task The_two_nodes_of_a_pair_snapshot_the_same_state_at_the_same_blocks()
    {
        string root = Path.Combine(Path.GetTempPath(), $"pair-snap-{Guid.NewGuid():N}");
        int primaryPort = Ports.Free(), backupPort = Ports.Free(), primaryReplication = Ports.Free(), backupReplication = Ports.Free();
        string primaryData = Path.Combine(root, "primary"), backupData = Path.Combine(root, "backup");
        var often = new Dictionary<string, string> { ["ENGINE_SNAPSHOTEVERYBLOCKS"] = "50", ["ENGINE_SNAPSHOTRETAIN"] = "100", ["ENGINE_CHECKSUMEVERYBLOCKS"] = "50" };
        try
        {
            using var primary = EngineProcess.Start(often, "serve", "--role", "primary", "--data", primaryData, "--listen", $"127.0.0.1:{primaryPort}",
                "--replication-listen", $"127.0.0.1:{primaryReplication}");
            using var backup = EngineProcess.Start(often, "serve", "--role", "backup", "--data", backupData, "--listen", $"127.0.0.1:{backupPort}",
                "--peer", $"127.0.0.1:{primaryReplication}", "--replication-listen", $"127.0.0.1:{backupReplication}");
            primary.WaitForEvent(Engine.Replication.PairEventKind.BackupInStep, "the pair to be in step", Wait);
            using (var load = EngineProcess.Start("load", "--target", $"127.0.0.1:{primaryPort}", "--rate", "3000", "--duration", "2", "--connections", "2", "--json"))
            {
                Assert.That(load.WaitForExit(Wait), Is.Zero, load.StdErr);
            }
            primary.Terminate(Wait);
            backup.Terminate(Wait);

            var reference = ReferenceData.Development();
            Dictionary<ulong, Hash32> Checksums(string data)
            {
                var store = new SnapshotStore(Path.Combine(data, "journal", "snapshots"), retain: 100);
                return store.List().ToDictionary(s => s.BlockNo, s =>
                {
                    Exchange.ReadSnapshot(File.ReadAllBytes(s.Path), out SnapshotHeader header);
                    return header.StateChecksum;
                });
            }
            Dictionary<ulong, Hash32> ofPrimary = Checksums(primaryData), ofBackup = Checksums(backupData);
            ulong[] both = [.. ofPrimary.Keys.Intersect(ofBackup.Keys).Order()];
            Assert.That(both.Length, Is.GreaterThanOrEqualTo(3), $"snapshots at the same blocks (primary: {string.Join(',', ofPrimary.Keys)}; backup: {string.Join(',', ofBackup.Keys)})");
            Assert.That(both.Where(b => b % 50 == 0).Count(), Is.GreaterThanOrEqualTo(3), "those of the interval");
            foreach (ulong block in both)
            {
                Assert.That(ofBackup[block], Is.EqualTo(ofPrimary[block]), $"the state after block {block}");
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

    /// <summary>
    /// A fresh backup of a primary whose journal was compacted (it no longer holds genesis) installs the
    /// primary's snapshot; killed with SIGKILL while it does (at a seeded moment after the transfer
    /// began), it comes back, installs it again, and ends in step: its journal starts at a snapshot's
    /// block and verifies, its head is the primary's, and every order the load had acknowledged meanwhile
    /// is in it (the load's own audit).
    /// </summary>
    [Test]
    public async Task A_backup_killed_while_installing_the_primary_s_snapshot_rejoins_after_compaction()
    {
        string root = Path.Combine(Path.GetTempPath(), $"pair-install-{Guid.NewGuid():N}");
        int primaryPort = Ports.Free(), backupPort = Ports.Free(), primaryReplication = Ports.Free(), backupReplication = Ports.Free();
        string primaryData = Path.Combine(root, "primary"), backupData = Path.Combine(root, "backup");
        var often = new Dictionary<string, string> { ["ENGINE_SNAPSHOTEVERYBLOCKS"] = "100", ["ENGINE_SNAPSHOTRETAIN"] = "2" };
        string[] backupArgs = ["serve", "--role", "backup", "--data", backupData, "--listen", $"127.0.0.1:{backupPort}",
            "--peer", $"127.0.0.1:{primaryReplication}", "--replication-listen", $"127.0.0.1:{backupReplication}"];
        try
        {
            using var primary = EngineProcess.Start(often, "serve", "--role", "primary", "--data", primaryData, "--listen", $"127.0.0.1:{primaryPort}",
                "--replication-listen", $"127.0.0.1:{primaryReplication}", "--allow-solo");
            primary.WaitForLog(text => text.Contains("listening for front-ends", StringComparison.Ordinal), "the primary to serve", Wait);
            using (var load = EngineProcess.Start("load", "--target", $"127.0.0.1:{primaryPort}", "--rate", "3000", "--duration", "2", "--connections", "2", "--json"))
            {
                Assert.That(load.WaitForExit(Wait), Is.Zero, load.StdErr);
            }
            primary.WaitForLog(text => text.Contains("journal compacted", StringComparison.Ordinal), "the primary's journal to be compacted", Wait);

            using (var first = EngineProcess.Start(often, backupArgs))
            {
                first.WaitForLog(text => text.Contains("installing its snapshot", StringComparison.Ordinal), "the backup to begin installing", Wait);
                await Task.Delay(new Random(5).Next(0, 30));
                first.KillHard();
            }
            using var backup = EngineProcess.Start(often, backupArgs);
            primary.WaitForEvent(Engine.Replication.PairEventKind.BackupInStep, "the pair to be in step again", Wait, where: e => e.Text.Contains("the snapshot of block", StringComparison.Ordinal));
            using (var load = EngineProcess.Start("load", "--target", $"127.0.0.1:{primaryPort}", "--rate", "2000", "--duration", "1", "--connections", "2", "--json",
                "--journal", Path.Combine(backupData, "journal")))
            {
                Assert.That(load.WaitForExit(Wait), Is.Zero, load.StdOut + load.StdErr);
                JsonElement result = JsonDocument.Parse(load.StdOut.Trim().Split('\n')[^1]).RootElement;
                Assert.That(result.GetProperty("lost").GetInt64(), Is.Zero, "every acknowledged order is in the backup's journal");
            }
            backup.Terminate(Wait);
            primary.Terminate(Wait);

            JournalGeometry installed = JournalGeometry.TryRead(Path.Combine(backupData, "journal"))!;
            Assert.That(installed.BaseBlockNo, Is.GreaterThan(0UL), "the backup's journal starts at a snapshot's block");
            string Head(string data)
            {
                using var verify = EngineProcess.Start("log", "verify", Path.Combine(data, "journal"), "--json");
                Assert.That(verify.WaitForExit(Wait), Is.Zero, verify.StdOut + verify.StdErr);
                return JsonDocument.Parse(verify.StdOut).RootElement.GetProperty("head_hash").GetString()!;
            }
            Assert.That(Head(backupData), Is.EqualTo(Head(primaryData)), "the same chain, to the same head");
        }
        finally
        {
            if (Directory.Exists(root))
            {
                Directory.Delete(root, recursive: true);
            }
        }
    }
}
