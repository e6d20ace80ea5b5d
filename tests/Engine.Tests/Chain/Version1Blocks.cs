using System.Buffers.Binary;
using System.Security.Cryptography;
using Engine.Protocol;

namespace Engine.Tests.Chain;

/// <summary>
/// Block format version 1, written by hand from its documented layout (the engine no longer
/// writes it): the journals of engines from before cluster ids, for the tests of reading them.
/// </summary>
internal static class Version1Blocks
{
    private const int HeaderBytes = 96;

    /// <summary>A version 1 chain: genesis (epoch 1, timestamp 0) and one block per entry of <paramref name="blocks"/>.</summary>
    public static List<byte[]> Chain(params Transaction[][] blocks)
    {
        var entries = new List<byte[]>();
        byte[] genesis = Block(epoch: 1, blockNo: 0, firstLsn: 1, timestampNs: 0, prev: default, []);
        entries.Add(genesis);
        Hash32 prev = Hash32.From(genesis.AsSpan(genesis.Length - 32));
        ulong lsn = 1;
        for (int b = 0; b < blocks.Length; b++)
        {
            byte[] block = Block(epoch: 1, blockNo: (ulong)b + 1, firstLsn: lsn, timestampNs: 1_000 + b, prev, blocks[b]);
            entries.Add(block);
            prev = Hash32.From(block.AsSpan(block.Length - 32));
            lsn += (ulong)blocks[b].Length;
        }
        return entries;
    }

    public static byte[] Block(ulong epoch, ulong blockNo, ulong firstLsn, long timestampNs, Hash32 prev, Transaction[] records)
    {
        var block = new byte[HeaderBytes + records.Length * 64 + 32];
        Span<byte> b = block;
        BinaryPrimitives.WriteUInt32LittleEndian(b, 0x4B4C4245);
        BinaryPrimitives.WriteUInt16LittleEndian(b[4..], 1);
        BinaryPrimitives.WriteUInt16LittleEndian(b[6..], HeaderBytes);
        BinaryPrimitives.WriteUInt64LittleEndian(b[8..], epoch);
        BinaryPrimitives.WriteUInt64LittleEndian(b[16..], blockNo);
        BinaryPrimitives.WriteUInt64LittleEndian(b[24..], firstLsn);
        BinaryPrimitives.WriteUInt32LittleEndian(b[32..], (uint)records.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(b[36..], (uint)(records.Length * 64));
        BinaryPrimitives.WriteInt64LittleEndian(b[40..], timestampNs);
        ((ReadOnlySpan<byte>)prev).CopyTo(b[48..]);
        for (int i = 0; i < records.Length; i++)
        {
            Span<byte> r = b.Slice(HeaderBytes + i * 64, 64);
            Transaction tx = records[i];
            BinaryPrimitives.WriteUInt64LittleEndian(r, firstLsn + (ulong)i);
            BinaryPrimitives.WriteUInt32LittleEndian(r[8..], tx.ClientId);
            BinaryPrimitives.WriteUInt32LittleEndian(r[12..], tx.Account);
            BinaryPrimitives.WriteUInt64LittleEndian(r[16..], tx.ClientSeq);
            BinaryPrimitives.WriteUInt64LittleEndian(r[24..], tx.ClientOrderId);
            BinaryPrimitives.WriteUInt64LittleEndian(r[32..], tx.OrigClientOrderId);
            BinaryPrimitives.WriteInt64LittleEndian(r[40..], tx.Price);
            BinaryPrimitives.WriteInt64LittleEndian(r[48..], tx.Quantity);
            BinaryPrimitives.WriteUInt32LittleEndian(r[56..], tx.Instrument);
            r[60] = (byte)tx.Kind;
            r[61] = (byte)tx.Side;
            r[62] = (byte)tx.Type;
            r[63] = (byte)tx.TimeInForce;
        }
        SHA256.HashData(b[..^32], b[^32..]);
        return block;
    }
}
