using Engine.Core.Book;
using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Core.Ledger;
using Engine.Protocol;
using Engine.Tests.Book;
using Engine.Tests.Support;

namespace Engine.Tests.Journaling;

/// <summary>
/// <see cref="SnapshotReplica"/> on the simulated journal: it follows what is committed, writes a
/// snapshot after every interval, and each snapshot is the state a replay of the journal reaches at
/// that block.
/// </summary>
public class SnapshotReplicaTests
{
    private static readonly JournalSettings s_settings = new JournalSettings { Directory = "simulated", ClusterId = ClusterId.Development, Durability = Durability.Disk }.Validate();

    /// <summary>A simulated journal and a seeded flow sealed into it, five requests a block, after the reference data the first block starts with (as a node's new ledger does).</summary>
    private sealed class FlowJournal(int seed) : IDisposable
    {
        private readonly List<Transaction> _flow = ExchangePropertyTests.Flow(seed, 2_000);
        private BlockBuilder? _builder;
        private int _next;

        public SimulatedJournal Journal { get; } = SimulatedJournal.Open(new SimulatedJournalDevice("replica"), s_settings);

        /// <summary>Appends <paramref name="blocks"/> blocks, continuing the chain; with <paramref name="commit"/>, commits them.</summary>
        public void Append(int blocks, bool commit = true)
        {
            if (_builder is null)
            {
                _builder = new BlockBuilder(Journal.Head, 64);
                foreach (Transaction admin in ExchangePropertyTests.Reference().AdminTransactions())
                {
                    _builder.Add(admin);
                }
            }
            for (int b = 0; b < blocks; b++)
            {
                for (int i = 0; i < 5; i++)
                {
                    _builder.Add(_flow[_next++]);
                }
                Journal.Append(_builder.Seal(0, out _));
            }
            if (commit)
            {
                Journal.Flush();
            }
        }

        /// <summary>The state a replay of the committed journal reaches after block <paramref name="blockNo"/>.</summary>
        public Hash32 ReplayedThrough(ulong blockNo)
        {
            var applier = new BlockApplier(new Exchange());
            var sink = new NullSink();
            Journal.Scan((entry, _) =>
            {
                BlockRecords records = BlockRecords.Open(entry);
                if (records.Header.BlockNo > blockNo)
                {
                    return false;
                }
                applier.ApplyBlock(records, ref sink);
                return true;
            });
            return applier.Exchange.ComputeChecksum();
        }

        public void Dispose() => Journal.Dispose();
    }

    [Test]
    public void It_follows_what_is_committed_and_each_snapshot_is_the_replayed_state_at_its_block()
    {
        using var temp = new TempDirectory();
        using var chain = new FlowJournal(21);
        chain.Append(50);
        var store = new SnapshotStore(temp.Sub("snapshots"), retain: 2);
        var replica = new SnapshotReplica(chain.Journal, store, intervalBlocks: 16);

        Assert.That(replica.Step(maxBlocks: 10), Is.EqualTo(10), "bounded work per step");
        Assert.That(replica.Step(), Is.EqualTo(7), "and it stops at a block due for a snapshot (16), to take it after the scan");
        while (replica.Step() > 0)
        {
        }

        Assert.That(replica.AppliedBlockNo, Is.EqualTo(50UL));
        Assert.That(store.List().Select(s => s.BlockNo), Is.EqualTo(new ulong[] { 48, 32 }), "after blocks 16, 32, 48; the oldest pruned");
        LoadedSnapshot newest = store.LoadNewest(_ => { })!;
        Assert.That(newest.Exchange.ComputeChecksum(), Is.EqualTo(chain.ReplayedThrough(48)));

        // Appended and not committed: not followed yet; committed: followed, and the next snapshot taken.
        chain.Append(20, commit: false);
        Assert.That(replica.Step(), Is.Zero, "nothing new is committed");
        chain.Journal.Flush();
        int applied = 0;
        for (int step; (step = replica.Step()) > 0;)
        {
            applied += step; // a step ends at a block due for a snapshot: taken after the scan
        }
        Assert.That(applied, Is.EqualTo(20));
        Assert.That(replica.LastSnapshotBlockNo, Is.EqualTo(64UL));
        Assert.That(replica.State.ComputeChecksum(), Is.EqualTo(chain.ReplayedThrough(70)));
    }

    [Test]
    public void A_replica_started_from_a_snapshot_goes_on_from_its_block()
    {
        using var temp = new TempDirectory();
        using var chain = new FlowJournal(22);
        chain.Append(40);
        var store = new SnapshotStore(temp.Sub("snapshots"), retain: 3);
        var first = new SnapshotReplica(chain.Journal, store, intervalBlocks: 10);
        while (first.Step() > 0)
        {
        }
        chain.Append(15);

        LoadedSnapshot newest = store.LoadNewest(_ => { })!;
        Assert.That(newest.Header.BlockNo, Is.EqualTo(40UL));
        var second = new SnapshotReplica(chain.Journal, store, intervalBlocks: 10, from: newest);
        while (second.Step() > 0)
        {
        }

        Assert.That(second.AppliedBlockNo, Is.EqualTo(55UL));
        Assert.That(second.State.ComputeChecksum(), Is.EqualTo(chain.ReplayedThrough(55)), "the snapshot plus the blocks after it make the replayed state");
        Assert.That(second.LastSnapshotBlockNo, Is.EqualTo(50UL));
    }
}
