using System.Buffers.Binary;
using Engine.Protocol;

namespace Engine.Ledger;

/// <summary>What a block is: the first block of a chain, or a block of records.</summary>
/// <remarks>0 is never valid, so that a zeroed header is not taken for a kind. 3-255 are reserved.</remarks>
public enum BlockKind : byte
{
    None = 0,

    /// <summary>Block 0: no records, previous hash 32 zero bytes; its hash anchors the chain.</summary>
    Genesis = 1,

    /// <summary>Any later block: records, chained to the block before it.</summary>
    Transactions = 2,
}

/// <summary>The header's flags (bytes 10-11): each bit announces an optional 48-byte section after the core header.</summary>
/// <remarks>
/// The records root is written and checked (issue 14); the snapshot anchor is reserved: its layout is
/// fixed (docs/ledger-format.md), but no writer sets it yet and a reader that cannot check a section
/// refuses the block. Bits 2-15 are unassigned and refused too.
/// </remarks>
[Flags]
public enum BlockSections : ushort
{
    None = 0,

    /// <summary>A records-root section: the Merkle root of the records of one or more earlier blocks (or this one).</summary>
    RecordsRoot = 1 << 0,

    /// <summary>A snapshot-anchor section: a snapshot of the state at the end of an earlier block.</summary>
    SnapshotAnchor = 1 << 1,
}

/// <summary>The fields of a block header.</summary>
/// <param name="Epoch">The epoch of the primary that sealed the block.</param>
/// <param name="BlockNo">The block's number: genesis 0, then dense.</param>
/// <param name="FirstLsn">The LSN of its first record (LSNs are dense across blocks).</param>
/// <param name="Count">Its records.</param>
/// <param name="BodyBytes">Count × 64.</param>
/// <param name="TimestampNs">Unix ns on the primary's clock when it was sealed (0 in genesis).</param>
/// <param name="PrevHash">The hash of the block before (32 zero bytes in genesis).</param>
public readonly record struct BlockHeader(
    ulong Epoch,
    ulong BlockNo,
    ulong FirstLsn,
    int Count,
    int BodyBytes,
    long TimestampNs,
    Hash32 PrevHash)
{
    /// <summary>The block format version it was read with (1 or 2); a writer writes <see cref="BlockFormat.Version"/>.</summary>
    public ushort Version { get; init; } = BlockFormat.Version;

    /// <summary>The bytes before the body: the core header and its sections.</summary>
    public int HeaderBytes { get; init; } = BlockFormat.HeaderBytes;

    public BlockKind Kind { get; init; } = BlockKind.Transactions;

    /// <summary>The flags: which optional sections follow the core header.</summary>
    public BlockSections Sections { get; init; }

    /// <summary>The cluster whose chain the block belongs to (version 1: none, read as the development id).</summary>
    public ClusterId ClusterId { get; init; }

    /// <summary>The last LSN in the block (FirstLsn - 1 for an empty block).</summary>
    public ulong LastLsn => FirstLsn + (ulong)Count - 1;
}

/// <summary>
/// A records-root section (flag bit 0): the RFC 6962 Merkle root over the records of blocks
/// [<paramref name="FirstBlock"/>, <paramref name="FirstBlock"/> + <paramref name="Blocks"/>), in
/// LSN order, each record's 64 bytes a leaf. Computed off the sealer, so it is committed in a later
/// block than those it covers; the sections of a chain cover its blocks in order, without a gap or an
/// overlap, from the first block a section covers.
/// </summary>
public readonly record struct RecordsRoot(ulong FirstBlock, uint Blocks, uint Records, Hash32 Root)
{
    /// <summary>The last block covered.</summary>
    public ulong LastBlock => FirstBlock + Blocks - 1;

    public override string ToString() => $"blocks {FirstBlock}…{LastBlock}, {Records} records, root {Root.ToShortString()}";
}

/// <summary>
/// The block: one FasterLog entry, hash-chained to the one before it. Format version 2.
/// </summary>
/// <remarks>
/// <code>
///   0  u32  magic "EBLK"
///   4  u16  format version = 2
///   6  u16  header bytes = 112 + 48 × (sections present)
///   8  u8   block kind (1 genesis, 2 transactions)
///   9  u8   reserved = 0
///  10  u16  flags (sections): bit 0 records root (<see cref="RecordsRoot"/>), bit 1 snapshot anchor (reserved = 0)
///  12  u32  count of records
///  16  u64  epoch
///  24  u64  blockNo (genesis 0)
///  32  u64  firstLsn
///  40  i64  timestamp, Unix ns, the primary's clock (genesis 0)
///  48  u32  bodyBytes (= count × 64)
///  52  u32  reserved = 0
///  56  u8[16] cluster id
///  72  u8[32] previous block's hash (genesis: 32 zero bytes)
/// 104  u64  reserved = 0
/// 112  sections, in flag-bit order, 48 bytes each
/// H    body: count × 64-byte ledger records (<see cref="LedgerRecord"/>), LSNs dense
/// H + bodyBytes  u8[32] blockHash
///
/// blockHash = SHA-256(bytes [0, H + bodyBytes)), one call over the whole block.
/// </code>
/// <para>The cluster id is in every header, not only in genesis: a single block can be attributed
/// to its cluster without the chain before it (a block on the link, in an inclusion proof, in an
/// archive, a journal that starts from a snapshot after compaction, where genesis is gone), and the
/// verifier checks it per block. It costs 16 bytes a block and no SHA-256 work: 112 header bytes
/// plus SHA-256's 9 bytes of padding fit the same two 64-byte compression blocks as version 1's 96.</para>
/// <para>Optional sections keep the common block small: the Merkle root of a block's records is
/// computed off the sealer (issue 14), so it arrives in a later block's records-root section, and
/// one section may cover a run of blocks (a block per order at moderate rates); a snapshot anchor
/// (issue 12) is likewise committed after the state it names was taken. Their layouts are in
/// docs/ledger-format.md; a reader refuses a flag, a kind or a version it does not know, and every
/// reserved byte must be zero, so nothing unknown is ever skipped silently.</para>
/// <para>The hash is stored after the body so that a block can be checked alone (the last block has
/// no successor to check it), and the next block's previous-hash field chains it. Version 1 (96-byte
/// header, no cluster id, no kinds) is read for audit only, by <c>engine log verify|dump</c>; a chain
/// never changes version, and a journal of version 1 is never appended to.</para>
/// </remarks>
public static class BlockFormat
{
    public const uint Magic = 0x4B4C4245; // "EBLK" little-endian

    /// <summary>The version this engine writes.</summary>
    public const ushort Version = 2;

    /// <summary>The version before cluster ids and kinds: read for audit, never written or continued.</summary>
    public const ushort Version1 = 1;

    /// <summary>The core header (no sections): what this version writes before the body.</summary>
    public const int HeaderBytes = 112;

    /// <summary>One optional header section.</summary>
    public const int SectionBytes = 48;

    public const int HashBytes = Hash32.Bytes;

    /// <summary>Header and hash around the body.</summary>
    public const int OverheadBytes = HeaderBytes + HashBytes;

    public const int KindOffset = 8;
    public const int BlockNoOffset = 24;
    public const int SectionsOffset = 10;
    public const int ClusterIdOffset = 56;
    public const int PrevHashOffset = 72;

    /// <summary>The genesis block's number; transactions start in block 1.</summary>
    public const ulong GenesisBlockNo = 0;

    private const int Version1HeaderBytes = 96;
    private const int Version1PrevHashOffset = 48;

    public static int EntryBytes(int count) => OverheadBytes + count * LedgerRecord.Bytes;

    /// <summary>The largest entry a writer makes of <paramref name="count"/> records: with the one section it may carry (the records root).</summary>
    public static int MaxEntryBytes(int count) => EntryBytes(count) + SectionBytes;

    /// <summary>The header's bytes with the sections <paramref name="sections"/> announces.</summary>
    public static int HeaderBytesWith(BlockSections sections) => HeaderBytes + SectionBytes * System.Numerics.BitOperations.PopCount((uint)sections);

    /// <summary>
    /// Writes a version 2 core header, every reserved byte zeroed; its flags and size announce
    /// <see cref="BlockHeader.Sections"/>, whose bytes the caller writes (<see cref="WriteRecordsRoot"/>).
    /// </summary>
    public static void WriteHeader(Span<byte> block, in BlockHeader header)
    {
        block = block[..HeaderBytes];
        BinaryPrimitives.WriteUInt32LittleEndian(block, Magic);
        BinaryPrimitives.WriteUInt16LittleEndian(block[4..], Version);
        BinaryPrimitives.WriteUInt16LittleEndian(block[6..], (ushort)HeaderBytesWith(header.Sections));
        block[KindOffset] = (byte)header.Kind;
        block[9] = 0;
        BinaryPrimitives.WriteUInt16LittleEndian(block[SectionsOffset..], (ushort)header.Sections);
        BinaryPrimitives.WriteUInt32LittleEndian(block[12..], (uint)header.Count);
        BinaryPrimitives.WriteUInt64LittleEndian(block[16..], header.Epoch);
        BinaryPrimitives.WriteUInt64LittleEndian(block[BlockNoOffset..], header.BlockNo);
        BinaryPrimitives.WriteUInt64LittleEndian(block[32..], header.FirstLsn);
        BinaryPrimitives.WriteInt64LittleEndian(block[40..], header.TimestampNs);
        BinaryPrimitives.WriteUInt32LittleEndian(block[48..], (uint)header.BodyBytes);
        BinaryPrimitives.WriteUInt32LittleEndian(block[52..], 0);
        header.ClusterId.WriteTo(block[ClusterIdOffset..]);
        Hash32 prev = header.PrevHash;
        ((ReadOnlySpan<byte>)prev).CopyTo(block[PrevHashOffset..]);
        BinaryPrimitives.WriteUInt64LittleEndian(block[104..], 0);
    }

    /// <summary>Writes the records-root section (the first section: flag bit 0) of a header that announces it.</summary>
    public static void WriteRecordsRoot(Span<byte> block, in RecordsRoot root)
    {
        Span<byte> section = block.Slice(HeaderBytes, SectionBytes);
        BinaryPrimitives.WriteUInt64LittleEndian(section, root.FirstBlock);
        BinaryPrimitives.WriteUInt32LittleEndian(section[8..], root.Blocks);
        BinaryPrimitives.WriteUInt32LittleEndian(section[12..], root.Records);
        Hash32 hash = root.Root;
        ((ReadOnlySpan<byte>)hash).CopyTo(section[16..]);
    }

    /// <summary>The records-root section of a block whose header has been read, if it carries one.</summary>
    public static bool TryReadRecordsRoot(ReadOnlySpan<byte> entry, in BlockHeader header, out RecordsRoot root)
    {
        if ((header.Sections & BlockSections.RecordsRoot) == 0)
        {
            root = default;
            return false;
        }
        ReadOnlySpan<byte> section = entry.Slice(HeaderBytes, SectionBytes);
        root = new RecordsRoot(
            BinaryPrimitives.ReadUInt64LittleEndian(section),
            BinaryPrimitives.ReadUInt32LittleEndian(section[8..]),
            BinaryPrimitives.ReadUInt32LittleEndian(section[12..]),
            Hash32.From(section[16..]));
        return true;
    }

    /// <summary>
    /// Reads a version 2 header and checks the entry's shape: magic, version, kind, flags, reserved
    /// bytes, sizes. The hash and the chain are not checked here; <c>ChainVerifier</c> (Engine.Core) does
    /// that. Returns null or what is wrong.
    /// </summary>
    /// <param name="entry">The whole entry: header, body and hash.</param>
    /// <param name="header">The fields read (default when the shape is wrong).</param>
    /// <param name="acceptVersion1">Read a version 1 block too (audit tools); the engine itself never does.</param>
    public static string? TryReadHeader(ReadOnlySpan<byte> entry, out BlockHeader header, bool acceptVersion1 = false)
    {
        header = default;
        if (entry.Length < 8)
        {
            return $"entry of {entry.Length} bytes is shorter than a block's header and hash ({OverheadBytes})";
        }
        if (BinaryPrimitives.ReadUInt32LittleEndian(entry) != Magic)
        {
            return $"bad magic 0x{BinaryPrimitives.ReadUInt32LittleEndian(entry):x8}";
        }
        ushort version = BinaryPrimitives.ReadUInt16LittleEndian(entry[4..]);
        if (version == Version1)
        {
            return acceptVersion1
                ? TryReadVersion1(entry, out header)
                : "block format version 1 (written before cluster ids): this engine writes version 2 and never continues a version 1 chain; " +
                  "'engine log verify|dump' still read it";
        }
        if (version != Version)
        {
            return $"block format version {version} is not known to this reader (it reads version {Version}{(acceptVersion1 ? " and 1" : "")}): written by a newer engine?";
        }
        if (entry.Length < OverheadBytes)
        {
            return $"entry of {entry.Length} bytes is shorter than a block's header and hash ({OverheadBytes})";
        }
        var kind = (BlockKind)entry[KindOffset];
        if (kind is not (BlockKind.Genesis or BlockKind.Transactions))
        {
            return $"block kind {(byte)kind} is not known to this reader (1 genesis, 2 transactions)";
        }
        var flags = (BlockSections)BinaryPrimitives.ReadUInt16LittleEndian(entry[SectionsOffset..]);
        if ((flags & ~BlockSections.RecordsRoot) != BlockSections.None)
        {
            return $"flags 0x{(ushort)flags:x4} set: {DescribeSections(flags & ~BlockSections.RecordsRoot)}; this reader cannot check that section, so it refuses the block rather than skip it";
        }
        ushort headerBytes = BinaryPrimitives.ReadUInt16LittleEndian(entry[6..]);
        if (headerBytes != HeaderBytesWith(flags))
        {
            return $"header of {headerBytes} bytes where flags 0x{(ushort)flags:x4} make it {HeaderBytesWith(flags)}";
        }
        if (flags != BlockSections.None && (kind == BlockKind.Genesis || entry.Length < headerBytes + HashBytes))
        {
            return kind == BlockKind.Genesis ? "a genesis block carries no section" : $"entry of {entry.Length} bytes is shorter than its header and hash ({headerBytes + HashBytes})";
        }
        if (entry[9] != 0 || BinaryPrimitives.ReadUInt32LittleEndian(entry[52..]) != 0 || BinaryPrimitives.ReadUInt64LittleEndian(entry[104..]) != 0)
        {
            return $"a reserved header byte is not zero (bytes 9, 52-55 and 104-111 must be)";
        }
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(entry[12..]);
        uint bodyBytes = BinaryPrimitives.ReadUInt32LittleEndian(entry[48..]);
        string? size = CheckSizes(entry.Length, headerBytes, count, bodyBytes);
        if (size is not null)
        {
            return size;
        }
        ulong blockNo = BinaryPrimitives.ReadUInt64LittleEndian(entry[BlockNoOffset..]);
        if ((flags & BlockSections.RecordsRoot) != 0)
        {
            ReadOnlySpan<byte> section = entry.Slice(HeaderBytes, SectionBytes);
            ulong first = BinaryPrimitives.ReadUInt64LittleEndian(section);
            uint blocks = BinaryPrimitives.ReadUInt32LittleEndian(section[8..]);
            uint records = BinaryPrimitives.ReadUInt32LittleEndian(section[12..]);
            if (first == GenesisBlockNo || blocks == 0 || first >= blockNo || blocks > blockNo - first || records == 0)
            {
                return $"records-root section covering {blocks} blocks from block {first} with {records} records: it must cover at least one block, after genesis and before this block ({blockNo}), and at least one record (a block that only carries a root has none)";
            }
        }
        header = new BlockHeader(
            BinaryPrimitives.ReadUInt64LittleEndian(entry[16..]),
            blockNo,
            BinaryPrimitives.ReadUInt64LittleEndian(entry[32..]),
            (int)count,
            (int)bodyBytes,
            BinaryPrimitives.ReadInt64LittleEndian(entry[40..]),
            Hash32.From(entry[PrevHashOffset..]))
        {
            Version = Version,
            HeaderBytes = headerBytes,
            Kind = kind,
            Sections = flags,
            ClusterId = ClusterId.From(entry[ClusterIdOffset..]),
        };
        return null;
    }

    /// <summary>The records of a block whose header has been read.</summary>
    public static ReadOnlySpan<byte> Body(ReadOnlySpan<byte> entry, scoped in BlockHeader header) => entry.Slice(header.HeaderBytes, header.BodyBytes);

    /// <summary>The bytes the block's hash covers: header and body.</summary>
    public static ReadOnlySpan<byte> Hashed(ReadOnlySpan<byte> entry, scoped in BlockHeader header) => entry[..(header.HeaderBytes + header.BodyBytes)];

    /// <summary>The stored hash of a block whose header has been read.</summary>
    public static Hash32 StoredHash(ReadOnlySpan<byte> entry, in BlockHeader header) => Hash32.From(entry[(header.HeaderBytes + header.BodyBytes)..]);

    /// <summary>What set flags announce, for a fault message.</summary>
    public static string DescribeSections(BlockSections flags)
    {
        var parts = new List<string>(3);
        if ((flags & BlockSections.RecordsRoot) != 0)
        {
            parts.Add("a records-root section (Merkle roots)");
        }
        if ((flags & BlockSections.SnapshotAnchor) != 0)
        {
            parts.Add("a snapshot-anchor section (reserved)");
        }
        var unassigned = (ushort)(flags & ~(BlockSections.RecordsRoot | BlockSections.SnapshotAnchor));
        if (unassigned != 0)
        {
            parts.Add($"unassigned bits 0x{unassigned:x4}");
        }
        return string.Join(", ", parts);
    }

    private static string? CheckSizes(int entryLength, int headerBytes, uint count, uint bodyBytes)
    {
        if ((ulong)count * LedgerRecord.Bytes != bodyBytes)
        {
            return $"body of {bodyBytes} bytes does not hold {count} records";
        }
        if ((ulong)headerBytes + bodyBytes + HashBytes != (ulong)entryLength)
        {
            return $"entry of {entryLength} bytes, header says {headerBytes + (long)bodyBytes + HashBytes}";
        }
        return null;
    }

    /// <summary>
    /// Version 1: <c>0 magic, 4 u16 version = 1, 6 u16 header bytes = 96, 8 u64 epoch, 16 u64 blockNo,
    /// 24 u64 firstLsn, 32 u32 count, 36 u32 bodyBytes, 40 i64 timestamp, 48 u8[32] prev hash,
    /// 80 u8[16] reserved</c>; no kind, no flags, no cluster id.
    /// </summary>
    private static string? TryReadVersion1(ReadOnlySpan<byte> entry, out BlockHeader header)
    {
        header = default;
        if (entry.Length < Version1HeaderBytes + HashBytes)
        {
            return $"entry of {entry.Length} bytes is shorter than a version 1 block's header and hash ({Version1HeaderBytes + HashBytes})";
        }
        if (BinaryPrimitives.ReadUInt16LittleEndian(entry[6..]) != Version1HeaderBytes)
        {
            return $"bad header size {BinaryPrimitives.ReadUInt16LittleEndian(entry[6..])}";
        }
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(entry[32..]);
        uint bodyBytes = BinaryPrimitives.ReadUInt32LittleEndian(entry[36..]);
        string? size = CheckSizes(entry.Length, Version1HeaderBytes, count, bodyBytes);
        if (size is not null)
        {
            return size;
        }
        ulong blockNo = BinaryPrimitives.ReadUInt64LittleEndian(entry[16..]);
        header = new BlockHeader(
            BinaryPrimitives.ReadUInt64LittleEndian(entry[8..]),
            blockNo,
            BinaryPrimitives.ReadUInt64LittleEndian(entry[24..]),
            (int)count,
            (int)bodyBytes,
            BinaryPrimitives.ReadInt64LittleEndian(entry[40..]),
            Hash32.From(entry[Version1PrevHashOffset..]))
        {
            Version = Version1,
            HeaderBytes = Version1HeaderBytes,
            Kind = blockNo == GenesisBlockNo ? BlockKind.Genesis : BlockKind.Transactions,
            ClusterId = ClusterId.Development,
        };
        return null;
    }
}
