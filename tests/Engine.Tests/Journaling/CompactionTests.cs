using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Core.Server;
using Engine.Protocol;
using Engine.Tests.Book;
using Engine.Tests.Support;

namespace Engine.Tests.Journaling;

/// <summary>
/// Compaction on a real FasterLog: the base moves to a snapshot's block, FASTER frees the segments
/// before it, the archive keeps the blocks as a chain the reader verifies with the live journal from
/// genesis, and recovery, the reader and a later compaction all start at the base.
/// </summary>
public class CompactionTests
{
    private const int Blocks = 4000;
    private TempDirectory _temp = null!;

    [SetUp]
    public void SetUp() => _temp = new TempDirectory("compaction");

    [TearDown]
    public void TearDown() => _temp.Dispose();

    // 64 KiB pages, 256 KiB segments: 4,000 blocks of ~1 KiB span about 16 segment files.
    private JournalSettings Settings() =>
        new() { Directory = _temp.Sub("journal"), Durability = Durability.Disk, PageSizeBits = 16, MemorySizeBits = 18, SegmentSizeBits = 18, MaxCommitLagBytes = 64 << 10, MaxTransactionsPerBlock = 8 };

    /// <summary>A journal of <see cref="Blocks"/> blocks of 8 transactions each; every block's hash.</summary>
    private Hash32[] WriteJournal()
    {
        var hashes = new Hash32[Blocks + 1];
        List<Transaction> flow = ExchangePropertyTests.Flow(7, Blocks * 8);
        using Journal journal = Journal.Open(Settings());
        hashes[0] = journal.Head.Hash;
        var builder = new BlockBuilder(journal.Head, 8);
        for (int b = 1; b <= Blocks; b++)
        {
            for (int t = 0; t < 8; t++)
            {
                builder.Add(flow[((b - 1) * 8) + t]);
            }
            journal.Append(builder.Seal(0, out _));
            hashes[b] = builder.Head.Hash;
        }
        journal.Flush();
        return hashes;
    }

    private int SegmentFiles() => Directory.GetFiles(Settings().Directory, Journal.SegmentPrefix + ".*").Length;

    [TestCase(true)]
    [TestCase(false)]
    public void The_base_moves_the_segments_before_it_are_freed_and_the_chain_still_verifies(bool archived)
    {
        Hash32[] hashes = WriteJournal();
        int before = SegmentFiles();
        BlockArchive? archive = archived ? BlockArchive.Of(Settings().Directory) : null;

        using (Journal journal = Journal.Open(Settings()))
        {
            Compaction? done = journal.Compact(new JournalAnchor(3000, hashes[3000]), archive);
            Assert.That(done, Is.Not.Null);
            Assert.That(done!.ArchivedBlocks, Is.EqualTo(archived ? 3000 : 0), "blocks 0 … 2999");
            Assert.That(journal.Base, Is.EqualTo(new JournalAnchor(3000, hashes[3000])));
            Assert.That(journal.Compact(new JournalAnchor(3000, hashes[3000]), archive), Is.Null, "not after the base: nothing to do");
            Assert.That(journal.Compact(new JournalAnchor(3500, hashes[3499]), archive), Is.Null, "a block the journal does not hold with that hash");
            journal.Flush(); // the commit that persists the new begin (the committer issues it on its own too)
        }
        Assert.That(SegmentFiles(), Is.LessThan(before / 2), $"FASTER freed the segments before the base ({before} files before)");

        using (Journal reopened = Journal.Open(Settings()))
        {
            Assert.That(reopened.Base?.BlockNo, Is.EqualTo(3000UL), "journal.json keeps the base");
            Assert.That(reopened.Opening.BaseBlockNo, Is.EqualTo(3000UL));
            Assert.That(reopened.Head.Hash, Is.EqualTo(hashes[Blocks]));
            Assert.That(reopened.FindBlock(new JournalAnchor(2999, hashes[2999])), Is.Null, "before the base: not the journal's any more");
        }

        using JournalReader reader = JournalReader.Open(Settings().Directory);
        VerifyReport report = reader.Verify(ClusterId.Development);
        Assert.That(report.Intact, Is.True, report.Fault?.ToString());
        Assert.That(report.Head?.Hash, Is.EqualTo(hashes[Blocks]));
        if (archived)
        {
            Assert.That(report.StartedAtBase, Is.Null, "from genesis, through the archive");
            Assert.That(report.Blocks, Is.EqualTo(Blocks + 1));
            Assert.That(report.ArchivedBlocks, Is.EqualTo(3000));
        }
        else
        {
            Assert.That(report.StartedAtBase, Is.EqualTo(3000UL), "the blocks before the base are gone");
            Assert.That(report.Blocks, Is.EqualTo(Blocks - 3000 + 1));
        }
        var seen = new List<ulong>();
        reader.Scan((entry, _) =>
        {
            seen.Add(BlockRecords.Open(entry).Header.BlockNo);
            return true;
        });
        Assert.That(seen, Is.EqualTo(Enumerable.Range(archived ? 0 : 3000, archived ? Blocks + 1 : Blocks - 3000 + 1).Select(b => (ulong)b)), "a reader's scan: the archive, then the journal from its base, each block once");
    }

    /// <summary>A damaged archive file is named by the reader, never read past.</summary>
    [Test]
    public void A_damaged_archive_fails_verification()
    {
        Hash32[] hashes = WriteJournal();
        using (Journal journal = Journal.Open(Settings()))
        {
            journal.Compact(new JournalAnchor(2000, hashes[2000]), BlockArchive.Of(Settings().Directory));
        }
        string file = BlockArchive.Of(Settings().Directory).Files()[0].Path;
        byte[] bytes = File.ReadAllBytes(file);
        bytes[bytes.Length / 2] ^= 0x40;
        File.WriteAllBytes(file, bytes);

        using JournalReader reader = JournalReader.Open(Settings().Directory);
        VerifyReport report = reader.Verify();
        Assert.That(report.Intact, Is.False);
        Assert.That(report.Fault!.Reason, Does.Contain("damaged"));
    }

    /// <summary>
    /// A reader racing FASTER's background deletion of the segments before a new base can find a
    /// segment file gone between listing and reading, and FASTER's device then creates it empty: an
    /// empty segment file is none (the reader begins at the first one that holds bytes), so that
    /// race cannot leave the journal unreadable.
    /// </summary>
    [Test]
    public void An_empty_segment_file_before_the_first_real_one_is_not_where_the_reader_begins()
    {
        Hash32[] hashes = WriteJournal();
        using (Journal journal = Journal.Open(Settings()))
        {
            Assert.That(journal.Compact(new JournalAnchor(2000, hashes[2000]), BlockArchive.Of(Settings().Directory)), Is.Not.Null);
        }
        long first = Directory.GetFiles(Settings().Directory, Journal.SegmentPrefix + ".*").Select(f => long.Parse(Path.GetExtension(f).AsSpan(1))).Min();
        Assert.That(first, Is.GreaterThan(1), "compaction freed the first segments, and Compact returned after they were gone");
        File.WriteAllBytes(Path.Combine(Settings().Directory, Journal.SegmentPrefix + ".1"), []);

        using JournalReader reader = JournalReader.Open(Settings().Directory);
        VerifyReport report = reader.Verify(ClusterId.Development);
        Assert.That(report.Intact, Is.True, report.Fault?.ToString());
        Assert.That(report.Head?.Hash, Is.EqualTo(hashes[Blocks]));
    }

    /// <summary>
    /// A crash after journal.json names the new base but before FASTER's truncation was committed: the
    /// journal still holds the blocks before the base, recovery starts at the base anyway, and the
    /// next compaction frees them.
    /// </summary>
    [Test]
    public void Recovery_starts_at_the_base_whatever_fasterlog_still_holds_before_it()
    {
        Hash32[] hashes = WriteJournal();
        using (Journal journal = Journal.Open(Settings()))
        {
            new JournalGeometry(16, 18, hashes[0].ToString()).WithBase(new JournalAnchor(2500, hashes[2500])).Write(Settings().Directory);
            journal.CrashForTest();
        }
        var snapshots = new SnapshotStore(_temp.Sub("snapshots"), 3);
        using Journal reopened = Journal.Open(Settings());
        Assert.That(reopened.Base?.BlockNo, Is.EqualTo(2500UL));
        Assert.That(reopened.Opening.BaseBlockNo, Is.EqualTo(2500UL));
        Assert.That(reopened.Opening.ReplayFrom, Is.EqualTo(reopened.FindBlock(new JournalAnchor(2500, hashes[2500]))));
        Assert.That(snapshots.List(), Is.Empty);
        Assert.That(() => NodeRecovery.Recover(_ => reopened, snapshots, "test", _ => { }),
            Throws.InstanceOf<JournalCorruptException>().With.Message.Contains("no snapshot of a block it holds"), "a base with no snapshot to replay onto is refused, loudly");
    }

    /// <summary>
    /// A journal that starts at an installed snapshot's block keeps the history the journal it replaced
    /// holds, in its archive, when that journal holds the snapshot's block with its hash (found by the
    /// 300-round drill: after two divergences no live journal held the orders before the snapshot).
    /// </summary>
    [Test]
    public void A_journal_started_at_a_snapshot_keeps_the_history_the_journal_set_aside_holds()
    {
        Hash32[] hashes = WriteJournal();
        string aside = _temp.Sub("journal.discarded");
        Directory.Move(Settings().Directory, aside);
        byte[]? anchorBlock = null;
        using (JournalReader old = JournalReader.Open(aside))
        {
            old.Scan((entry, _) =>
            {
                bool isAnchor = BlockRecords.Open(entry).Header.BlockNo == 3000;
                anchorBlock = isAnchor ? entry.ToArray() : null;
                return !isAnchor;
            });
        }
        var anchor = new JournalAnchor(3000, hashes[3000]);
        using (Journal.Open(Settings(), anchor, anchorBlock))
        {
        }
        var elsewhere = new BlockArchive(_temp.Sub("elsewhere"));
        Assert.That(JournalHistory.Carry(aside, new JournalAnchor(3000, hashes[2999]), elsewhere), Does.Contain("another block 3000"));
        Assert.That(elsewhere.Files(), Is.Empty, "not the chain's: nothing carried");

        Assert.That(JournalHistory.Carry(aside, anchor, BlockArchive.Of(Settings().Directory)), Does.Contain("kept the history"));

        using JournalReader reader = JournalReader.Open(Settings().Directory);
        VerifyReport report = reader.Verify(ClusterId.Development);
        Assert.Multiple(() =>
        {
            Assert.That(report.Intact, Is.True, report.Fault?.ToString());
            Assert.That(report.StartedAtBase, Is.Null, "from genesis, through the archive");
            Assert.That(report.ArchivedBlocks, Is.EqualTo(3000));
            Assert.That(report.Head?.Hash, Is.EqualTo(hashes[3000]));
        });
    }
}
