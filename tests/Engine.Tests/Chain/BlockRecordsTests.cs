using System.Buffers.Binary;
using CsCheck;
using Engine.Core.Chain;
using Engine.Protocol;
using Engine.Tests.Fuzz;

namespace Engine.Tests.Chain;

/// <summary>
/// <see cref="BlockRecords"/>, the one reader of a block's records: a sealed block reads back
/// record for record; anything else (cut, extended, garbage, a header that lies, a record out of
/// place or of an unknown kind) is refused with a reason, never an IndexOutOfRangeException.
/// </summary>
public class BlockRecordsTests
{
    private static readonly ClusterId s_cluster = ClusterId.Parse("0123456789abcdeffedcba9876543210");

    private static readonly Transaction[] s_sent =
    [
        Transaction.NewOrder(1, 1, 2, 3, 10, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 100, 5),
        Transaction.Cancel(1, 2, 2, 3, 11, 10),
        Transaction.Replace(1, 3, 2, 3, 12, 10, 99, 7),
        Transaction.NewOrder(7, 9, 4, 1, 13, Side.Sell, OrderType.Market, TimeInForce.Ioc, 0, 1),
    ];

    /// <summary>Block 2 of a chain (block 1 holds one order, so block 2's LSNs start at 2), holding <see cref="s_sent"/>.</summary>
    private static byte[] SealedBlock(out ChainHead head)
    {
        BlockBuilder.Genesis(s_cluster, 3, 0, out ChainHead genesis);
        var builder = new BlockBuilder(genesis, maxTransactionsPerBlock: 8);
        builder.Add(Transaction.NewOrder(9, 1, 1, 1, 1, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 1, 1));
        builder.Seal(1, out _);
        foreach (Transaction tx in s_sent)
        {
            builder.Add(in tx);
        }
        byte[] block = builder.Seal(2, out head).ToArray();
        return block;
    }

    private static Span<byte> Record(byte[] block, int index) => block.AsSpan(BlockFormat.HeaderBytes + index * LedgerRecord.Bytes, LedgerRecord.Bytes);

    [Test]
    public void A_sealed_block_reads_back_record_for_record()
    {
        byte[] block = SealedBlock(out ChainHead head);
        var records = BlockRecords.Open(block);
        var read = new List<(int Index, ulong Lsn, RecordKind Kind, int Bytes, Transaction Tx)>();
        foreach (BlockRecord record in records)
        {
            record.Read(out Transaction tx);
            read.Add((record.Index, record.Lsn, record.Kind, record.Bytes.Length, tx));
        }
        BlockHeader header = records.Header;
        Hash32 storedHash = records.StoredHash;
        Assert.Multiple(() =>
        {
            Assert.That(header.BlockNo, Is.EqualTo(2));
            Assert.That(header.Count, Is.EqualTo(s_sent.Length));
            Assert.That(storedHash, Is.EqualTo(head.Hash));
            Assert.That(read.Select(r => r.Index), Is.EqualTo(Enumerable.Range(0, s_sent.Length)));
            Assert.That(read.Select(r => r.Lsn), Is.EqualTo(new ulong[] { 2, 3, 4, 5 }));
            Assert.That(read.Select(r => r.Kind), Is.EqualTo(new[] { RecordKind.OrderNew, RecordKind.OrderCancel, RecordKind.OrderReplace, RecordKind.OrderNew }));
            Assert.That(read.Select(r => r.Bytes), Is.All.EqualTo(LedgerRecord.Bytes));
            Assert.That(read.Select(r => r.Tx), Is.EqualTo(s_sent));
        });
    }

    [Test]
    public void Reading_with_the_header_already_read_gives_the_same_records()
    {
        byte[] block = SealedBlock(out _);
        Assert.That(BlockFormat.TryReadHeader(block, out BlockHeader header), Is.Null);
        var lsns = new List<ulong>();
        foreach (BlockRecord record in BlockRecords.Of(block, in header))
        {
            lsns.Add(record.Lsn);
        }
        Assert.That(lsns, Is.EqualTo(new ulong[] { 2, 3, 4, 5 }));
    }

    [Test]
    public void A_genesis_block_has_no_records()
    {
        byte[] genesis = BlockBuilder.Genesis(s_cluster, 1, 0, out _);
        var records = BlockRecords.Open(genesis);
        Assert.That(records.Header.Kind, Is.EqualTo(BlockKind.Genesis));
        Assert.That(records.MoveNext(), Is.False);
        Assert.That(records.TryMoveNext(out string? fault), Is.False);
        Assert.That(fault, Is.Null);
    }

    [Test]
    public void A_version_1_block_reads_only_when_asked_and_its_kind_is_its_message_type()
    {
        Transaction[] second = [Transaction.Cancel(1, 2, 2, 3, 11, 10), Transaction.Replace(1, 3, 2, 3, 12, 10, 99, 7)];
        byte[] block = Version1Blocks.Chain([s_sent[0]], second)[2];
        Assert.That(BlockRecords.TryOpen(block, out _), Does.Contain("block format version 1"));
        var exception = Assert.Throws<InvalidDataException>(() => BlockRecords.Open(block));
        Assert.That(exception!.Message, Does.StartWith("not a block: block format version 1"));

        Assert.That(BlockRecords.TryOpen(block, out BlockRecords records, acceptVersion1: true), Is.Null);
        var read = new List<(ulong Lsn, RecordKind Kind, Transaction Tx)>();
        foreach (BlockRecord record in records)
        {
            record.Read(out Transaction tx);
            read.Add((record.Lsn, record.Kind, tx));
        }
        ushort version = records.Header.Version;
        Assert.Multiple(() =>
        {
            Assert.That(version, Is.EqualTo(BlockFormat.Version1));
            Assert.That(read.Select(r => r.Lsn), Is.EqualTo(new ulong[] { 2, 3 }));
            Assert.That(read.Select(r => r.Kind), Is.EqualTo(new[] { RecordKind.OrderCancel, RecordKind.OrderReplace }));
            Assert.That(read.Select(r => r.Tx), Is.EqualTo(second));
        });
    }

    [Test]
    public void Every_cut_or_extension_of_a_block_is_refused_with_a_reason()
    {
        byte[] block = SealedBlock(out _);
        for (int length = 0; length < block.Length; length++)
        {
            byte[] cut = block[..length];
            Assert.That(BlockRecords.TryOpen(cut, out _, acceptVersion1: true), Is.Not.Null.And.Not.Empty, $"cut to {length} bytes");
            var exception = Assert.Throws<InvalidDataException>(() => BlockRecords.Open(cut), $"cut to {length} bytes");
            Assert.That(exception!.Message, Does.StartWith("not a block: "));
        }
        byte[] extended = [.. block, 0];
        Assert.That(BlockRecords.TryOpen(extended, out _), Does.Contain($"entry of {block.Length + 1} bytes, header says {block.Length}"));
    }

    [Test]
    public void A_header_that_claims_more_records_than_the_entry_holds_is_refused()
    {
        byte[] block = SealedBlock(out _);
        // Count and body length agree with each other, but not with the entry: a reader that
        // trusted them would slice past the end.
        BinaryPrimitives.WriteUInt32LittleEndian(block.AsSpan(12), 1_000);
        BinaryPrimitives.WriteUInt32LittleEndian(block.AsSpan(48), 1_000 * LedgerRecord.Bytes);
        Assert.That(BlockRecords.TryOpen(block, out _), Does.Contain($"entry of {block.Length} bytes, header says"));
        BinaryPrimitives.WriteUInt32LittleEndian(block.AsSpan(12), uint.MaxValue);
        Assert.That(BlockRecords.TryOpen(block, out _), Does.Contain($"does not hold {uint.MaxValue} records"));
    }

    [Test]
    public void A_header_read_from_another_entry_is_refused()
    {
        byte[] block = SealedBlock(out _);
        byte[] genesis = BlockBuilder.Genesis(s_cluster, 1, 0, out _);
        Assert.That(BlockFormat.TryReadHeader(genesis, out BlockHeader ofGenesis), Is.Null);
        Assert.Throws<ArgumentException>(() => BlockRecords.Of(block, in ofGenesis));
        Assert.Throws<ArgumentException>(() => BlockRecords.Of(block, default));
    }

    [Test]
    public void A_record_out_of_place_is_refused_after_the_records_before_it()
    {
        byte[] block = SealedBlock(out _);
        BinaryPrimitives.WriteUInt64LittleEndian(Record(block, 2), 999);
        var records = BlockRecords.Open(block);
        var lsns = new List<ulong>();
        string? fault;
        while (records.TryMoveNext(out fault))
        {
            lsns.Add(records.Current.Lsn);
        }
        Assert.That(lsns, Is.EqualTo(new ulong[] { 2, 3 }));
        Assert.That(fault, Is.EqualTo("record 2 has LSN 999, expected 4"));
        Assert.That(records.TryMoveNext(out string? again), Is.False, "the reader stays at the refused record");
        Assert.That(again, Is.EqualTo(fault));
        var exception = Assert.Throws<InvalidDataException>(() =>
        {
            foreach (BlockRecord record in BlockRecords.Open(block))
            {
                _ = record.Lsn;
            }
        });
        Assert.That(exception!.Message, Is.EqualTo("block 2: record 2 has LSN 999, expected 4"));
    }

    [TestCase(0x00, "a zeroed record")]
    [TestCase(0x04, "order request kind reserved")]
    [TestCase(0x10, "admin transaction kind reserved")]
    [TestCase(0x1A, "admin transaction kind reserved")]
    [TestCase(0x31, "reserved (0x20-0x4F)")]
    [TestCase(0xF0, "continuation")]
    public void A_record_of_a_kind_this_reader_does_not_know_is_refused_by_name(int kind, string named)
    {
        byte[] block = SealedBlock(out _);
        Record(block, 1)[LedgerRecord.KindOffset] = (byte)kind;
        var records = BlockRecords.Open(block);
        Assert.That(records.TryMoveNext(out _), Is.True);
        Assert.That(records.TryMoveNext(out string? fault), Is.False);
        Assert.That(fault, Does.StartWith($"record 1 (LSN 3) has kind 0x{kind:x2}").And.Contain(named));
    }

    /// <summary>
    /// Hostile entries: random bytes (some behind a valid magic and version), and sealed blocks with
    /// bytes set, cut or added. Each is refused with a reason, or read to its end or to a refused
    /// record; nothing else is thrown, and what is read is a known order at its place.
    /// </summary>
    [Test]
    public void Hostile_bytes_are_refused_with_a_reason_and_nothing_else_is_thrown()
    {
        byte[] valid = SealedBlock(out _);
        Gen<byte[]> randomBytes = Gen.OneOf(
            Gen.Byte.Array[0, 700],
            Gen.Byte.Array[8, 700].Select(bytes =>
            {
                BinaryPrimitives.WriteUInt32LittleEndian(bytes, BlockFormat.Magic);
                BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(4), BlockFormat.Version);
                return bytes;
            }));
        Gen<byte[]> mutated = Gen.Select(Gen.Int[0, valid.Length - 1].Array[1, 4], Gen.Byte, Gen.Int[0, 2], (positions, value, how) =>
        {
            byte[] bytes = valid.ToArray();
            foreach (int position in positions)
            {
                bytes[position] = value;
            }
            return how switch
            {
                0 => bytes,
                1 => bytes[..positions[0]],
                _ => [.. bytes, value],
            };
        });
        int refused = 0, read = 0;
        Gen.OneOf(randomBytes, mutated).Sample(entry =>
        {
            string? shape = BlockRecords.TryOpen(entry, out BlockRecords records, acceptVersion1: true);
            if (shape is not null)
            {
                Interlocked.Increment(ref refused);
                return shape.Length > 0;
            }
            Interlocked.Increment(ref read);
            int index = 0;
            while (records.TryMoveNext(out _))
            {
                BlockRecord record = records.Current;
                if (record.Index != index++ || record.Lsn != records.Header.FirstLsn + (ulong)record.Index || record.Bytes.Length != LedgerRecord.Bytes)
                {
                    return false;
                }
                if (records.Header.Version == BlockFormat.Version)
                {
                    record.Read(out _); // a known kind is an order: never throws
                }
            }
            return true;
        }, seed: FuzzRun.Seed, iter: FuzzRun.Iterations(5_000));
        Assert.Multiple(() =>
        {
            Assert.That(refused, Is.GreaterThan(0), "some entries were refused");
            Assert.That(read, Is.GreaterThan(0), "some mutated blocks still read (a changed timestamp, record field or hash)");
        });
    }
}
