using System.Buffers.Binary;
using Engine.Core.Book;
using Engine.Core.Chain;
using Engine.Core.Ledger;
using Engine.Protocol;

namespace Engine.Tests.Book;

/// <summary>
/// <see cref="BlockApplier"/>: a block applied whole (replay, a backup) makes the same book, the
/// same outcomes and the same receipts as its transactions applied one at a time as the live apply
/// stage does, with the LSNs and block hash the sealer gave them.
/// </summary>
public class BlockApplierTests
{
    private static readonly ClusterId s_cluster = ClusterId.Parse("0123456789abcdeffedcba9876543210");

    /// <summary>Every outcome with the block it names: what a client would be told.</summary>
    private sealed class Told
    {
        public List<string> Lines { get; } = [];
    }

    private readonly struct TellingSink(Told told) : IExecutionSink
    {
        public void Accepted(in Transaction tx, ulong lsn, ulong blockNo, in Hash32 blockHash) =>
            told.Lines.Add($"accepted {tx.ClientId}/{tx.ClientSeq} lsn {lsn} block {blockNo} {blockHash}");

        public void Rejected(in Transaction tx, RejectReason reason, ulong lsn) => told.Lines.Add($"rejected {tx.ClientId}/{tx.ClientSeq} {reason} lsn {lsn}");

        public void Execution(in ExecutionReport report) =>
            told.Lines.Add($"report {report.ClientId} {report.ClientOrderId} {report.ExecType} trade {report.TradeId} {report.LastQuantity}@{report.LastPrice} leaves {report.LeavesQuantity}");
    }

    /// <summary>Orders that rest, cross, cancel and replace, a resent clientSeq and one that fails a stateless check, in blocks of 3.</summary>
    private static readonly Transaction[] s_flow =
    [
        Transaction.NewOrder(1, 1, 1, 1, 10, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 100, 10),
        Transaction.NewOrder(2, 1, 2, 1, 20, Side.Sell, OrderType.Limit, TimeInForce.Gtc, 101, 5),
        Transaction.NewOrder(3, 1, 3, 1, 30, Side.Sell, OrderType.Limit, TimeInForce.Gtc, 99, 4),
        Transaction.NewOrder(1, 1, 1, 1, 11, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 100, 1), // clientSeq 1 again: a duplicate
        Transaction.Replace(2, 2, 2, 1, 21, 20, 100, 5),
        Transaction.NewOrder(3, 2, 3, 2, 31, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 7, 1), // instrument 2's tick is 5
        Transaction.Cancel(1, 2, 1, 1, 12, 10),
        Transaction.NewOrder(4, 1, 4, 1, 40, Side.Buy, OrderType.Market, TimeInForce.Ioc, 0, 3),
    ];

    /// <summary>The flow sealed into blocks after genesis, and each transaction as the sealer placed it.</summary>
    private static (List<byte[]> Blocks, List<(Transaction Tx, ulong Lsn, ulong BlockNo, Hash32 Hash)> Placed) Seal()
    {
        BlockBuilder.Genesis(s_cluster, 1, 0, out ChainHead genesis);
        var builder = new BlockBuilder(genesis, maxTransactionsPerBlock: 3);
        var blocks = new List<byte[]>();
        var placed = new List<(Transaction, ulong, ulong, Hash32)>();
        var open = new List<(Transaction Tx, ulong Lsn)>();
        for (int i = 0; i < s_flow.Length; i++)
        {
            open.Add((s_flow[i], builder.Add(in s_flow[i])));
            if (builder.IsFull || i == s_flow.Length - 1)
            {
                blocks.Add(builder.Seal(i, out ChainHead head).ToArray());
                placed.AddRange(open.Select(o => (o.Tx, o.Lsn, head.BlockNo, head.Hash)));
                open.Clear();
            }
        }
        return (blocks, placed);
    }

    [Test]
    public void A_block_applied_whole_makes_the_same_book_as_its_transactions_applied_one_by_one()
    {
        (List<byte[]> blocks, var placed) = Seal();

        var whole = new BlockApplier(new Exchange(ReferenceData.Development()));
        var toldWhole = new Told();
        var sinkWhole = new TellingSink(toldWhole);
        int applied = 0;
        foreach (byte[] block in blocks)
        {
            applied += whole.ApplyBlock(BlockRecords.Open(block), ref sinkWhole);
        }

        var oneByOne = new BlockApplier(new Exchange(ReferenceData.Development()));
        var toldOneByOne = new Told();
        var sinkOneByOne = new TellingSink(toldOneByOne);
        foreach (var (tx, lsn, blockNo, hash) in placed)
        {
            oneByOne.Apply(in tx, lsn, blockNo, in hash, ref sinkOneByOne);
        }

        whole.Exchange.AssertInvariants();
        Assert.Multiple(() =>
        {
            Assert.That(applied, Is.EqualTo(s_flow.Length));
            Assert.That(whole.Exchange.LastLsn, Is.EqualTo((ulong)s_flow.Length));
            Assert.That(whole.Exchange.ComputeChecksum(), Is.EqualTo(oneByOne.Exchange.ComputeChecksum()));
            Assert.That(toldWhole.Lines, Is.EqualTo(toldOneByOne.Lines));
            Assert.That(whole.Exchange.TradeCount, Is.GreaterThan(0UL), "the flow trades");
            Assert.That(toldWhole.Lines.Count(l => l.StartsWith("accepted 1/1 lsn 1 block 1 ", StringComparison.Ordinal)), Is.EqualTo(2),
                "the resent clientSeq is answered with the original receipt");
            Assert.That(toldWhole.Lines, Has.Some.EqualTo($"rejected 3/2 {RejectReason.PriceNotOnTick} lsn 6"));
            Assert.That(toldWhole.Lines, Has.Some.EndsWith($"block 3 {placed[^1].Hash}"), "receipts name the block's own hash");
        });
    }

    [Test]
    public void A_refused_record_stops_the_block_after_the_records_before_it()
    {
        (List<byte[]> blocks, _) = Seal();
        byte[] block = blocks[1]; // LSNs 4-6
        BinaryPrimitives.WriteUInt64LittleEndian(block.AsSpan(BlockFormat.HeaderBytes + 2 * LedgerRecord.Bytes), 999);
        var applier = new BlockApplier(new Exchange(ReferenceData.Development()));
        var sink = new NullSink();
        applier.ApplyBlock(BlockRecords.Open(blocks[0]), ref sink);
        var refused = Assert.Throws<InvalidDataException>(() =>
        {
            var inner = new NullSink();
            applier.ApplyBlock(BlockRecords.Open(block), ref inner);
        });
        Assert.Multiple(() =>
        {
            Assert.That(refused!.Message, Is.EqualTo("block 2: record 2 has LSN 999, expected 6"));
            Assert.That(applier.Exchange.LastLsn, Is.EqualTo(5UL), "the two records before it were applied, nothing after");
        });
    }
}
