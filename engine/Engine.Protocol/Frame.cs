using System.Buffers.Binary;

namespace Engine.Protocol;

/// <summary>
/// The frame every message travels in: a length prefix, a version, a type and a CRC-32C.
/// All integers are little-endian.
/// </summary>
/// <remarks>
/// <code>
///  0         4         5        6          8                12
///  ┌─────────┬─────────┬────────┬──────────┬────────────────┬──────────────────────┐
///  │ length  │ version │ type   │ reserved │ crc32c         │ body (length - 12 B) │
///  │ u32     │ u8 = 1  │ u8     │ u16 = 0  │ u32            │                      │
///  └─────────┴─────────┴────────┴──────────┴────────────────┴──────────────────────┘
/// </code>
/// <c>length</c> counts the whole frame, header included. <c>crc32c</c> covers bytes 0-7 and the
/// body (everything but itself).
/// </remarks>
public static class Frame
{
    public const int HeaderBytes = 12;
    public const byte Version = 1;

    /// <summary>The largest frame either side accepts. Every message has a fixed layout well under it.</summary>
    public const int MaxBytes = 256;

    public const int LengthOffset = 0;
    public const int VersionOffset = 4;
    public const int TypeOffset = 5;
    public const int ReservedOffset = 6;
    public const int CrcOffset = 8;

    /// <summary>Writes the header for a body already in place at <c>frame[12..]</c>, CRC included.</summary>
    public static void WriteHeader(Span<byte> frame, MessageType type, int bodyBytes)
    {
        int length = HeaderBytes + bodyBytes;
        BinaryPrimitives.WriteUInt32LittleEndian(frame, (uint)length);
        frame[VersionOffset] = Version;
        frame[TypeOffset] = (byte)type;
        BinaryPrimitives.WriteUInt16LittleEndian(frame[ReservedOffset..], 0);
        uint crc = Crc32C.Compute(frame[..CrcOffset], frame.Slice(HeaderBytes, bodyBytes));
        BinaryPrimitives.WriteUInt32LittleEndian(frame[CrcOffset..], crc);
    }

    /// <summary>
    /// Rewrites the clientSeq of a request frame (body offset 8 in every request type) and its CRC:
    /// for load generators and synthetic runs that reuse encoded frames.
    /// </summary>
    public static void Restamp(Span<byte> frame, ulong clientSeq)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(frame[(HeaderBytes + 8)..], clientSeq);
        uint crc = Crc32C.Compute(frame[..CrcOffset], frame[HeaderBytes..]);
        BinaryPrimitives.WriteUInt32LittleEndian(frame[CrcOffset..], crc);
    }

    /// <summary>
    /// How long the frame at the start of <paramref name="buffer"/> says it is, or 0 if fewer than
    /// 4 bytes are there yet. A stream reader calls this to know how much to wait for.
    /// </summary>
    public static int PeekLength(ReadOnlySpan<byte> buffer) =>
        buffer.Length < 4 ? 0 : (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(buffer), int.MaxValue);

    /// <summary>
    /// Checks a complete frame: length, version, CRC. Returns the message type and the body, or
    /// the reason it is not a frame. The type is not checked against known types here.
    /// </summary>
    public static RejectReason Check(ReadOnlySpan<byte> frame, out MessageType type, out ReadOnlySpan<byte> body)
    {
        type = MessageType.None;
        body = default;
        if (frame.Length < HeaderBytes)
        {
            return RejectReason.FrameTooShort;
        }
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(frame);
        if (length > MaxBytes)
        {
            return RejectReason.FrameTooLarge;
        }
        if (length < HeaderBytes)
        {
            return RejectReason.FrameTooShort;
        }
        if (length != frame.Length)
        {
            return RejectReason.LengthMismatch;
        }
        if (frame[VersionOffset] != Version)
        {
            return RejectReason.UnsupportedVersion;
        }
        uint crc = BinaryPrimitives.ReadUInt32LittleEndian(frame[CrcOffset..]);
        if (crc != Crc32C.Compute(frame[..CrcOffset], frame[HeaderBytes..]))
        {
            return RejectReason.BadChecksum;
        }
        if (BinaryPrimitives.ReadUInt16LittleEndian(frame[ReservedOffset..]) != 0)
        {
            return RejectReason.ReservedNotZero;
        }
        type = (MessageType)frame[TypeOffset];
        body = frame[HeaderBytes..];
        return RejectReason.None;
    }
}
