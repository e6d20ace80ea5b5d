using System.Buffers.Binary;
using System.Security.Cryptography;
using Engine.Protocol;

namespace Engine.Ledger;

/// <summary>
/// The proof that one transaction is in the ledger, checkable offline with only the cluster's ledger
/// public key: its 64-byte record, the Merkle path from the record to the records root that covers
/// its block, the block that carries that root (whole: a block's hash is one SHA-256 over its header
/// and body, so the body comes with it), the path from that block's hash to a signed head, and the
/// head. See docs/ledger-format.md, "Proofs".
/// </summary>
/// <param name="ClusterId">The cluster the ledger is.</param>
/// <param name="Lsn">The transaction's LSN (its receipt's).</param>
/// <param name="Block">The block the transaction is in (its receipt's); the proof binds it to the run of blocks the root covers.</param>
/// <param name="Record">The transaction's ledger record (64 bytes).</param>
/// <param name="RecordIndex">The record's leaf index in the records tree.</param>
/// <param name="RecordPath">From the record's leaf up to the records root.</param>
/// <param name="RootBlock">The whole entry of the block whose records-root section covers the transaction's block.</param>
/// <param name="Head">The signed head whose tree holds the root block.</param>
/// <param name="HeadPath">From the root block's leaf up to the head's root.</param>
public sealed record InclusionProof(ClusterId ClusterId, ulong Lsn, ulong Block, byte[] Record, long RecordIndex, Hash32[] RecordPath, byte[] RootBlock, SignedHead Head, Hash32[] HeadPath)
{
    /// <summary>The format name written in every proof.</summary>
    public const string Format = "engine-inclusion-proof/1";

    /// <summary>The longest proof file read: a root block of at most 1,000 records and two paths.</summary>
    public const int MaxJsonBytes = 1 << 20;

    private const int MaxRootBlockBytes = 512 << 10;

    /// <summary>
    /// Checks the proof: the record's LSN, the path to the records root of a well-formed block whose
    /// stored hash is its hash, that block in the head's tree, and the head's signature
    /// (<paramref name="verifySignature"/>: signed part, signature → valid). Null: valid; else why not.
    /// </summary>
    public string? Verify(Func<byte[], byte[], bool> verifySignature)
    {
        ArgumentNullException.ThrowIfNull(verifySignature);
        if (Record.Length != LedgerRecord.Bytes)
        {
            return $"the record is {Record.Length} bytes, not {LedgerRecord.Bytes}";
        }
        if (LedgerRecord.LsnOf(Record) != Lsn)
        {
            return $"the record is LSN {LedgerRecord.LsnOf(Record)}, not {Lsn}";
        }
        if (!LedgerRecord.IsKnown(LedgerRecord.KindOf(Record)))
        {
            return $"the record's kind {LedgerRecord.Unknown(LedgerRecord.KindOf(Record))}";
        }
        if (BlockFormat.TryReadHeader(RootBlock, out BlockHeader header) is { } shape)
        {
            return $"the root block: {shape}";
        }
        Hash32 blockHash = default;
        SHA256.HashData(BlockFormat.Hashed(RootBlock, in header), blockHash);
        if (blockHash != BlockFormat.StoredHash(RootBlock, in header))
        {
            return $"the root block's hash is not the one stored in it (block {header.BlockNo} altered)";
        }
        if (header.ClusterId != ClusterId || Head.ClusterId != ClusterId)
        {
            return $"the root block is of cluster {header.ClusterId.Describe()} and the head of {Head.ClusterId.Describe()}, the proof says {ClusterId.Describe()}";
        }
        if (!BlockFormat.TryReadRecordsRoot(RootBlock, in header, out RecordsRoot root))
        {
            return $"block {header.BlockNo} carries no records root";
        }
        if (Block < root.FirstBlock || Block > root.LastBlock)
        {
            return $"block {Block} is not among the blocks the root covers ({root})";
        }
        if (!Merkle.VerifyInclusion(Merkle.LeafHash(Record), RecordIndex, root.Records, RecordPath, root.Root))
        {
            return $"the record's path does not lead to the records root of {root}";
        }
        if ((ulong)Head.TreeSize <= header.BlockNo)
        {
            return $"the head covers blocks 0…{Head.TreeSize - 1}, not block {header.BlockNo}";
        }
        if (!verifySignature(Head.SignedPart(), Head.Signature))
        {
            return "the head's signature is not the ledger key's";
        }
        if (!Merkle.VerifyInclusion(SignedHead.BlockLeaf(in blockHash), (long)header.BlockNo, Head.TreeSize, HeadPath, Head.Root))
        {
            return $"block {header.BlockNo}'s path does not lead to the head's root";
        }
        return null;
    }

    /// <summary>"EPRF", little-endian: the first bytes of a proof in binary (<see cref="ToBytes"/>).</summary>
    public const uint Magic = 0x46525045;

    /// <summary>The binary layout's version.</summary>
    public const ushort BinaryVersion = 1;

    private const int FixedBytes = 256;

    /// <summary>
    /// The proof in binary, as it travels over the client protocol: magic "EPRF", version, cluster,
    /// LSN, block, record index, the record, the head, the two paths' lengths and the root block's,
    /// then the paths and the root block. Little-endian; see docs/ledger-format.md, "Proofs".
    /// </summary>
    public byte[] ToBytes()
    {
        var bytes = new byte[FixedBytes + (RecordPath.Length + HeadPath.Length) * Hash32.Bytes + RootBlock.Length];
        Span<byte> span = bytes;
        BinaryPrimitives.WriteUInt32LittleEndian(span, Magic);
        BinaryPrimitives.WriteUInt16LittleEndian(span[4..], BinaryVersion);
        ClusterId.WriteTo(span[8..]);
        BinaryPrimitives.WriteUInt64LittleEndian(span[24..], Lsn);
        BinaryPrimitives.WriteUInt64LittleEndian(span[32..], Block);
        BinaryPrimitives.WriteInt64LittleEndian(span[40..], RecordIndex);
        Record.CopyTo(span[48..]);
        Head.ToBytes().CopyTo(span[112..]);
        span[248] = (byte)RecordPath.Length;
        span[249] = (byte)HeadPath.Length;
        BinaryPrimitives.WriteInt32LittleEndian(span[252..], RootBlock.Length);
        int at = FixedBytes;
        foreach (Hash32 hash in RecordPath.Concat(HeadPath))
        {
            ((ReadOnlySpan<byte>)hash).CopyTo(span[at..]);
            at += Hash32.Bytes;
        }
        RootBlock.CopyTo(span[at..]);
        return bytes;
    }

    /// <summary>Reads a proof written by <see cref="ToBytes"/>; null and why when the bytes are not one (every length bounded and checked; what it says is checked by <see cref="Verify"/>).</summary>
    public static InclusionProof? TryRead(ReadOnlySpan<byte> bytes, out string? wrong)
    {
        if (bytes.Length < FixedBytes || bytes.Length > MaxBinaryBytes)
        {
            wrong = $"{bytes.Length:N0} bytes is no proof ({FixedBytes} to {MaxBinaryBytes:N0})";
            return null;
        }
        if (BinaryPrimitives.ReadUInt32LittleEndian(bytes) != Magic || BinaryPrimitives.ReadUInt16LittleEndian(bytes[4..]) != BinaryVersion
            || BinaryPrimitives.ReadUInt16LittleEndian(bytes[6..]) != 0 || BinaryPrimitives.ReadUInt16LittleEndian(bytes[250..]) != 0)
        {
            wrong = $"not a proof of version {BinaryVersion} (magic, version or reserved bytes)";
            return null;
        }
        int recordPath = bytes[248], headPath = bytes[249];
        int rootBlock = BinaryPrimitives.ReadInt32LittleEndian(bytes[252..]);
        if (recordPath > Merkle.MaxPathLength || headPath > Merkle.MaxPathLength || rootBlock < BlockFormat.OverheadBytes || rootBlock > MaxRootBlockBytes
            || bytes.Length != FixedBytes + (recordPath + headPath) * Hash32.Bytes + rootBlock)
        {
            wrong = "the lengths inside do not add up to the proof's size";
            return null;
        }
        if (SignedHead.TryRead(bytes.Slice(112, SignedHead.Bytes), out wrong) is not { } head)
        {
            wrong = $"head: {wrong}";
            return null;
        }
        long recordIndex = BinaryPrimitives.ReadInt64LittleEndian(bytes[40..]);
        if (recordIndex < 0)
        {
            wrong = "a negative record index";
            return null;
        }
        var hashes = new Hash32[recordPath + headPath];
        for (int i = 0; i < hashes.Length; i++)
        {
            hashes[i] = Hash32.From(bytes.Slice(FixedBytes + i * Hash32.Bytes, Hash32.Bytes));
        }
        wrong = null;
        return new InclusionProof(ClusterId.From(bytes.Slice(8, ClusterId.Bytes)), BinaryPrimitives.ReadUInt64LittleEndian(bytes[24..]),
            BinaryPrimitives.ReadUInt64LittleEndian(bytes[32..]), bytes.Slice(48, LedgerRecord.Bytes).ToArray(), recordIndex,
            hashes[..recordPath], bytes[(FixedBytes + hashes.Length * Hash32.Bytes)..].ToArray(), head, hashes[recordPath..]);
    }

    /// <summary>The largest proof in binary.</summary>
    public const int MaxBinaryBytes = FixedBytes + 2 * Merkle.MaxPathLength * Hash32.Bytes + MaxRootBlockBytes;

    /// <summary>The proof as JSON (hex for bytes).</summary>
    public byte[] ToJsonUtf8() => ProofJson.Write(Format, ClusterId, json =>
    {
        json.WriteNumber("lsn", Lsn);
        json.WriteNumber("block", Block);
        json.WriteString("record", Convert.ToHexStringLower(Record));
        json.WriteNumber("record_index", RecordIndex);
        ProofJson.WritePath(json, "record_path", RecordPath);
        json.WriteString("root_block", Convert.ToHexStringLower(RootBlock));
        json.WriteString("head", Convert.ToHexStringLower(Head.ToBytes()));
        ProofJson.WritePath(json, "head_path", HeadPath);
    });

    /// <summary>Reads a proof written by <see cref="ToJsonUtf8"/>; null and why when it is not one (bounded: sizes, lengths, hex).</summary>
    public static InclusionProof? TryParse(ReadOnlySpan<byte> utf8, out string? wrong) =>
        ProofJson.Parse(utf8, MaxJsonBytes, Format, (root, cluster) => new InclusionProof(cluster, ProofJson.Number(root, "lsn"), ProofJson.Number(root, "block"),
            ProofJson.Hex(root, "record", LedgerRecord.Bytes, LedgerRecord.Bytes), (long)ProofJson.Number(root, "record_index"), ProofJson.Path(root, "record_path"),
            ProofJson.Hex(root, "root_block", BlockFormat.OverheadBytes, MaxRootBlockBytes), ProofJson.Head(root, "head"), ProofJson.Path(root, "head_path")), out wrong);
}
