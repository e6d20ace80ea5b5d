using System.Buffers.Binary;
using Engine.Protocol;

namespace Engine.Core.Chain;

/// <summary>The fields of a block header.</summary>
public readonly record struct BlockHeader(
    ulong Epoch,
    ulong BlockNo,
    ulong FirstLsn,
    int Count,
    int BodyBytes,
    long TimestampNs,
    Hash32 PrevHash)
{
    /// <summary>The last LSN in the block (FirstLsn - 1 for an empty block).</summary>
    public ulong LastLsn => FirstLsn + (ulong)Count - 1;
}

/// <summary>
/// The block: one FasterLog entry, hash-chained to the one before it.
/// </summary>
/// <remarks>
/// <code>
///  0   u32 magic "EBLK"        36  u32 bodyBytes (= count × 64)
///  4   u16 format version = 1  40  i64 timestamp, Unix ns, the primary's clock
///  6   u16 header bytes = 96   48  u8[32] previous block's hash (genesis: 32 zero bytes)
///  8   u64 epoch               80  u8[16] reserved = 0
/// 16   u64 blockNo (genesis 0) 96  body: count × 64-byte ledger records, LSNs dense
/// 24   u64 firstLsn            96 + bodyBytes: u8[32] blockHash
/// 32   u32 count
///
/// blockHash = SHA-256(bytes [0, 96 + bodyBytes)), one call over the whole block.
/// </code>
/// The hash is stored after the body so that a block can be checked alone (the last block has
/// no successor to check it), and the next block's previous-hash field chains it.
/// </remarks>
public static class BlockFormat
{
    public const uint Magic = 0x4B4C4245; // "EBLK" little-endian
    public const ushort FormatVersion = 1;
    public const int HeaderBytes = 96;
    public const int HashBytes = Hash32.Bytes;

    /// <summary>Header and hash around the body.</summary>
    public const int OverheadBytes = HeaderBytes + HashBytes;

    public const int PrevHashOffset = 48;

    /// <summary>The genesis block's number; transactions start in block 1.</summary>
    public const ulong GenesisBlockNo = 0;

    public static int EntryBytes(int count) => OverheadBytes + count * LedgerRecord.Bytes;

    public static void WriteHeader(Span<byte> block, in BlockHeader header)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(block, Magic);
        BinaryPrimitives.WriteUInt16LittleEndian(block[4..], FormatVersion);
        BinaryPrimitives.WriteUInt16LittleEndian(block[6..], HeaderBytes);
        BinaryPrimitives.WriteUInt64LittleEndian(block[8..], header.Epoch);
        BinaryPrimitives.WriteUInt64LittleEndian(block[16..], header.BlockNo);
        BinaryPrimitives.WriteUInt64LittleEndian(block[24..], header.FirstLsn);
        BinaryPrimitives.WriteUInt32LittleEndian(block[32..], (uint)header.Count);
        BinaryPrimitives.WriteUInt32LittleEndian(block[36..], (uint)header.BodyBytes);
        BinaryPrimitives.WriteInt64LittleEndian(block[40..], header.TimestampNs);
        Hash32 prev = header.PrevHash;
        ((ReadOnlySpan<byte>)prev).CopyTo(block[PrevHashOffset..]);
        block.Slice(80, 16).Clear();
    }

    /// <summary>
    /// Reads a header and checks the entry's shape (magic, version, sizes). The hash is not checked
    /// here; <see cref="ChainVerifier"/> does that. Returns null or what is wrong.
    /// </summary>
    public static string? TryReadHeader(ReadOnlySpan<byte> entry, out BlockHeader header)
    {
        header = default;
        if (entry.Length < OverheadBytes)
        {
            return $"entry of {entry.Length} bytes is shorter than a block's header and hash ({OverheadBytes})";
        }
        if (BinaryPrimitives.ReadUInt32LittleEndian(entry) != Magic)
        {
            return $"bad magic 0x{BinaryPrimitives.ReadUInt32LittleEndian(entry):x8}";
        }
        ushort version = BinaryPrimitives.ReadUInt16LittleEndian(entry[4..]);
        if (version != FormatVersion)
        {
            return $"unsupported block format version {version}";
        }
        if (BinaryPrimitives.ReadUInt16LittleEndian(entry[6..]) != HeaderBytes)
        {
            return $"bad header size {BinaryPrimitives.ReadUInt16LittleEndian(entry[6..])}";
        }
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(entry[32..]);
        uint bodyBytes = BinaryPrimitives.ReadUInt32LittleEndian(entry[36..]);
        if ((ulong)count * LedgerRecord.Bytes != bodyBytes)
        {
            return $"body of {bodyBytes} bytes does not hold {count} records";
        }
        if ((ulong)OverheadBytes + bodyBytes != (ulong)entry.Length)
        {
            return $"entry of {entry.Length} bytes, header says {OverheadBytes + (long)bodyBytes}";
        }
        header = new BlockHeader(
            BinaryPrimitives.ReadUInt64LittleEndian(entry[8..]),
            BinaryPrimitives.ReadUInt64LittleEndian(entry[16..]),
            BinaryPrimitives.ReadUInt64LittleEndian(entry[24..]),
            (int)count,
            (int)bodyBytes,
            BinaryPrimitives.ReadInt64LittleEndian(entry[40..]),
            Hash32.From(entry[PrevHashOffset..]));
        return null;
    }

    /// <summary>The records of a block whose header has been read.</summary>
    public static ReadOnlySpan<byte> Body(ReadOnlySpan<byte> entry, in BlockHeader header) => entry.Slice(HeaderBytes, header.BodyBytes);

    /// <summary>The stored hash of a block whose header has been read.</summary>
    public static Hash32 StoredHash(ReadOnlySpan<byte> entry, in BlockHeader header) => Hash32.From(entry[(HeaderBytes + header.BodyBytes)..]);
}
