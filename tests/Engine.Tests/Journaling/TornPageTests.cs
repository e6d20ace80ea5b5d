using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Protocol;
using Engine.Tests.Book;
using Engine.Tests.Support;

namespace Engine.Tests.Journaling;

/// <summary>
/// What a power loss can leave at the end of the log file (docs/snapshots.md, "Durability"): a torn
/// write of what no commit covered is cut off by recovery, to the last commit exactly; committed
/// bytes that did not reach the disk although the commit record did (a device that ignores flushes)
/// are refused, with the block named, never read as a shorter chain.
/// </summary>
public class TornPageTests
{
    private TempDirectory _temp = null!;

    [SetUp]
    public void SetUp() => _temp = new TempDirectory("torn");

    [TearDown]
    public void TearDown() => _temp.Dispose();

    private JournalSettings Settings() =>
        new() { Directory = _temp.Sub("journal"), Durability = Durability.Disk, MemorySizeBits = 24, PageSizeBits = 16, MaxCommitLagBytes = 1 << 20 };

    private string LogFile => Path.Combine(Settings().Directory, Journal.SegmentPrefix + ".0");

    /// <summary>Journals <paramref name="blocks"/> one-order blocks and commits them; returns the head.</summary>
    private ChainHead Commit(Journal journal, int blocks, int seed)
    {
        var builder = new BlockBuilder(journal.Head, 8);
        foreach (Transaction tx in ExchangePropertyTests.Flow(seed, blocks))
        {
            builder.Add(tx);
            journal.Append(builder.Seal(0, out _));
        }
        journal.Flush();
        return builder.Head;
    }

    [Test]
    public void A_torn_write_after_the_last_commit_is_cut_and_the_chain_ends_at_the_commit()
    {
        ChainHead committed;
        long committedUntil;
        using (Journal journal = Journal.Open(Settings()))
        {
            committed = Commit(journal, 300, seed: 1);
            committedUntil = journal.CommittedUntil;
        }
        // The process dies while the next page is being written: garbage after the committed end.
        using (FileStream file = File.Open(LogFile, FileMode.Open, FileAccess.ReadWrite))
        {
            file.Position = committedUntil;
            file.Write([.. Enumerable.Range(0, 5000).Select(i => (byte)(i * 131 + 7))]);
        }

        using Journal reopened = Journal.Open(Settings());
        Assert.That(reopened.Head, Is.EqualTo(committed), "the last commit, exactly: nothing of the torn write");
        ChainHead more = Commit(reopened, 10, seed: 2);
        Assert.That(more.BlockNo, Is.EqualTo(committed.BlockNo + 10), "and the chain goes on over it");
    }

    [Test]
    public void Committed_bytes_lost_under_a_surviving_commit_record_are_refused_with_the_block_named()
    {
        long committedUntil;
        using (Journal journal = Journal.Open(Settings()))
        {
            Commit(journal, 300, seed: 3);
            committedUntil = journal.CommittedUntil;
        }
        // The last page's data never reached the disk (a device that acknowledged a flush it did not
        // do), but the commit record did: the tail of the committed log reads as zeros.
        long lostFrom = committedUntil - 3000;
        using (FileStream file = File.Open(LogFile, FileMode.Open, FileAccess.ReadWrite))
        {
            file.Position = lostFrom;
            file.Write(new byte[committedUntil - lostFrom]);
        }

        var refused = Assert.Throws<JournalCorruptException>(() => Journal.Open(Settings()).Dispose())!;
        Assert.That(refused.Message, Does.Contain("does not verify").And.Contain("block"));
        Assert.That(refused.Fault, Is.Not.Null);
        Assert.That(refused.Fault!.Address, Is.LessThanOrEqualTo(committedUntil));
    }
}
