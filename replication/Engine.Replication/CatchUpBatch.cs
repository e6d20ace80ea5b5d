using System.Buffers.Binary;
using Engine.Protocol;
using K4os.Compression.LZ4;

namespace Engine.Replication;

/// <summary>
/// The catch-up's unit: whole Block frames, LZ4-compressed in one go into one
/// <see cref="ReplicationType.CatchUpBatch"/> frame (payload: u32 uncompressed length, then the LZ4
/// block). One writer and one reader, so the primary and the backup cannot disagree on the layout,
/// and the reader is the one place a fuzzer has to attack.
/// </summary>
public static class CatchUpBatch
{
    /// <summary>Uncompressed bytes of Block frames per batch (under a frame's 1 MiB once compressed, even if LZ4 gains nothing).</summary>
    public const int MaxRawBytes = 960 << 10;

    /// <summary>Room for the frame of a batch of up to <see cref="MaxRawBytes"/>.</summary>
    public static int MaxFrameBytes { get; } = ReplicationFrame.HeaderBytes + 4 + LZ4Codec.MaximumOutputSize(MaxRawBytes);

    /// <summary>Compresses <paramref name="frames"/> (whole Block frames) into one frame in <paramref name="destination"/> (≥ <see cref="MaxFrameBytes"/>); returns its length.</summary>
    public static int Pack(ReadOnlySpan<byte> frames, Span<byte> destination)
    {
        if (frames.Length > MaxRawBytes)
        {
            throw new ArgumentOutOfRangeException(nameof(frames), frames.Length, $"a batch holds at most {MaxRawBytes} bytes of frames");
        }
        Span<byte> payload = destination[ReplicationFrame.HeaderBytes..];
        BinaryPrimitives.WriteUInt32LittleEndian(payload, (uint)frames.Length);
        int packed = LZ4Codec.Encode(frames, payload[4..], LZ4Level.L00_FAST);
        return ReplicationFrame.WriteHeader(destination, ReplicationType.CatchUpBatch, 4 + packed);
    }

    /// <summary>
    /// Unpacks a batch's payload into <paramref name="unpacked"/> (≥ <see cref="MaxRawBytes"/>) and
    /// returns a reader over its Block payloads.
    /// </summary>
    /// <exception cref="InvalidDataException">The payload is short, claims more than a batch holds, or does not decompress to its claimed length.</exception>
    public static Reader Open(ReadOnlySpan<byte> payload, Span<byte> unpacked)
    {
        if (payload.Length < 4)
        {
            throw new InvalidDataException($"a catch-up batch of {payload.Length} bytes");
        }
        uint rawLength = BinaryPrimitives.ReadUInt32LittleEndian(payload);
        if (rawLength > MaxRawBytes || rawLength > (uint)unpacked.Length)
        {
            throw new InvalidDataException($"a catch-up batch that claims {rawLength} bytes (at most {MaxRawBytes})");
        }
        if (LZ4Codec.Decode(payload[4..], unpacked[..(int)rawLength]) != rawLength)
        {
            throw new InvalidDataException("a catch-up batch that does not unpack to its claimed length");
        }
        return new Reader(unpacked[..(int)rawLength]);
    }

    /// <summary>The Block payloads of an unpacked batch, in order.</summary>
    public ref struct Reader
    {
        private ReadOnlySpan<byte> _frames;

        internal Reader(ReadOnlySpan<byte> frames) => _frames = frames;

        /// <summary>The next block's payload; false at the end.</summary>
        /// <exception cref="InvalidDataException">A frame that is cut short, not a Block, or fails its CRC.</exception>
        public bool TryNext(out ReadOnlySpan<byte> block)
        {
            if (_frames.IsEmpty)
            {
                block = default;
                return false;
            }
            uint length = _frames.Length < ReplicationFrame.HeaderBytes ? 0 : BinaryPrimitives.ReadUInt32LittleEndian(_frames);
            if (length < ReplicationFrame.HeaderBytes || length > (uint)_frames.Length || (ReplicationType)_frames[4] != ReplicationType.Block
                || BinaryPrimitives.ReadUInt32LittleEndian(_frames[8..]) != Crc32C.Compute(_frames[ReplicationFrame.HeaderBytes..(int)length]))
            {
                throw new InvalidDataException("a malformed frame inside a catch-up batch");
            }
            block = _frames[ReplicationFrame.HeaderBytes..(int)length];
            _frames = _frames[(int)length..];
            return true;
        }
    }
}
