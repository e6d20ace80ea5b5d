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

    /// <summary>Appends <paramref name="blocks"/> blocks of five requests each from a seeded flow, continuing <paramref name="builder"/>'s chain.</summary>
    private static void AppendBlocks(SimulatedJournal journal, BlockBuilder builder, List<Transaction> flow, ref int next, int blocks)
    {
        for (int b = 0; b < blocks; b++)
        {
            for (int i = 0; i < 5; i++)
            {
                builder.Add(flow[next++]);
            }
            journal.Append(builder.Seal(0, out _));
        }
    }

    /// <summary>The state a replay of the committed journal reaches after block <paramref name="blockNo"/>.</summary>
    private static Hash32 ReplayedThrough(SimulatedJournal journal, ulong blockNo)
    {
        var applier = new BlockApplier(new Exchange(ExchangePropertyTests.Reference()));
        var sink = new NullSink();
        journal.Scan((entry, _) =>
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

    [Test]
    public void It_follows_what_is_committed_and_each_snapshot_is_the_replayed_state_at_its_block()
    {
        using var temp = new TempDirectory();
        var device = new SimulatedJournalDevice("replica");
        using SimulatedJournal journal = SimulatedJournal.Open(device, s_settings);
        var builder = new BlockBuilder(journal.Head, 64);
        List<Transaction> flow = ExchangePropertyTests.Flow(21, 2_000);
        int next = 0;
        AppendBlocks(journal, builder, flow, ref next, 50);
        journal.Flush();
        var store = new SnapshotStore(temp.Sub("snapshots"), retain: 2);
        var replica = new SnapshotReplica(journal, store, ExchangePropertyTests.Reference(), intervalBlocks: 16);

        Assert.That(replica.Step(maxBlocks: 20), Is.EqualTo(20), "bounded work per step");
        while (replica.Step() > 0)
        {
        }

        Assert.That(replica.AppliedBlockNo, Is.EqualTo(50UL));
        Assert.That(store.List().Select(s => s.BlockNo), Is.EqualTo(new ulong[] { 48, 32 }), "after blocks 16, 32, 48; the oldest pruned");
        LoadedSnapshot newest = store.LoadNewest(ExchangePropertyTests.Reference(), _ => { })!;
        Assert.That(newest.Exchange.ComputeChecksum(), Is.EqualTo(ReplayedThrough(journal, 48)));

        // Appended and not committed: not followed yet; committed: followed, and the next snapshot taken.
        AppendBlocks(journal, builder, flow, ref next, 20);
        Assert.That(replica.Step(), Is.Zero, "nothing new is committed");
        journal.Flush();
        Assert.That(replica.Step(), Is.EqualTo(20));
        Assert.That(replica.LastSnapshotBlockNo, Is.EqualTo(64UL));
        Assert.That(replica.State.ComputeChecksum(), Is.EqualTo(ReplayedThrough(journal, 70)));
    }

    [Test]
    public void A_replica_started_from_a_snapshot_goes_on_from_its_block()
    {
        using var temp = new TempDirectory();
        var device = new SimulatedJournalDevice("replica");
        using SimulatedJournal journal = SimulatedJournal.Open(device, s_settings);
        var builder = new BlockBuilder(journal.Head, 64);
        List<Transaction> flow = ExchangePropertyTests.Flow(22, 2_000);
        int next = 0;
        AppendBlocks(journal, builder, flow, ref next, 40);
        journal.Flush();
        var store = new SnapshotStore(temp.Sub("snapshots"), retain: 3);
        var first = new SnapshotReplica(journal, store, ExchangePropertyTests.Reference(), intervalBlocks: 10);
        while (first.Step() > 0)
        {
        }
        AppendBlocks(journal, builder, flow, ref next, 15);
        journal.Flush();

        LoadedSnapshot newest = store.LoadNewest(ExchangePropertyTests.Reference(), _ => { })!;
        Assert.That(newest.Header.BlockNo, Is.EqualTo(40UL));
        var second = new SnapshotReplica(journal, store, ExchangePropertyTests.Reference(), intervalBlocks: 10, from: newest);
        while (second.Step() > 0)
        {
        }

        Assert.That(second.AppliedBlockNo, Is.EqualTo(55UL));
        Assert.That(second.State.ComputeChecksum(), Is.EqualTo(ReplayedThrough(journal, 55)), "the snapshot plus the blocks after it make the replayed state");
        Assert.That(second.LastSnapshotBlockNo, Is.EqualTo(50UL));
    }
}
