using Engine.Cli.Load;
using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Protocol;
using Engine.Tests.Support;

namespace Engine.Tests.Journaling;

/// <summary>
/// <see cref="JournalAudit"/>, the check that <c>engine load --journal</c>, <c>engine demo</c> and
/// <c>engine drill</c> share: a journal written by hand (so that it can hold what the engine never
/// writes, an order journaled twice) and receipts right and wrong in each way it counts.
/// </summary>
public class JournalAuditTests
{
    private TempDirectory _temp = null!;
    private string _journal = null!;

    /// <summary>Block 1: client 1 seqs 1-3 at LSNs 1-3. Block 2: client 2 seqs 1-2 at LSNs 4-5, and client 1 seq 3 again at LSN 6.</summary>
    private Hash32 _block1;
    private Hash32 _block2;

    [SetUp]
    public void SetUp()
    {
        _temp = new TempDirectory("audit");
        _journal = _temp.Sub("journal");
        using Journal journal = Journal.Open(new JournalSettings { Directory = _journal, MemorySizeBits = 24, PageSizeBits = 20, MaxCommitLagBytes = 1 << 20 });
        var builder = new BlockBuilder(journal.Head, maxTransactionsPerBlock: 10);
        _block1 = Seal(journal, builder, (1, 1), (1, 2), (1, 3));
        _block2 = Seal(journal, builder, (2, 1), (2, 2), (1, 3));
    }

    [TearDown]
    public void TearDown() => _temp.Dispose();

    private static Hash32 Seal(Journal journal, BlockBuilder builder, params (uint Client, ulong Seq)[] orders)
    {
        foreach (var (client, seq) in orders)
        {
            builder.Add(Transaction.NewOrder(client, seq, 1, 1, seq, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 100, 1));
        }
        journal.Append(builder.Seal(0, out ChainHead head));
        return head.Hash;
    }

    private AckedOrder Receipt(uint client, ulong seq, ulong lsn, ulong blockNo, Hash32? hash = null) =>
        new(client, seq, lsn, blockNo, hash ?? (blockNo == 1 ? _block1 : _block2), 0);

    private Task<AuditResult> Audit(params AckedOrder[] receipts) => JournalAudit.CheckAsync(_journal, receipts, TimeSpan.FromMilliseconds(200));

    [Test]
    public async Task Receipts_that_match_the_journal_are_clean()
    {
        AuditResult result = await Audit(Receipt(1, 1, 1, 1), Receipt(1, 2, 2, 1), Receipt(2, 1, 4, 2), Receipt(2, 2, 5, 2));
        Assert.That(result, Is.EqualTo(new AuditResult(0, 0, 0)));
        Assert.That(result.Clean, Is.True);
    }

    [Test]
    public async Task A_receipt_whose_order_is_not_at_its_lsn_is_lost()
    {
        AuditResult result = await Audit(Receipt(1, 1, 1, 1), Receipt(1, 2, 4, 2), Receipt(9, 1, 2, 1));
        Assert.That(result, Is.EqualTo(new AuditResult(2, 0, 0)), "client 1 seq 2 is at LSN 2, not 4; client 9 was never journaled");
    }

    [Test]
    public async Task A_receipt_naming_a_block_that_is_not_in_the_chain_is_lost_even_if_its_order_is_at_its_lsn()
    {
        var discarded = Hash32.From(Enumerable.Repeat((byte)7, Hash32.Bytes).ToArray());
        AuditResult result = await Audit(Receipt(1, 1, 1, 1, discarded));
        Assert.That(result.Lost, Is.EqualTo(1));
    }

    [Test]
    public async Task An_order_journaled_twice_is_a_duplicate()
    {
        AuditResult result = await Audit(Receipt(1, 3, 3, 1), Receipt(1, 1, 1, 1));
        Assert.That(result, Is.EqualTo(new AuditResult(0, 1, 0)));
    }

    [Test]
    public async Task Two_receipts_naming_one_block_number_with_two_hashes_are_a_split()
    {
        var other = Hash32.From(Enumerable.Repeat((byte)9, Hash32.Bytes).ToArray());
        AuditResult result = await Audit(Receipt(1, 1, 1, 1), Receipt(1, 2, 2, 1, other), Receipt(2, 1, 4, 2));
        Assert.Multiple(() =>
        {
            Assert.That(result.Split, Is.EqualTo(1));
            Assert.That(result.Lost, Is.EqualTo(1), "the receipt of the block that is not in the journal");
            Assert.That(result.Clean, Is.False);
        });
    }

    [Test]
    public async Task A_receipt_past_the_journals_end_is_lost_once_the_wait_is_over()
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        AuditResult result = await Audit(Receipt(1, 1, 1, 1), Receipt(3, 1, 7, 3));
        Assert.Multiple(() =>
        {
            Assert.That(result, Is.EqualTo(new AuditResult(1, 0, 0)));
            Assert.That(clock.Elapsed, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(200)), "it waited for the journal to reach LSN 7");
        });
    }

    [Test]
    public void No_journal_is_no_verdict()
    {
        Assert.ThrowsAsync<DirectoryNotFoundException>(() => JournalAudit.CheckAsync(_temp.Sub("none"), [Receipt(1, 1, 1, 1)]));
    }
}
