using System.Buffers.Binary;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Engine.Cli.Observer;
using Engine.IntegrationTests.Support;
using Engine.Replication;
using Engine.Replication.Pair;
using Engine.Security;
using Engine.Tests.Shared;
using Microsoft.Data.Sqlite;

namespace Engine.IntegrationTests;

/// <summary>
/// <c>engine observe --peer</c> against a real pair (witness, primary, backup: separate processes)
/// under load: the observer follows the primary, is killed and resumes, follows the new primary
/// after the old one is killed, and its tables end equal, row for row, to the new primary's journal
/// loaded up to the same block; observers that never read, speak out of turn, knock at the backup or
/// come one too many are refused or ignored, and the pair acknowledges every order regardless.
/// </summary>
public class ObserverPeerTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);
    private string _root = null!;

    [SetUp]
    public void SetUp() => _root = Path.Combine(Path.GetTempPath(), $"observe-peer-{Guid.NewGuid():N}");

    [TearDown]
    public void TearDown()
    {
        SqliteConnection.ClearAllPools();
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    [TestCase("sqlite")]
    [TestCase("postgres")]
    public async Task It_follows_the_primary_through_its_own_kill_and_a_takeover_and_ends_equal_to_the_new_primarys_journal(string kind)
    {
        PostgresServer? postgres = null;
        if (kind == "postgres" && (postgres = PostgresServer.TryStart(out string? why)) is null)
        {
            Assert.Ignore(why!);
        }
        using (postgres)
        {
            ObserverDatabase database = postgres is null ? ObserverDatabase.Sqlite(Path.Combine(_root, "observer.db")) : ObserverDatabase.Postgres(postgres.CreateDatabase("observer"));
            await FollowThroughKillsAsync(database);
        }
    }

    private async Task FollowThroughKillsAsync(ObserverDatabase database)
    {
        using var pair = Pair.Start(_root);
        string[] observe = ["observe", "--peer", $"{pair.ReplicationA},{pair.ReplicationB}", .. database.Arguments];
        using var load = EngineProcess.Start("load", "--target", $"{pair.ClientA},{pair.ClientB}", "--rate", "2000", "--duration", "14", "--json");

        long killedAt;
        using (var first = EngineProcess.Start(observe))
        {
            database.WaitFor(100, first, "the observer to follow the primary", Wait);
            first.KillHard();
            killedAt = database.LastBlock();
        }
        using var second = EngineProcess.Start(observe);
        second.WaitForError(e => e.Contains($"the database holds blocks up to {killedAt:N0}", StringComparison.Ordinal), "the observer to resume where the database stopped", Wait);
        database.WaitFor(killedAt + 100, second, "the observer to write after resuming", Wait);

        pair.A.KillHard();
        pair.B.WaitForEvent(PairEventKind.TakeOver, "the backup to take over", Wait);
        second.WaitForError(e => e.Contains($"following node@{pair.ReplicationB}", StringComparison.Ordinal), "the observer to follow the new primary", Wait);
        Assert.That(load.WaitForExit(Wait), Is.Zero, load.StdErr);
        Assert.That((long)JsonNode.Parse(load.StdOut)!["errors"]!, Is.Zero, "every order answered");
        ulong takeoverEpoch = pair.B.EventsOf(PairEventKind.TakeOver)[0].Epoch;
        long head = (long)(await AdminStatus.GetAsync(pair.AdminB, state: false)).Block!.Value;
        database.WaitFor(head, second, "the observer to reach the new primary's last block", Wait);
        Assert.That(second.Terminate(Wait), Is.Zero, second.StdErr);
        Assert.That(second.StdOut, Does.Match(@"[1-9][0-9]* signed heads checked"), "the primary's signed heads were checked against the blocks");
        Assert.That(database.Scalar("SELECT max(epoch) FROM blocks"), Is.EqualTo((long)takeoverEpoch), "blocks the new primary sealed");

        // The new primary's journal, loaded up to the observer's last block: the same rows.
        long last = database.LastBlock();
        Assert.That(pair.B.Terminate(Wait), Is.Zero, pair.B.StdErr);
        string loadedFile = Path.Combine(_root, "loaded.db");
        using (var store = new SqliteObserverStore(loadedFile))
        {
            JournalObserver.Load(Path.Combine(_root, "b", "journal"), store, _ => { }, untilBlock: (ulong)last);
        }
        var loaded = ObserverDatabase.Sqlite(loadedFile);
        Assert.That(loaded.LastBlock(), Is.EqualTo(last));
        Assert.That(database.Dump(), Is.EqualTo(loaded.Dump()), "the observer's tables are the ledger's, no row missing or doubled");
    }

    [Test]
    public async Task Observers_that_never_read_speak_out_of_turn_knock_at_the_backup_or_come_one_too_many_cost_the_pair_nothing()
    {
        using var pair = Pair.Start(_root);
        var a = IPEndPoint.Parse(pair.ReplicationA);
        var b = IPEndPoint.Parse(pair.ReplicationB);

        Assert.That(await RefusalAsync(b, ObserveFrom(0)), Does.Contain("not the primary").And.Contain(pair.ReplicationA), "the backup names the other node");
        Assert.That(await RefusalAsync(a, Frame(ReplicationType.Heartbeat, [])), Does.Contain("expected where to start"));
        Assert.That(await RefusalAsync(a, Frame(ReplicationType.ObserveFrom, [1, 2, 3])), Does.Contain("expected where to start"));

        // Four that ask for everything and never read a byte: the primary's sends to them stall, nothing else does.
        var stuck = new List<ReplicationLink>();
        try
        {
            for (int i = 0; i < ObserverFeed.MaxObservers; i++)
            {
                ReplicationLink link = await ConnectAsync(a);
                stuck.Add(link);
                await link.SendAsync(ObserveFrom(0), CancellationToken.None);
            }
            pair.A.WaitForLog(log => Count(log, "follows the ledger from block 0") >= ObserverFeed.MaxObservers, "the primary to serve the four", Wait);
            Assert.That(await RefusalAsync(a, ObserveFrom(0)), Does.Contain("busy"), "one too many");

            using var load = EngineProcess.Start("load", "--target", pair.ClientA, "--rate", "3000", "--duration", "4", "--json");
            Assert.That(load.WaitForExit(Wait), Is.Zero, load.StdErr);
            JsonNode result = JsonNode.Parse(load.StdOut)!;
            Assert.That((long)result["errors"]!, Is.Zero, "every order acknowledged while the observers took nothing");
            Assert.That((long)result["acked"]! + (long)result["rejected"]!, Is.GreaterThan(10_000));
            Assert.That(pair.A.HasEvent(PairEventKind.TakeOver) || pair.B.HasEvent(PairEventKind.TakeOver), Is.False, "no takeover");
        }
        finally
        {
            foreach (ReplicationLink link in stuck)
            {
                link.Dispose();
            }
        }
    }

    private static int Count(string text, string what)
    {
        int count = 0;
        for (int at = text.IndexOf(what, StringComparison.Ordinal); at >= 0; at = text.IndexOf(what, at + what.Length, StringComparison.Ordinal))
        {
            count++;
        }
        return count;
    }

    private static Task<ReplicationLink> ConnectAsync(IPEndPoint at) =>
        ReplicationLink.ConnectAsync(at, ClusterCredentials.Development("observer"), TimeSpan.FromSeconds(10), CancellationToken.None);

    /// <summary>Connects as the observer, sends <paramref name="first"/>, and returns the refusal's text (fails if anything else comes first).</summary>
    private static async Task<string> RefusalAsync(IPEndPoint at, byte[] first)
    {
        using ReplicationLink link = await ConnectAsync(at);
        await link.SendAsync(first, CancellationToken.None);
        using var timeout = new CancellationTokenSource(Wait);
        (ReplicationType Type, ReadOnlyMemory<byte> Payload)? frame = await link.ReadAsync(timeout.Token);
        Assert.That(frame?.Type, Is.EqualTo(ReplicationType.ObserveRefused));
        return Encoding.UTF8.GetString(frame!.Value.Payload.Span);
    }

    private static byte[] ObserveFrom(ulong block)
    {
        byte[] payload = new byte[sizeof(ulong)];
        BinaryPrimitives.WriteUInt64LittleEndian(payload, block);
        return Frame(ReplicationType.ObserveFrom, payload);
    }

    private static byte[] Frame(ReplicationType type, byte[] payload)
    {
        byte[] frame = new byte[ReplicationFrame.HeaderBytes + payload.Length];
        ReplicationFrame.Write(frame, type, payload);
        return frame;
    }

    /// <summary>A witness, a primary (A) and its backup (B) in step, in the development cluster; disposing kills them all.</summary>
    private sealed class Pair : IDisposable
    {
        private readonly List<EngineProcess> _processes = [];

        public string ClientA { get; } = $"127.0.0.1:{Ports.Free()}";

        public string ClientB { get; } = $"127.0.0.1:{Ports.Free()}";

        public string ReplicationA { get; } = $"127.0.0.1:{Ports.Free()}";

        public string ReplicationB { get; } = $"127.0.0.1:{Ports.Free()}";

        public string AdminB { get; } = $"127.0.0.1:{Ports.Free()}";

        public EngineProcess A { get; private set; } = null!;

        public EngineProcess B { get; private set; } = null!;

        public static Pair Start(string root)
        {
            var pair = new Pair();
            try
            {
                string witness = $"127.0.0.1:{Ports.Free()}";
                pair._processes.Add(EngineProcess.Start("witness", "--listen", witness, "--state", Path.Combine(root, "witness.state")));
                string[] Node(string name, string role, string client, string replication, string peer) =>
                    ["serve", "--role", role, "--data", Path.Combine(root, name), "--listen", client, "--replication-listen", replication, "--peer", peer, "--witness", witness];
                pair.A = EngineProcess.Start(Node("a", "primary", pair.ClientA, pair.ReplicationA, pair.ReplicationB));
                pair._processes.Add(pair.A);
                pair.B = EngineProcess.Start([.. Node("b", "backup", pair.ClientB, pair.ReplicationB, pair.ReplicationA), "--admin", pair.AdminB]);
                pair._processes.Add(pair.B);
                pair.A.WaitForEvent(PairEventKind.BackupInStep, "the pair to be in step", Wait);
                // In step can come before the primary's serving node is up (the backup catches up from the journal): observers are served from then.
                pair.A.WaitForLog(log => log.Contains("listening for front-ends", StringComparison.Ordinal), "the primary to serve", Wait);
                return pair;
            }
            catch
            {
                pair.Dispose();
                throw;
            }
        }

        public void Dispose()
        {
            foreach (EngineProcess process in _processes)
            {
                process.Dispose();
            }
        }
    }
}
