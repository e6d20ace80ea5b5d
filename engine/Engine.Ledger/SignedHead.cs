using System.Buffers.Binary;
using Engine.Protocol;

namespace Engine.Ledger;

/// <summary>
/// A signed head of the ledger, Certificate-Transparency style: the root of the RFC 6962 tree whose
/// leaves are the hashes of blocks 0 … <see cref="TreeSize"/> − 1 (genesis first; leaf hash =
/// SHA-256(0x00 ‖ block hash)), signed with the cluster's ledger key. A block's inclusion under a
/// head is an O(log n) path; two heads are proven consistent (the later extends the earlier) with
/// a consistency proof over the same leaves.
/// </summary>
/// <remarks>
/// <code>
///   0  u32  magic "EHED"
///   4  u16  version = 1
///   6  u16  reserved = 0
///   8  u8[16] cluster id
///  24  u64  tree size (blocks covered)
///  32  i64  timestamp, Unix ns, the signer's clock
///  40  u8[32] root of the block-hash tree
///  72  u8[64] Ed25519 signature of bytes [0, 72) under the context "ledger/head"
///      (the bytes signed: "engine/sign/v1/ledger/head" ‖ NUL ‖ bytes [0, 72))
/// </code>
/// </remarks>
public sealed record SignedHead(ClusterId ClusterId, long TreeSize, long TimestampNs, Hash32 Root, byte[] Signature)
{
    public const uint Magic = 0x44454845; // "EHED" little-endian
    public const ushort Version = 1;
    public const int SignedBytes = 72;
    public const int SignatureBytes = 64;
    public const int Bytes = SignedBytes + SignatureBytes;

    /// <summary>The bytes the signature covers.</summary>
    public static byte[] SignedPart(ClusterId clusterId, long treeSize, long timestampNs, in Hash32 root)
    {
        var bytes = new byte[SignedBytes];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, Magic);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(4), Version);
        clusterId.WriteTo(bytes.AsSpan(8));
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(24), treeSize);
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(32), timestampNs);
        ((ReadOnlySpan<byte>)root).CopyTo(bytes.AsSpan(40));
        return bytes;
    }

    /// <summary>The bytes the signature covers.</summary>
    public byte[] SignedPart() => SignedPart(ClusterId, TreeSize, TimestampNs, Root);

    public byte[] ToBytes()
    {
        var bytes = new byte[Bytes];
        SignedPart().CopyTo(bytes, 0);
        Signature.CopyTo(bytes, SignedBytes);
        return bytes;
    }

    /// <summary>Reads a head (its signature is not checked here); null and the reason when the bytes are not one.</summary>
    public static SignedHead? TryRead(ReadOnlySpan<byte> bytes, out string? wrong)
    {
        wrong = bytes.Length != Bytes ? $"a signed head is {Bytes} bytes, not {bytes.Length}"
            : BinaryPrimitives.ReadUInt32LittleEndian(bytes) != Magic ? "not a signed head (bad magic)"
            : BinaryPrimitives.ReadUInt16LittleEndian(bytes[4..]) != Version ? $"signed head version {BinaryPrimitives.ReadUInt16LittleEndian(bytes[4..])} is not known to this reader (it reads {Version})"
            : BinaryPrimitives.ReadUInt16LittleEndian(bytes[6..]) != 0 ? "a reserved byte of the signed head is not zero"
            : BinaryPrimitives.ReadInt64LittleEndian(bytes[24..]) < 1 ? "a signed head covers at least the genesis block (tree size ≥ 1)"
            : null;
        return wrong is not null ? null : new SignedHead(
            ClusterId.From(bytes[8..]),
            BinaryPrimitives.ReadInt64LittleEndian(bytes[24..]),
            BinaryPrimitives.ReadInt64LittleEndian(bytes[32..]),
            Hash32.From(bytes[40..]),
            bytes.Slice(SignedBytes, SignatureBytes).ToArray());
    }

    /// <summary>The leaf hash of a block in the block-hash tree.</summary>
    public static Hash32 BlockLeaf(in Hash32 blockHash) => Merkle.LeafHash(blockHash);

    public override string ToString() => $"head of {TreeSize:N0} blocks, root {Root.ToShortString()}, at {DateTimeOffset.FromUnixTimeMilliseconds(TimestampNs / 1_000_000):O}";
}
