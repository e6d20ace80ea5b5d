using System.Buffers.Binary;
using K4os.Compression.LZ4;

namespace Engine.Replication;

/// <summary>
/// A snapshot sent from a primary to a joining backup, in <see cref="ReplicationType.SnapshotChunk"/>
/// frames (payload: u64 offset, u64 total length, u32 chunk length uncompressed, then the LZ4 block),
/// each acknowledged with a <see cref="ReplicationType.SnapshotAck"/> (payload: u64 bytes received),
/// then a <see cref="ReplicationType.SnapshotAnchor"/> carrying the block the snapshot stands after.
/// One writer and one reader, as for <see cref="CatchUpBatch"/>: the reader is what a fuzzer attacks.
/// </summary>
public static class SnapshotTransfer
{
    /// <summary>Bytes of snapshot per chunk, uncompressed.</summary>
    public const int MaxChunkBytes = 960 << 10;

    /// <summary>
    /// The largest snapshot a backup takes (it holds it in memory while it arrives, as loading one
    /// does): about 25 M resting orders. A claim above is refused before anything is allocated.
    /// </summary>
    public const long MaxSnapshotBytes = 1L << 30;

    private const int ChunkHeaderBytes = 8 + 8 + 4;

    /// <summary>Room for the frame of a chunk.</summary>
    public static int MaxFrameBytes { get; } = ReplicationFrame.HeaderBytes + ChunkHeaderBytes + LZ4Codec.MaximumOutputSize(MaxChunkBytes);

    /// <summary>Packs the chunk of <paramref name="snapshot"/> at <paramref name="offset"/> into one frame in <paramref name="destination"/> (≥ <see cref="MaxFrameBytes"/>); returns its length and, in <paramref name="chunk"/>, the bytes it carries.</summary>
    public static int PackChunk(ReadOnlySpan<byte> snapshot, long offset, Span<byte> destination, out int chunk)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(offset, snapshot.Length);
        chunk = (int)Math.Min(MaxChunkBytes, snapshot.Length - offset);
        Span<byte> payload = destination[ReplicationFrame.HeaderBytes..];
        BinaryPrimitives.WriteInt64LittleEndian(payload, offset);
        BinaryPrimitives.WriteInt64LittleEndian(payload[8..], snapshot.Length);
        BinaryPrimitives.WriteInt32LittleEndian(payload[16..], chunk);
        int packed = LZ4Codec.Encode(snapshot.Slice((int)offset, chunk), payload[ChunkHeaderBytes..], LZ4Level.L00_FAST);
        return ReplicationFrame.WriteHeader(destination, ReplicationType.SnapshotChunk, ChunkHeaderBytes + packed);
    }

    /// <summary>
    /// Reads a chunk's payload: where it goes, the snapshot's length, and its bytes unpacked into
    /// <paramref name="unpacked"/> (≥ <see cref="MaxChunkBytes"/>).
    /// </summary>
    /// <exception cref="InvalidDataException">The payload is short, claims a snapshot or chunk larger than allowed or past the snapshot's end, or does not decompress to its claimed length.</exception>
    public static ReadOnlySpan<byte> OpenChunk(ReadOnlySpan<byte> payload, Span<byte> unpacked, out long offset, out long total)
    {
        if (payload.Length < ChunkHeaderBytes)
        {
            throw new InvalidDataException($"a snapshot chunk of {payload.Length} bytes");
        }
        offset = BinaryPrimitives.ReadInt64LittleEndian(payload);
        total = BinaryPrimitives.ReadInt64LittleEndian(payload[8..]);
        int length = BinaryPrimitives.ReadInt32LittleEndian(payload[16..]);
        if (total <= 0 || total > MaxSnapshotBytes)
        {
            throw new InvalidDataException($"a snapshot of {total} bytes (at most {MaxSnapshotBytes})");
        }
        if (length <= 0 || length > MaxChunkBytes || length > unpacked.Length || offset < 0 || offset > total - length)
        {
            throw new InvalidDataException($"a snapshot chunk of {length} bytes at {offset} of {total}");
        }
        if (LZ4Codec.Decode(payload[ChunkHeaderBytes..], unpacked[..length]) != length)
        {
            throw new InvalidDataException("a snapshot chunk that does not unpack to its claimed length");
        }
        return unpacked[..length];
    }

    /// <summary>The payload of a <see cref="ReplicationType.SnapshotAck"/>.</summary>
    public static void WriteAck(Span<byte> payload, long received) => BinaryPrimitives.WriteInt64LittleEndian(payload, received);

    /// <summary>Bytes of the acknowledgement's payload.</summary>
    public const int AckBytes = 8;

    /// <exception cref="InvalidDataException">Not 8 bytes.</exception>
    public static long ReadAck(ReadOnlySpan<byte> payload) => payload.Length == AckBytes
        ? BinaryPrimitives.ReadInt64LittleEndian(payload)
        : throw new InvalidDataException($"a snapshot acknowledgement of {payload.Length} bytes");
}
