using Engine.Core.Book;
using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Core.Ledger;
using Engine.Core.Server;
using Engine.Protocol;
using Engine.Tests.Book;
using Engine.Tests.Support;

namespace Engine.Tests.Journaling;

/// <summary>
/// Start-up bounded by the snapshot interval, on a real FasterLog: the block index finds a block by a
/// seek, the journal verifies from a snapshot's block, the state is the snapshot plus the blocks after
/// it, and whatever is damaged (the index, the newest snapshot, an anchor the journal does not hold)
/// costs time, never a wrong state.
/// </summary>
public class BoundedRecoveryTests
{
    private const int Blocks = 3000;
    private TempDirectory _temp = null!;

    [SetUp]
    public void SetUp() => _temp = new TempDirectory("recovery");

    [TearDown]
    public void TearDown() => _temp.Dispose();

    private JournalSettings Settings() =>
        new() { Directory = _temp.Sub("journal"), Durability = Durability.Disk, MemorySizeBits = 24, PageSizeBits = 20, MaxCommitLagBytes = 1 << 20 };

    private string SnapshotDirectory => _temp.Sub("snapshots");

    /// <summary>A journal of <see cref="Blocks"/> blocks after genesis, a seeded flow's transaction in each; the hash of every block.</summary>
    private Hash32[] WriteJournal() => WriteJournal(out _);

    private Hash32[] WriteJournal(out long[] addresses)
    {
        var hashes = new Hash32[Blocks + 1];
        addresses = new long[Blocks + 1];
        List<Transaction> flow = ExchangePropertyTests.Flow(31, Blocks);
        using Journal journal = Journal.Open(Settings());
        hashes[0] = journal.Head.Hash;
        var builder = new BlockBuilder(journal.Head, 8);
        for (int b = 1; b <= Blocks; b++)
        {
            builder.Add(flow[b - 1]);
            addresses[b] = journal.Append(builder.Seal(0, out _));
            hashes[b] = builder.Head.Hash;
        }
        journal.Flush();
        return hashes;
    }

    /// <summary>The number of the first block a scan from <paramref name="address"/> visits.</summary>
    private static ulong FirstBlockFrom(Journal journal, long address)
    {
        ulong first = ulong.MaxValue;
        journal.Scan(address, (entry, _) =>
        {
            first = BlockRecords.Open(entry).Header.BlockNo;
            return false;
        });
        return first;
    }

    [TestCase(0, TestName = "The block index finds a block by a seek and survives a damaged index file (an entry naming another block)")]
    [TestCase(8, TestName = "The block index finds a block by a seek and survives a damaged index file (an entry inside another block)")]
    public void The_block_index_finds_a_block_by_a_seek_and_survives_a_damaged_index_file(int offset)
    {
        WriteJournal(out long[] addresses);
        string indexFile = Path.Combine(Settings().Directory, BlockIndex.FileName);
        using (Journal journal = Journal.Open(Settings()))
        {
            Assert.That(FirstBlockFrom(journal, journal.LocateFrom(2500)), Is.EqualTo(2048UL), "the nearest indexed block at or before 2500");
            Assert.That(FirstBlockFrom(journal, journal.LocateFrom(700)), Is.EqualTo(0UL), "before the first indexed block after genesis: genesis");
        }
        Assert.That(new FileInfo(indexFile).Length, Is.EqualTo(3 * 16), "blocks 0, 1024 and 2048, 16 bytes each");

        // A forged index: block 2048's entry points at block 2047 (or into it). It is checked on use and
        // dropped. (Opened at an anchor after it, so the verification does not re-index block 2048.)
        byte[] bytes = File.ReadAllBytes(indexFile);
        System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(32 + 8), addresses[2047] + offset);
        File.WriteAllBytes(indexFile, bytes);
        Hash32 last = default;
        using (Journal journal = Journal.Open(Settings()))
        {
            last = journal.Head.Hash;
        }
        File.WriteAllBytes(indexFile, bytes);
        using (Journal journal = Journal.Open(Settings(), new JournalAnchor(Blocks, last)))
        {
            Assert.That(journal.Opening.AnchorBlockNo, Is.EqualTo((ulong)Blocks));
            Assert.That(FirstBlockFrom(journal, journal.LocateFrom(2500)), Is.EqualTo(1024UL), "the wrong entry dropped, the one before it used");
        }

        // Garbage: no entry survives the load; the search starts at the journal's first block and still finds the block.
        File.WriteAllBytes(indexFile, [.. Enumerable.Range(0, 40).Select(i => (byte)(i * 37))]);
        using (Journal journal = Journal.Open(Settings(), new JournalAnchor(Blocks, last)))
        {
            Assert.That(journal.Opening.AnchorBlockNo, Is.EqualTo((ulong)Blocks));
            Assert.That(FirstBlockFrom(journal, journal.LocateFrom(2500)), Is.EqualTo(0UL));
        }
        using (Journal journal = Journal.Open(Settings()))
        {
            Assert.That(FirstBlockFrom(journal, journal.LocateFrom(2500)), Is.EqualTo(2048UL), "indexed again by the verification from genesis");
        }
        Assert.That(new FileInfo(indexFile).Length, Is.EqualTo(3 * 16), "and rewritten");
    }

    [Test]
    public void Large_blocks_are_indexed_by_their_bytes_as_well_as_by_their_number()
    {
        BlockIndex index = BlockIndex.InMemory();
        index.Note(0, 64);
        index.Note(1, 64 + 65_536);
        index.Note(15, 64 + BlockIndex.EveryBytes - 1);
        Assert.That(index.Count, Is.EqualTo(1), "within a MiB of genesis");
        index.Note(16, 64 + BlockIndex.EveryBytes);
        index.Note(17, 64 + BlockIndex.EveryBytes + 65_536);
        Assert.That(index.Count, Is.EqualTo(2), "a MiB on: indexed");
        index.Note(BlockIndex.Every, 64 + BlockIndex.EveryBytes + 65_537);
        Assert.That(index.Count, Is.EqualTo(3), "every 1,024th block, however close");
    }

    [Test]
    public void The_journal_verifies_from_a_snapshot_anchor_and_only_the_blocks_after_it()
    {
        Hash32[] hashes = WriteJournal();
        ChainHead fromGenesis;
        using (Journal journal = Journal.Open(Settings()))
        {
            fromGenesis = journal.Head;
            Assert.That(journal.Opening.AnchorBlockNo, Is.Null);
            Assert.That(journal.Opening.VerifiedBlocks, Is.EqualTo(Blocks + 1));
        }
        using (Journal journal = Journal.Open(Settings(), new JournalAnchor(2500, hashes[2500])))
        {
            Assert.That(journal.Opening.AnchorBlockNo, Is.EqualTo(2500UL));
            Assert.That(journal.Opening.VerifiedBlocks, Is.EqualTo(Blocks - 2500), "only the blocks after the anchor are re-hashed");
            Assert.That(journal.Head, Is.EqualTo(fromGenesis), "the same head either way");
            Assert.That(FirstBlockFrom(journal, journal.Opening.ReplayFrom), Is.EqualTo(2500UL), "replay starts at the anchor block (and skips it)");
        }
    }

    [TestCase(2500UL, false, "not the snapshot's")]
    [TestCase(Blocks + 5UL, true, "not in the journal")]
    public void An_anchor_the_journal_does_not_hold_is_refused_and_the_chain_verified_from_genesis(ulong blockNo, bool rightHash, string why)
    {
        Hash32[] hashes = WriteJournal();
        var wrong = Hash32.From(new byte[32]);
        using Journal journal = Journal.Open(Settings(), new JournalAnchor(blockNo, rightHash ? hashes[^1] : wrong));
        Assert.That(journal.Opening.AnchorBlockNo, Is.Null);
        Assert.That(journal.Opening.AnchorRefused, Does.Contain(why));
        Assert.That(journal.Opening.VerifiedBlocks, Is.EqualTo(Blocks + 1));
        Assert.That(journal.Head.Hash, Is.EqualTo(hashes[^1]));
    }

    /// <summary>Snapshots after blocks 1000, 2000 and 3000, written by a replica following the journal.</summary>
    private void TakeSnapshots()
    {
        using Journal journal = Journal.Open(Settings());
        var replica = new SnapshotReplica(journal, new SnapshotStore(SnapshotDirectory, retain: 3), intervalBlocks: 1000);
        while (replica.Step() > 0)
        {
        }
    }

    private (Hash32 Checksum, RecoveryReport Report) Recover(SnapshotStore? store, List<string>? said = null)
    {
        (Journal journal, Exchange exchange, RecoveryReport report) =
            NodeRecovery.Recover(anchor => Journal.Open(Settings(), anchor), store, "test", line => said?.Add(line));
        using (journal)
        {
            exchange.AssertInvariants();
            return (exchange.ComputeChecksum(), report);
        }
    }

    [Test]
    public void Recovery_from_the_newest_snapshot_reaches_the_state_of_a_full_replay_and_falls_back_past_a_damaged_one()
    {
        WriteJournal();
        TakeSnapshots();
        (Hash32 full, RecoveryReport genesis) = Recover(store: null);
        Assert.That(genesis.SnapshotBlock, Is.Null);
        Assert.That(genesis.ReplayedBlocks, Is.EqualTo(Blocks + 1));

        var store = new SnapshotStore(SnapshotDirectory, retain: 3);
        (Hash32 fromNewest, RecoveryReport newest) = Recover(store);
        Assert.That(newest.SnapshotBlock, Is.EqualTo(3000UL));
        Assert.That(newest.ReplayedBlocks, Is.Zero);
        Assert.That(newest.VerifiedBlocks, Is.Zero);
        Assert.That(fromNewest, Is.EqualTo(full));

        // The newest snapshot damaged: reported, and the next older one used, with the blocks after it.
        string newestPath = store.PathOf(3000);
        byte[] bytes = File.ReadAllBytes(newestPath);
        bytes[bytes.Length / 2] ^= 0x40;
        File.WriteAllBytes(newestPath, bytes);
        var said = new List<string>();
        (Hash32 fromOlder, RecoveryReport older) = Recover(store, said);
        Assert.That(older.SnapshotBlock, Is.EqualTo(2000UL));
        Assert.That(older.ReplayedBlocks, Is.EqualTo(1000));
        Assert.That(older.VerifiedBlocks, Is.EqualTo(1000));
        Assert.That(fromOlder, Is.EqualTo(full));
        Assert.That(said, Has.Some.Contains(newestPath).And.Contains("not used"));
    }

    [Test]
    public void A_snapshot_of_another_chain_is_not_used()
    {
        WriteJournal();
        TakeSnapshots();
        (Hash32 full, _) = Recover(store: null);
        // The journal replaced by another chain (a diverged one set aside, a new one begun): the snapshots stay.
        Directory.Delete(Settings().Directory, recursive: true);
        Directory.CreateDirectory(Settings().Directory);
        using (Journal other = Journal.Open(Settings()))
        {
            var builder = new BlockBuilder(other.Head, 8);
            foreach (Transaction tx in ExchangePropertyTests.Flow(99, Blocks))
            {
                builder.Add(tx);
                other.Append(builder.Seal(0, out _));
            }
        }
        (Hash32 otherState, RecoveryReport report) = Recover(new SnapshotStore(SnapshotDirectory, retain: 3));
        Assert.That(report.SnapshotBlock, Is.Null, "block 3000 of this chain is not the snapshot's block 3000");
        Assert.That(report.SnapshotSkipped, Does.Contain("not the snapshot's"));
        Assert.That(otherState, Is.Not.EqualTo(full));
        Assert.That(otherState, Is.EqualTo(Recover(store: null).Checksum), "the state of this chain, replayed from genesis");
    }

    [Test]
    public async Task The_snapshot_taker_snapshots_when_asked_and_after_a_recovery_that_replayed_more_than_the_interval()
    {
        WriteJournal();
        var store = new SnapshotStore(SnapshotDirectory, retain: 3);
        var schedule = new SnapshotSchedule(store, EveryBlocks: 2000, Every: TimeSpan.Zero);
        using (Journal journal = Journal.Open(Settings()))
        using (var taker = new SnapshotTaker(journal, schedule, new RecoveryReport(null, null, Blocks + 1, Blocks + 1, Blocks, Blocks, 0, 0, 0, 0, 0, 0, 0), TimeProvider.System, _ => { }))
        {
            // After block 2000 by the interval, and at the head (3000) once level, as the recovery replayed 3001 blocks.
            Until.True(() => taker.Status.SnapshotBlock == 3000, "the snapshot after the long recovery");
            Assert.That(store.List().Select(s => s.BlockNo).ToArray(), Is.EqualTo(new ulong[] { 3000, 2000 }));
            Assert.That(await taker.RequestAsync().WaitAsync(TimeSpan.FromSeconds(30)), Is.EqualTo(3000UL), "nothing new: the existing one");
            Assert.That(taker.Status.Taken, Is.EqualTo(2));
        }

        // Started from the journal anchored at that snapshot, it asks for one more block and snapshots it when asked.
        List<Transaction> more = ExchangePropertyTests.Flow(32, 10);
        (Journal reopened, _, RecoveryReport report) = NodeRecovery.Recover(anchor => Journal.Open(Settings(), anchor), store, "test", _ => { });
        using (reopened)
        using (var taker = new SnapshotTaker(reopened, schedule, report, TimeProvider.System, _ => { }))
        {
            Assert.That(report.SnapshotBlock, Is.EqualTo(3000UL));
            var builder = new BlockBuilder(reopened.Head, 8);
            builder.Add(more[0]);
            reopened.Append(builder.Seal(0, out _));
            reopened.Flush();
            Assert.That(await taker.RequestAsync().WaitAsync(TimeSpan.FromSeconds(30)), Is.EqualTo(3001UL));
            Assert.That(taker.Status.Taken, Is.EqualTo(1));
        }
        (Hash32 full, _) = Recover(store: null);
        LoadedSnapshot newest = store.LoadNewest(_ => { })!;
        Assert.That(newest.Header.BlockNo, Is.EqualTo(3001UL));
        Assert.That(newest.Exchange.ComputeChecksum(), Is.EqualTo(full), "the snapshot is the state a full replay reaches");
    }

    /// <summary>
    /// The replica hands its checksums (and writes its snapshots) outside its journal scan: a FasterLog
    /// scan holds the log's epoch while it is on an entry, and another scan that must load pages from
    /// disk waits for that epoch. On a primary the checksum goes to the pair, under the lock a
    /// catch-up's scan holds: the two waited on each other for good (a fresh backup never joined a
    /// primary with 20 M orders). Here the callback waits for another thread's scan of the whole journal.
    /// </summary>
    [Test]
    public void The_replica_hands_its_checksums_over_outside_its_journal_scan()
    {
        var settings = new JournalSettings { Directory = _temp.Sub("small"), Durability = Durability.Disk, PageSizeBits = 12, MemorySizeBits = 14, MaxCommitLagBytes = 4096, MaxTransactionsPerBlock = 8 };
        using Journal journal = Journal.Open(settings);
        var builder = new BlockBuilder(journal.Head, 8);
        foreach (Transaction tx in ExchangePropertyTests.Flow(41, 600))
        {
            builder.Add(tx);
            journal.Append(builder.Seal(0, out _));
        }
        journal.Flush();
        var otherScans = new List<bool>();
        var replica = new SnapshotReplica(journal, new SnapshotStore(SnapshotDirectory, retain: 1), intervalBlocks: 0)
        {
            Checksums = new ChecksumSchedule(new ChecksumCadence(200, 0)),
            StateChecksums = (_, _) =>
            {
                // Another reader of the whole journal (a catch-up), which this callback waits for (as the pair's lock would).
                Task<int> scan = Task.Run(() =>
                {
                    int blocks = 0;
                    journal.Scan((_, _) => ++blocks > 0);
                    return blocks;
                });
                otherScans.Add(scan.Wait(TimeSpan.FromSeconds(20)) && scan.Result == 601);
            },
        };
        while (replica.Step() > 0)
        {
        }
        Assert.That(otherScans, Has.Count.EqualTo(3), "checksums after blocks 200, 400 and 600");
        Assert.That(otherScans, Is.All.True, "the other scan went through while the replica waited");
    }
}
