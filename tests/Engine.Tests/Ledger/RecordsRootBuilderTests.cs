using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Core.Ledger;
using Engine.Protocol;
using Engine.Tests.Support;

namespace Engine.Tests.Ledger;

/// <summary>
/// The records-root builder on a real FasterLog journal: it reads the committed blocks, the sealer
/// takes its roots into the blocks it opens, and the sections cover every block once, in order,
/// across a restart and a takeover (a new builder continues where the journal's sections stop, even
/// when the last of them was appended and not yet committed).
/// </summary>
public class RecordsRootBuilderTests
{
    private TempDirectory _temp = null!;

    [SetUp]
    public void SetUp() => _temp = new TempDirectory("records-roots");

    [TearDown]
    public void TearDown() => _temp.Dispose();

    private JournalSettings Settings() =>
        new() { Directory = _temp.Sub("journal"), Durability = Durability.Memory, MaxTransactionsPerBlock = 16, MemorySizeBits = 22, PageSizeBits = 18, MaxCommitLagBytes = 1 << 20 };

    private ulong _seq;

    /// <summary>Seals <paramref name="blocks"/> blocks of 1…16 transactions, polling the builder every <paramref name="pollEvery"/> blocks (after a flush, as its thread would find them committed).</summary>
    private void Seal(Journal journal, BlockBuilder builder, RecordsRootBuilder? roots, int blocks, int pollEvery, bool flushLast = true)
    {
        for (int b = 0; b < blocks; b++)
        {
            int size = 1 + (int)(_seq * 7 % 16);
            for (int i = 0; i < size; i++)
            {
                _seq++;
                var tx = Transaction.NewOrder(1, _seq, 2, 1, _seq, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 100 + (long)_seq, 10);
                builder.Add(in tx);
            }
            journal.Append(builder.Seal(1_000 + (long)_seq, out _));
            if (roots is not null && (b + 1) % pollEvery == 0 && (flushLast || b + 1 < blocks))
            {
                journal.Flush();
                roots.Poll();
            }
        }
        if (flushLast)
        {
            journal.Flush();
        }
    }

    private VerifyReport Verify()
    {
        using JournalReader reader = JournalReader.Open(Settings().Directory);
        return reader.Verify(ClusterId.Development);
    }

    [Test]
    public void Roots_cover_every_block_from_the_first_in_order_and_verify()
    {
        using (Journal journal = Journal.Open(Settings()))
        {
            var roots = new RecordsRootBuilder(journal, TimeSpan.Zero);
            var builder = new BlockBuilder(journal.Head, 16) { RootSource = roots };
            Seal(journal, builder, roots, blocks: 200, pollEvery: 7);
            Assert.That(roots.RootsBuilt, Is.GreaterThanOrEqualTo(25), "a root per poll that found blocks, taken by the next block");
        }
        VerifyReport report = Verify();
        Assert.That(report.Intact, Is.True, report.Fault?.ToString());
        Assert.That(report.RootsCover?.First, Is.EqualTo(1UL), "from the first block");
        Assert.That(report.RootsCover?.Last, Is.GreaterThan(180UL));
        Assert.That(report.RootsChecked, Is.GreaterThanOrEqualTo(25));
        Assert.That(report.RootsUnchecked, Is.Zero);
    }

    /// <summary>
    /// On an idle ledger the last blocks' root waits: the builder asks for a block of its own for it only
    /// when a root is wanted (a proof asked for), once, and a root taken by a block meanwhile ends the want.
    /// </summary>
    [Test]
    public void An_idle_ledgers_root_is_asked_a_block_of_its_own_only_when_wanted_and_once()
    {
        using Journal journal = Journal.Open(Settings());
        var roots = new RecordsRootBuilder(journal, TimeSpan.Zero);
        int asked = 0;
        roots.RootWaiting = () => asked++;
        var builder = new BlockBuilder(journal.Head, 16) { RootSource = roots };
        Seal(journal, builder, roots, blocks: 5, pollEvery: 5);
        for (int i = 0; i < 40; i++)
        {
            roots.Poll(); // idle: the root built from the last blocks waits
        }
        Assert.That(asked, Is.Zero, "nobody wants it: no block of its own, the ledger does not grow by itself");

        roots.WantRoot();
        roots.Poll();
        roots.Poll();
        Assert.That(asked, Is.EqualTo(1), "wanted: asked once");
        for (int i = 0; i < 40; i++)
        {
            roots.Poll();
        }
        Assert.That(asked, Is.EqualTo(1), "and only once");

        roots.WantRoot();
        Assert.That(roots.TryTake(out _), Is.True, "an order's block takes the root meanwhile");
        Seal(journal, builder, roots, blocks: 3, pollEvery: 3);
        for (int i = 0; i < 40; i++)
        {
            roots.Poll();
        }
        Assert.That(asked, Is.EqualTo(1), "the want ended with the root it wanted going into a block");
    }

    [Test]
    public void A_restart_and_a_takeover_continue_the_coverage_without_a_gap_or_an_overlap()
    {
        ulong coveredBeforeRestart;
        using (Journal journal = Journal.Open(Settings()))
        {
            var roots = new RecordsRootBuilder(journal, TimeSpan.Zero);
            var builder = new BlockBuilder(journal.Head, 16) { RootSource = roots };
            Seal(journal, builder, roots, blocks: 50, pollEvery: 5);
            coveredBeforeRestart = roots.CoveredBefore;
        }
        using (Journal journal = Journal.Open(Settings()))
        {
            // A restart: a new builder finds where the sections stop.
            var roots = new RecordsRootBuilder(journal, TimeSpan.Zero);
            var builder = new BlockBuilder(journal.Head, 16) { RootSource = roots };
            Seal(journal, builder, roots, blocks: 30, pollEvery: 4, flushLast: false);
            // The last block sealed took a root and is appended, not committed: the builder that takes
            // over on this journal must see it (it flushes first), or its first root would overlap.
            Assert.That(journal.CommittedUntil, Is.LessThan(journal.TailAddress));
            var takeover = new RecordsRootBuilder(journal, TimeSpan.Zero);
            builder.RootSource = takeover;
            takeover.Poll();
            Assert.That(takeover.CoveredBefore, Is.GreaterThan(coveredBeforeRestart));
            Seal(journal, builder, takeover, blocks: 30, pollEvery: 3);
        }
        VerifyReport report = Verify();
        Assert.That(report.Intact, Is.True, report.Fault?.ToString());
        Assert.That(report.RootsCover?.First, Is.EqualTo(1UL));
        Assert.That(report.RootsCover?.Last, Is.GreaterThan(100UL));
    }

    [Test]
    public void A_journal_without_sections_gets_roots_for_its_blocks_from_the_start_or_when_too_long_from_its_head()
    {
        using (Journal journal = Journal.Open(Settings()))
        {
            var builder = new BlockBuilder(journal.Head, 16);
            Seal(journal, builder, roots: null, blocks: 20, pollEvery: 1);
        }
        using (Journal journal = Journal.Open(Settings()))
        {
            var roots = new RecordsRootBuilder(journal, TimeSpan.Zero);
            var builder = new BlockBuilder(journal.Head, 16) { RootSource = roots };
            roots.Poll();
            Assert.That(roots.CoveredBefore, Is.EqualTo(21UL), "the 20 blocks there were read: the next root starts after them");
            Seal(journal, builder, roots, blocks: 10, pollEvery: 2);
        }
        VerifyReport report = Verify();
        Assert.That(report.Intact, Is.True, report.Fault?.ToString());
        Assert.That(report.RootsCover?.First, Is.EqualTo(1UL), "the whole live journal was searched, so every block of it is covered");
    }

    [Test]
    public void A_running_builder_thread_hands_roots_over_on_its_own()
    {
        using Journal journal = Journal.Open(Settings());
        using var roots = new RecordsRootBuilder(journal, TimeSpan.FromMilliseconds(1), yieldToOrderPath: false); // other tests may keep the cores busy
        var builder = new BlockBuilder(journal.Head, 16) { RootSource = roots };
        Seal(journal, builder, roots: null, blocks: 5, pollEvery: 1);
        Assert.That(() => roots.RootsBuilt, Is.GreaterThanOrEqualTo(1).After(10_000, 5), "the thread read the committed blocks and handed over their root");
        Seal(journal, builder, roots: null, blocks: 1, pollEvery: 1);
        Assert.That(BlockFormat.TryReadHeader(LastEntry(journal), out BlockHeader header), Is.Null);
        Assert.That(BlockFormat.TryReadRecordsRoot(LastEntry(journal), in header, out RecordsRoot root), Is.True, "the next block took it");
        Assert.That(root.FirstBlock, Is.EqualTo(1UL));
        Assert.That(roots.Fault, Is.Null);
    }

    private static byte[] LastEntry(Journal journal)
    {
        byte[] last = [];
        journal.Scan((entry, _) =>
        {
            last = entry.ToArray();
            return true;
        });
        return last;
    }
}
