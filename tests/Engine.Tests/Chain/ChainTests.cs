using System.Buffers.Binary;
using System.Security.Cryptography;
using Engine.Core.Chain;
using Engine.Protocol;

namespace Engine.Tests.Chain;

public class ChainTests
{
    private static readonly ClusterId s_cluster = ClusterId.Parse("0123456789abcdeffedcba9876543210");
    private static readonly ClusterId s_otherCluster = ClusterId.Parse("00000000000000000000000000000001");

    /// <summary>A genesis block and <paramref name="blocks"/> blocks of 1..5 transactions each, as separate byte arrays.</summary>
    private static List<byte[]> BuildChain(int blocks, out ChainHead head, ClusterId? cluster = null)
    {
        var entries = new List<byte[]> { BlockBuilder.Genesis(cluster ?? s_cluster, 1, 1_000, out ChainHead genesis) };
        var builder = new BlockBuilder(genesis, maxTransactionsPerBlock: 5);
        ulong seq = 0;
        for (int b = 0; b < blocks; b++)
        {
            for (int i = 0; i <= b % 5; i++)
            {
                var tx = Transaction.NewOrder(1, ++seq, 2, 1, seq, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 100, 10);
                builder.Add(in tx);
            }
            entries.Add(builder.Seal(2_000 + b, out _).ToArray());
        }
        head = builder.Head;
        return entries;
    }

    private static BlockFault? VerifyAll(List<byte[]> entries, ChainVerifier? verifier = null)
    {
        verifier ??= new ChainVerifier();
        for (int i = 0; i < entries.Count; i++)
        {
            BlockFault? fault = verifier.Check(entries[i], address: i * 1000, out _);
            if (fault is not null)
            {
                return fault;
            }
        }
        return null;
    }

    /// <summary>Re-hashes a block after a test changed it, as a faulty or hostile sealer would have: only the format checks can catch it then.</summary>
    private static void Reseal(byte[] block) => SHA256.HashData(block.AsSpan(0, block.Length - 32), block.AsSpan(block.Length - 32));

    [Test]
    public void A_sealed_chain_verifies_to_the_builders_head()
    {
        List<byte[]> entries = BuildChain(12, out ChainHead head);
        var verifier = new ChainVerifier();
        foreach (byte[] entry in entries)
        {
            Assert.That(verifier.Check(entry, 0, out _), Is.Null);
        }
        Assert.Multiple(() =>
        {
            Assert.That(verifier.Head, Is.EqualTo(head));
            Assert.That(verifier.Head.ClusterId, Is.EqualTo(s_cluster));
            Assert.That(verifier.FormatVersion, Is.EqualTo(BlockFormat.Version));
            Assert.That(verifier.Blocks, Is.EqualTo(13));
            Assert.That(head.LastLsn, Is.EqualTo(verifier.Transactions));
            Assert.That(head.BlockNo, Is.EqualTo(12));
        });
    }

    [Test]
    public void The_genesis_block_chains_to_zeros_and_hashes_its_header()
    {
        byte[] genesis = BlockBuilder.Genesis(s_cluster, 3, 42, out ChainHead head);
        Assert.That(BlockFormat.TryReadHeader(genesis, out BlockHeader header), Is.Null);
        Assert.Multiple(() =>
        {
            Assert.That(header.BlockNo, Is.EqualTo(BlockFormat.GenesisBlockNo));
            Assert.That(header.Kind, Is.EqualTo(BlockKind.Genesis));
            Assert.That(header.ClusterId, Is.EqualTo(s_cluster));
            Assert.That(header.PrevHash, Is.EqualTo(Hash32.Zero));
            Assert.That(header.Count, Is.Zero);
            Assert.That(genesis, Has.Length.EqualTo(BlockFormat.HeaderBytes + 32));
            Assert.That(head.Hash, Is.EqualTo(Hash32.From(SHA256.HashData(genesis.AsSpan(0, BlockFormat.HeaderBytes)))));
            Assert.That(head.LastLsn, Is.Zero);
            Assert.That(head.ClusterId, Is.EqualTo(s_cluster));
        });
    }

    [Test]
    public void Genesis_hashes_differ_between_clusters_and_agree_within_one()
    {
        BlockBuilder.Genesis(s_cluster, 1, 0, out ChainHead a);
        BlockBuilder.Genesis(s_cluster, 1, 0, out ChainHead again);
        BlockBuilder.Genesis(s_otherCluster, 1, 0, out ChainHead b);
        BlockBuilder.Genesis(ClusterId.Development, 1, 0, out ChainHead development);
        Assert.Multiple(() =>
        {
            Assert.That(again.Hash, Is.EqualTo(a.Hash), "the two nodes of one cluster start from the same chain");
            Assert.That(b.Hash, Is.Not.EqualTo(a.Hash));
            Assert.That(development.Hash, Is.Not.EqualTo(a.Hash));
            Assert.That(development.Hash, Is.Not.EqualTo(b.Hash));
        });
    }

    /// <summary>The layout of docs/ledger-format.md, read back with plain offsets rather than through <see cref="BlockFormat"/>.</summary>
    [Test]
    public void A_sealed_block_has_the_documented_layout()
    {
        var builder = new BlockBuilder(new ChainHead(7, 41, 99, Hash32.Parse(new string('a', 64))) { ClusterId = s_cluster }, maxTransactionsPerBlock: 4);
        var order = Transaction.NewOrder(11, 12, 13, 14, 15, Side.Sell, OrderType.Limit, TimeInForce.Ioc, 16, 17);
        builder.Add(in order);
        byte[] block = builder.Seal(123_456_789, out ChainHead sealedHead).ToArray();
        // Little-endian fields of the header (H) and of the one record, at 112 (R).
        ulong H(int offset, int bytes) => Field(block, offset, bytes);
        ulong R(int offset, int bytes) => Field(block, 112 + offset, bytes);
        Assert.Multiple(() =>
        {
            Assert.That(block, Has.Length.EqualTo(112 + 64 + 32));
            Assert.That(H(0, 4), Is.EqualTo(0x4B4C4245), "magic");
            Assert.That(H(4, 2), Is.EqualTo(2), "version");
            Assert.That(H(6, 2), Is.EqualTo(112), "header bytes");
            Assert.That(H(8, 1), Is.EqualTo(2), "block kind: transactions");
            Assert.That(H(9, 1), Is.Zero, "reserved");
            Assert.That(H(10, 2), Is.Zero, "flags");
            Assert.That(H(12, 4), Is.EqualTo(1), "count");
            Assert.That(H(16, 8), Is.EqualTo(7), "epoch");
            Assert.That(H(24, 8), Is.EqualTo(42), "block number");
            Assert.That(H(32, 8), Is.EqualTo(100), "first LSN");
            Assert.That(H(40, 8), Is.EqualTo(123_456_789), "timestamp");
            Assert.That(H(48, 4), Is.EqualTo(64), "body bytes");
            Assert.That(H(52, 4), Is.Zero, "reserved");
            Assert.That(Convert.ToHexStringLower(block, 56, 16), Is.EqualTo("0123456789abcdeffedcba9876543210"), "cluster id");
            Assert.That(Convert.ToHexStringLower(block, 72, 32), Is.EqualTo(new string('a', 64)), "previous hash");
            Assert.That(H(104, 8), Is.Zero, "reserved");
            Assert.That(R(0, 8), Is.EqualTo(100), "record: lsn");
            Assert.That(R(8, 1), Is.EqualTo(1), "record: kind new order");
            Assert.That(R(9, 1), Is.EqualTo((byte)Side.Sell), "record: side");
            Assert.That(R(10, 1), Is.EqualTo((byte)OrderType.Limit), "record: type");
            Assert.That(R(11, 1), Is.EqualTo((byte)TimeInForce.Ioc), "record: tif");
            Assert.That(R(12, 4), Is.EqualTo(14), "record: instrument");
            Assert.That(R(16, 4), Is.EqualTo(11), "record: client id");
            Assert.That(R(20, 4), Is.EqualTo(13), "record: account");
            Assert.That(R(24, 8), Is.EqualTo(12), "record: client seq");
            Assert.That(R(32, 8), Is.EqualTo(15), "record: client order id");
            Assert.That(R(40, 8), Is.Zero, "record: orig client order id");
            Assert.That(R(48, 8), Is.EqualTo(16), "record: price");
            Assert.That(R(56, 8), Is.EqualTo(17), "record: quantity");
            Assert.That(Hash32.From(block.AsSpan(block.Length - 32)), Is.EqualTo(sealedHead.Hash), "the hash after the body");
            Assert.That(sealedHead.Hash, Is.EqualTo(Hash32.From(SHA256.HashData(block.AsSpan(0, block.Length - 32)))), "SHA-256 over header and body");
        });
    }

    private static ulong Field(byte[] block, int offset, int bytes)
    {
        ulong value = 0;
        for (int i = bytes - 1; i >= 0; i--)
        {
            value = value << 8 | block[offset + i];
        }
        return value;
    }

    [Test]
    public void A_block_round_trips_its_header_and_every_request_kind()
    {
        BlockBuilder.Genesis(s_cluster, 5, 0, out ChainHead genesis);
        var builder = new BlockBuilder(genesis, maxTransactionsPerBlock: 8);
        Transaction[] sent =
        [
            Transaction.NewOrder(1, 1, 2, 3, 10, Side.Buy, OrderType.Market, TimeInForce.Fok, 0, 1_000_000),
            Transaction.Cancel(1, 2, 2, 3, 11, 10),
            Transaction.Replace(1, 3, 2, 3, 12, 10, 99, 7),
            Transaction.NewOrder(uint.MaxValue, ulong.MaxValue, uint.MaxValue, uint.MaxValue, ulong.MaxValue, Side.Sell, OrderType.Limit, TimeInForce.Gtc, long.MaxValue, long.MaxValue),
        ];
        foreach (Transaction tx in sent)
        {
            builder.Add(in tx);
        }
        byte[] block = builder.Seal(-5, out _).ToArray();
        var verifier = new ChainVerifier(genesis);
        Assert.That(verifier.Check(block, 0, out BlockHeader header), Is.Null);
        var received = new List<(ulong Lsn, RecordKind Kind, Transaction Tx)>();
        foreach (BlockRecord record in BlockRecords.Of(block, in header))
        {
            record.Read(out Transaction tx);
            received.Add((record.Lsn, record.Kind, tx));
        }
        Assert.Multiple(() =>
        {
            Assert.That(header.Version, Is.EqualTo(BlockFormat.Version));
            Assert.That(header.HeaderBytes, Is.EqualTo(BlockFormat.HeaderBytes));
            Assert.That(header.Kind, Is.EqualTo(BlockKind.Transactions));
            Assert.That(header.Sections, Is.EqualTo(BlockSections.None));
            Assert.That(header.ClusterId, Is.EqualTo(s_cluster));
            Assert.That(header.Epoch, Is.EqualTo(5));
            Assert.That(header.BlockNo, Is.EqualTo(1));
            Assert.That(header.FirstLsn, Is.EqualTo(1));
            Assert.That(header.Count, Is.EqualTo(sent.Length));
            Assert.That(header.TimestampNs, Is.EqualTo(-5));
            Assert.That(header.PrevHash, Is.EqualTo(genesis.Hash));
            Assert.That(received.Select(r => r.Lsn), Is.EqualTo(new ulong[] { 1, 2, 3, 4 }));
            Assert.That(received.Select(r => r.Kind), Is.EqualTo(new[] { RecordKind.OrderNew, RecordKind.OrderCancel, RecordKind.OrderReplace, RecordKind.OrderNew }));
            Assert.That(received.Select(r => r.Tx), Is.EqualTo(sent));
            Assert.That(verifier.Head.ClusterId, Is.EqualTo(s_cluster));
        });
    }

    [Test]
    public void The_order_record_kinds_are_the_protocols_message_types()
    {
        // The sealer writes a validated request's MessageType as its record kind.
        Assert.Multiple(() =>
        {
            Assert.That((byte)RecordKind.OrderNew, Is.EqualTo((byte)MessageType.NewOrder));
            Assert.That((byte)RecordKind.OrderCancel, Is.EqualTo((byte)MessageType.Cancel));
            Assert.That((byte)RecordKind.OrderReplace, Is.EqualTo((byte)MessageType.Replace));
        });
    }

    [Test]
    public void Every_single_byte_flip_is_caught_at_its_own_block()
    {
        List<byte[]> entries = BuildChain(6, out _);
        for (int block = 0; block < entries.Count; block++)
        {
            for (int offset = 0; offset < entries[block].Length; offset++)
            {
                entries[block][offset] ^= 0x01;
                BlockFault? fault = VerifyAll(entries);
                entries[block][offset] ^= 0x01;
                Assert.That(fault, Is.Not.Null, $"flip at block {block} offset {offset} went unnoticed");
                Assert.That(fault!.BlockNo, Is.EqualTo((ulong)block), $"flip at block {block} offset {offset}: {fault}");
            }
        }
        Assert.That(VerifyAll(entries), Is.Null, "the flips were undone");
    }

    [Test]
    public void A_missing_block_breaks_the_link()
    {
        List<byte[]> entries = BuildChain(5, out _);
        entries.RemoveAt(3);
        BlockFault? fault = VerifyAll(entries);
        Assert.That(fault!.BlockNo, Is.EqualTo(3));
        Assert.That(fault.Reason, Does.Contain("block number 4 where 3 was expected"));
    }

    [Test]
    public void A_rehashed_block_with_a_gap_in_its_lsns_is_caught()
    {
        List<byte[]> entries = BuildChain(5, out _);
        byte[] block = entries[5];
        Assert.That(BlockFormat.TryReadHeader(block, out BlockHeader header), Is.Null);
        Assert.That(header.Count, Is.GreaterThan(1));
        // Rewrite the second record's LSN and re-seal the block, as a buggy sealer would have.
        BinaryPrimitives.WriteUInt64LittleEndian(block.AsSpan(BlockFormat.HeaderBytes + LedgerRecord.Bytes), 999);
        Reseal(block);
        BlockFault? fault = VerifyAll(entries);
        Assert.That(fault!.BlockNo, Is.EqualTo(5));
        Assert.That(fault.Reason, Does.Contain("record 1 has LSN 999"));
    }

    [TestCase(9)]
    [TestCase(52)]
    [TestCase(53)]
    [TestCase(55)]
    [TestCase(104)]
    [TestCase(108)]
    [TestCase(111)]
    public void A_reserved_header_byte_that_is_not_zero_fails_even_when_rehashed(int offset)
    {
        foreach (int block in new[] { 0, 3 })
        {
            List<byte[]> entries = BuildChain(4, out _);
            entries[block][offset] = 0x80;
            Reseal(entries[block]);
            BlockFault? fault = VerifyAll(entries);
            Assert.That(fault, Is.Not.Null, $"byte {offset} of block {block}");
            Assert.That(fault!.BlockNo, Is.EqualTo((ulong)block));
            Assert.That(fault.Reason, Does.Contain("reserved header byte is not zero"));
        }
    }

    [TestCase(0x0002, "snapshot-anchor section")]
    [TestCase(0x0003, "snapshot-anchor section")]
    [TestCase(0x0004, "unassigned bits 0x0004")]
    [TestCase(0x8000, "unassigned bits 0x8000")]
    public void A_header_flag_this_reader_cannot_check_fails_verification(int flags, string named)
    {
        List<byte[]> entries = BuildChain(3, out _);
        BinaryPrimitives.WriteUInt16LittleEndian(entries[2].AsSpan(BlockFormat.SectionsOffset), (ushort)flags);
        Reseal(entries[2]);
        BlockFault? fault = VerifyAll(entries);
        Assert.That(fault!.BlockNo, Is.EqualTo(2));
        Assert.That(fault.Reason, Does.Contain($"flags 0x{flags:x4} set").And.Contain(named).And.Contain("refuses the block"));
    }

    [Test]
    public void A_header_size_other_than_the_flags_say_fails_verification()
    {
        List<byte[]> entries = BuildChain(3, out _);
        BinaryPrimitives.WriteUInt16LittleEndian(entries[1].AsSpan(6), BlockFormat.HeaderBytes + BlockFormat.SectionBytes);
        Reseal(entries[1]);
        BlockFault? fault = VerifyAll(entries);
        Assert.That(fault!.BlockNo, Is.EqualTo(1));
        Assert.That(fault.Reason, Does.Contain("header of 160 bytes"));
    }

    [TestCase(0)]
    [TestCase(3)]
    [TestCase(255)]
    public void An_unknown_block_kind_fails_verification(int kind)
    {
        List<byte[]> entries = BuildChain(3, out _);
        entries[2][BlockFormat.KindOffset] = (byte)kind;
        Reseal(entries[2]);
        BlockFault? fault = VerifyAll(entries);
        Assert.That(fault!.BlockNo, Is.EqualTo(2));
        Assert.That(fault.Reason, Does.Contain($"block kind {kind} is not known to this reader"));
    }

    [Test]
    public void Genesis_must_be_of_kind_genesis_and_only_genesis()
    {
        List<byte[]> entries = BuildChain(3, out _);
        entries[0][BlockFormat.KindOffset] = (byte)BlockKind.Transactions;
        Reseal(entries[0]);
        Assert.That(VerifyAll(entries)!.Reason, Does.Contain("genesis block must be of kind genesis"));

        entries = BuildChain(3, out _);
        entries[1][BlockFormat.KindOffset] = (byte)BlockKind.Genesis;
        Reseal(entries[1]);
        BlockFault? fault = VerifyAll(entries);
        Assert.That(fault!.BlockNo, Is.EqualTo(1));
        Assert.That(fault.Reason, Does.Contain("block of kind Genesis after genesis"));
    }

    [TestCase(0x00, "zeroed record")]
    [TestCase(0x04, "order request kind reserved")]
    [TestCase(0x0F, "order request kind reserved")]
    [TestCase(0x10, "admin transaction kind reserved")]
    [TestCase(0x1F, "admin transaction kind reserved")]
    [TestCase(0x20, "reserved (0x20-0x4F)")]
    [TestCase(0x4F, "reserved (0x20-0x4F)")]
    [TestCase(0x50, "chain record")]
    [TestCase(0x60, "unassigned")]
    [TestCase(0xEF, "unassigned")]
    [TestCase(0xF0, "continuation")]
    [TestCase(0xFF, "continuation")]
    public void A_record_of_a_kind_this_reader_does_not_know_fails_verification_by_name(int kind, string named)
    {
        List<byte[]> entries = BuildChain(4, out _);
        // Block 4 holds 4 records: change the third's kind.
        entries[4][BlockFormat.HeaderBytes + 2 * LedgerRecord.Bytes + LedgerRecord.KindOffset] = (byte)kind;
        Reseal(entries[4]);
        BlockFault? fault = VerifyAll(entries);
        Assert.That(fault!.BlockNo, Is.EqualTo(4));
        Assert.That(fault.Reason, Does.Contain($"record 2 (LSN 9) has kind 0x{kind:x2}").And.Contain(named));
    }

    [Test]
    public void A_record_of_no_known_kind_is_never_read_as_a_transaction()
    {
        var record = new byte[LedgerRecord.Bytes];
        var tx = Transaction.Cancel(1, 2, 3, 4, 5, 6);
        LedgerRecord.Write(in tx, 77, record);
        Assert.That(LedgerRecord.Read(record, out _), Is.EqualTo(77));
        record[LedgerRecord.KindOffset] = 0x10;
        var error = Assert.Throws<InvalidDataException>(() => LedgerRecord.Read(record, out _));
        Assert.That(error!.Message, Does.Contain("LSN 77 holds no transaction this version knows").And.Contain("admin transaction kind reserved"));
    }

    [Test]
    public void Every_admin_transaction_is_a_record_of_its_own_kind_that_reads_back_as_it_was_written()
    {
        Transaction[] admin =
        [
            AdminTransaction.DefineInstrument(65_535, "ZZZZZZZZ", 25, 2_500, 100_000),
            AdminTransaction.HaltInstrument(3),
            AdminTransaction.ResumeInstrument(3),
            AdminTransaction.SetAccountLimits(uint.MaxValue, ProtocolLimits.MaxQuantity, long.MaxValue, int.MaxValue),
            AdminTransaction.EnableClient(65_535),
            AdminTransaction.GrantAccounts(1, 0, uint.MaxValue),
            AdminTransaction.DisableClient(1),
            AdminTransaction.CancelAllOfClient(2),
            AdminTransaction.CancelAllOnInstrument(4),
        ];
        var record = new byte[LedgerRecord.Bytes];
        foreach (Transaction tx in admin)
        {
            Assert.That(AdminTransaction.Check(in tx), Is.EqualTo(RejectReason.None), tx.ToString());
            LedgerRecord.Write(in tx, 9, record);
            Assert.That((byte)LedgerRecord.KindOf(record), Is.EqualTo((byte)tx.Kind), "the record's kind is the transaction's type");
            Assert.That(LedgerRecord.FamilyOf(LedgerRecord.KindOf(record)), Is.EqualTo(RecordFamily.Admin));
            LedgerRecord.Read(record, out Transaction read);
            Assert.That(read, Is.EqualTo(tx));
        }
        Assert.That(admin.Select(t => t.Kind).Distinct().Count(), Is.EqualTo(9), "one of each kind");
    }

    [TestCase(0)]
    [TestCase(3)]
    [TestCase(0xFFFF)]
    public void An_unknown_format_version_fails_verification(int version)
    {
        List<byte[]> entries = BuildChain(2, out _);
        BinaryPrimitives.WriteUInt16LittleEndian(entries[0].AsSpan(4), (ushort)version);
        Reseal(entries[0]);
        BlockFault? fault = VerifyAll(entries);
        Assert.That(fault!.BlockNo, Is.EqualTo(0));
        Assert.That(fault.Reason, Does.Contain($"block format version {version} is not known to this reader"));
    }

    [Test]
    public void A_block_naming_another_cluster_fails_verification_even_when_rehashed()
    {
        List<byte[]> entries = BuildChain(4, out _);
        s_otherCluster.WriteTo(entries[2].AsSpan(BlockFormat.ClusterIdOffset));
        Reseal(entries[2]);
        BlockFault? fault = VerifyAll(entries);
        Assert.That(fault!.BlockNo, Is.EqualTo(2));
        Assert.That(fault.Reason, Does.Contain($"cluster id {s_otherCluster} in a chain of cluster {s_cluster}"));
    }

    [Test]
    public void A_verifier_that_expects_a_cluster_refuses_another_clusters_genesis()
    {
        List<byte[]> ours = BuildChain(2, out _);
        List<byte[]> theirs = BuildChain(2, out _, s_otherCluster);
        Assert.Multiple(() =>
        {
            Assert.That(VerifyAll(ours, new ChainVerifier(s_cluster)), Is.Null);
            BlockFault? fault = VerifyAll(theirs, new ChainVerifier(s_cluster));
            Assert.That(fault!.BlockNo, Is.EqualTo(0));
            Assert.That(fault.Reason, Does.Contain($"genesis names cluster {s_otherCluster}, not {s_cluster}"));
            Assert.That(VerifyAll(theirs, new ChainVerifier(ClusterId.Development))!.Reason, Does.Contain("(development)"));
        });
    }

    [Test]
    public void A_verifier_continuing_a_trusted_head_refuses_a_block_of_another_cluster()
    {
        // Two clusters' builders started from heads alike in everything but the cluster id.
        var head = new ChainHead(1, 5, 20, Hash32.Parse(new string('b', 64)));
        var foreign = new BlockBuilder(head with { ClusterId = s_otherCluster }, 3);
        var ours = new BlockBuilder(head with { ClusterId = s_cluster }, 3);
        var tx = Transaction.Cancel(1, 1, 1, 1, 2, 1);
        foreign.Add(in tx);
        ours.Add(in tx);
        byte[] theirBlock = foreign.Seal(1, out _).ToArray();
        byte[] ourBlock = ours.Seal(1, out _).ToArray();
        Assert.Multiple(() =>
        {
            Assert.That(new ChainVerifier(head with { ClusterId = s_cluster }).Check(ourBlock, 0, out _), Is.Null);
            Assert.That(new ChainVerifier(head with { ClusterId = s_cluster }).Check(theirBlock, 0, out _)!.Reason,
                Does.Contain("a block of another cluster's chain"));
        });
    }

    [Test]
    public void A_version_1_chain_verifies_from_its_genesis_and_reads_back()
    {
        Transaction[] first = [Transaction.NewOrder(1, 1, 2, 3, 10, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 100, 5)];
        Transaction[] second = [Transaction.Cancel(1, 2, 2, 3, 11, 10), Transaction.Replace(1, 3, 2, 3, 12, 10, 99, 7)];
        List<byte[]> entries = Version1Blocks.Chain(first, second);
        var verifier = new ChainVerifier();
        Assert.That(VerifyAll(entries, verifier), Is.Null);
        Assert.That(BlockRecords.TryOpen(entries[2], out BlockRecords records, acceptVersion1: true), Is.Null);
        BlockHeader header = records.Header;
        var read = new List<Transaction>();
        foreach (BlockRecord record in records)
        {
            record.Read(out Transaction tx);
            read.Add(tx);
        }
        Assert.Multiple(() =>
        {
            Assert.That(verifier.FormatVersion, Is.EqualTo(BlockFormat.Version1));
            Assert.That(verifier.Head.BlockNo, Is.EqualTo(2));
            Assert.That(verifier.Transactions, Is.EqualTo(3));
            Assert.That(header.HeaderBytes, Is.EqualTo(96));
            Assert.That(read, Is.EqualTo(second));
            Assert.That(BlockFormat.TryReadHeader(entries[2], out _), Does.Contain("block format version 1").And.Contain("'engine log verify|dump' still read it"),
                "the engine's own readers take version 2 only");
        });
    }

    [Test]
    public void A_chain_never_changes_version()
    {
        // A version 2 chain with a version 1 block after it (numbered and linked correctly).
        List<byte[]> v2 = BuildChain(2, out ChainHead head);
        v2.Add(Version1Blocks.Block(1, head.BlockNo + 1, head.LastLsn + 1, 5, head.Hash, [Transaction.Cancel(1, 9, 1, 1, 9, 1)]));
        BlockFault? fault = VerifyAll(v2);
        Assert.That(fault!.BlockNo, Is.EqualTo(3));
        Assert.That(fault.Reason, Does.Contain("block format version 1 in a chain of version 2"));

        // And the other way: a version 1 genesis with a version 2 block after it.
        List<byte[]> v1 = Version1Blocks.Chain();
        Hash32 v1Genesis = Hash32.From(v1[0].AsSpan(v1[0].Length - 32));
        var builder = new BlockBuilder(new ChainHead(1, 0, 0, v1Genesis), 2);
        var tx = Transaction.Cancel(1, 1, 1, 1, 2, 1);
        builder.Add(in tx);
        v1.Add(builder.Seal(1, out _).ToArray());
        fault = VerifyAll(v1);
        Assert.That(fault!.BlockNo, Is.EqualTo(1));
        Assert.That(fault.Reason, Does.Contain("block format version 2 in a chain of version 1"));

        // A verifier continuing a (version 2) trusted head refuses a version 1 block too.
        Assert.That(new ChainVerifier(head).Check(v2[^1], 0, out _)!.Reason, Does.Contain("version 1 in a chain of version 2"));
    }

    [Test]
    public void A_full_block_refuses_more_and_an_empty_one_is_not_sealed()
    {
        var builder = new BlockBuilder(new ChainHead(1, 0, 0, Hash32.Zero), maxTransactionsPerBlock: 2);
        var tx = Transaction.Cancel(1, 1, 1, 1, 2, 1);
        Assert.Throws<InvalidOperationException>(() => builder.Seal(0, out _));
        builder.Add(in tx);
        builder.Add(in tx);
        Assert.That(builder.IsFull, Is.True);
        Assert.Throws<InvalidOperationException>(() => builder.Add(in tx));
    }

    [Test]
    public void Cluster_ids_parse_print_and_compare()
    {
        ClusterId random = ClusterId.NewRandom();
        Assert.Multiple(() =>
        {
            Assert.That(s_cluster.ToString(), Is.EqualTo("0123456789abcdeffedcba9876543210"));
            Assert.That(ClusterId.Parse("0123456789ABCDEFFEDCBA9876543210"), Is.EqualTo(s_cluster));
            Assert.That(ClusterId.Development.IsDevelopment, Is.True);
            Assert.That(ClusterId.Development.Describe(), Does.EndWith("(development)"));
            Assert.That(s_cluster.IsDevelopment, Is.False);
            Assert.That(s_otherCluster, Is.Not.EqualTo(s_cluster));
            Assert.That(random, Is.Not.EqualTo(ClusterId.NewRandom()));
            Assert.That(ClusterId.Parse(random.ToString()), Is.EqualTo(random));
            Assert.That(ClusterId.TryParse("0123", out _), Is.False);
            Assert.That(ClusterId.TryParse(new string('g', 32), out _), Is.False);
            Assert.That(ClusterId.TryParse(null, out _), Is.False);
            Assert.Throws<FormatException>(() => ClusterId.Parse("xyz"));
        });
    }
}
