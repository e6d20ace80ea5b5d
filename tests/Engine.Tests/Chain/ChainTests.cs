using System.Buffers.Binary;
using System.Security.Cryptography;
using Engine.Core.Chain;
using Engine.Protocol;

namespace Engine.Tests.Chain;

public class ChainTests
{
    /// <summary>A genesis block and <paramref name="blocks"/> blocks of 1..5 transactions each, as separate byte arrays.</summary>
    private static List<byte[]> BuildChain(int blocks, out ChainHead head)
    {
        var entries = new List<byte[]> { BlockBuilder.Genesis(1, 1_000, out ChainHead genesis) };
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

    private static BlockFault? VerifyAll(List<byte[]> entries)
    {
        var verifier = new ChainVerifier();
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
            Assert.That(verifier.Blocks, Is.EqualTo(13));
            Assert.That(head.LastLsn, Is.EqualTo(verifier.Transactions));
            Assert.That(head.BlockNo, Is.EqualTo(12));
        });
    }

    [Test]
    public void The_genesis_block_chains_to_zeros_and_hashes_its_header()
    {
        byte[] genesis = BlockBuilder.Genesis(3, 42, out ChainHead head);
        Assert.That(BlockFormat.TryReadHeader(genesis, out BlockHeader header), Is.Null);
        Assert.Multiple(() =>
        {
            Assert.That(header.BlockNo, Is.EqualTo(BlockFormat.GenesisBlockNo));
            Assert.That(header.PrevHash, Is.EqualTo(Hash32.Zero));
            Assert.That(header.Count, Is.Zero);
            Assert.That(head.Hash, Is.EqualTo(Hash32.From(SHA256.HashData(genesis.AsSpan(0, BlockFormat.HeaderBytes)))));
            Assert.That(head.LastLsn, Is.Zero);
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
        SHA256.HashData(block.AsSpan(0, BlockFormat.HeaderBytes + header.BodyBytes), block.AsSpan(BlockFormat.HeaderBytes + header.BodyBytes));
        BlockFault? fault = VerifyAll(entries);
        Assert.That(fault!.BlockNo, Is.EqualTo(5));
        Assert.That(fault.Reason, Does.Contain("record 1 has LSN 999"));
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
}
