using System.Buffers.Binary;
using System.Text;

namespace Engine.Protocol;

/// <summary>"Accepted": the request is in the chain. Names the block that holds it.</summary>
public struct Receipt
{
    public uint ClientId;
    public ulong ClientSeq;

    /// <summary>Position of the transaction in the ledger: dense, from 1.</summary>
    public ulong Lsn;

    public ulong BlockNo;
    public Hash32 BlockHash;

    public override readonly string ToString() => $"accepted client {ClientId} seq {ClientSeq}: lsn {Lsn} in block {BlockNo} ({BlockHash.ToShortString()})";
}

/// <summary>"Rejected": the request was not taken; why, as a code and a short text.</summary>
public struct Rejection
{
    public uint ClientId;
    public ulong ClientSeq;
    public RejectReason Reason;
    public string? Text;

    public override readonly string ToString() => $"rejected client {ClientId} seq {ClientSeq}: {Reason} ({Text})";
}

/// <summary>Encodes and decodes replies.</summary>
/// <remarks>
/// <code>
/// Accepted (64 B)                      Rejected (80 B)
///  0 u32 clientId                       0 u32 clientId
///  4 u32 reserved = 0                   4 u16 reason
///  8 u64 clientSeq                      6 u16 text bytes (≤ 64)
/// 16 u64 lsn                            8 u64 clientSeq
/// 24 u64 blockNo                       16 u8[64] text, UTF-8, zero padded
/// 32 u8[32] blockHash (SHA-256)
/// </code>
/// </remarks>
public static class ReplyCodec
{
    public const int AcceptedBodyBytes = 64;
    public const int RejectedBodyBytes = 80;
    public const int MaxRejectTextBytes = 64;

    public static int EncodeAccepted(in Receipt receipt, Span<byte> destination)
    {
        Span<byte> body = destination[Frame.HeaderBytes..];
        BinaryPrimitives.WriteUInt32LittleEndian(body, receipt.ClientId);
        BinaryPrimitives.WriteUInt32LittleEndian(body[4..], 0);
        BinaryPrimitives.WriteUInt64LittleEndian(body[8..], receipt.ClientSeq);
        BinaryPrimitives.WriteUInt64LittleEndian(body[16..], receipt.Lsn);
        BinaryPrimitives.WriteUInt64LittleEndian(body[24..], receipt.BlockNo);
        ((ReadOnlySpan<byte>)receipt.BlockHash).CopyTo(body[32..]);
        Frame.WriteHeader(destination, MessageType.Accepted, AcceptedBodyBytes);
        return Frame.HeaderBytes + AcceptedBodyBytes;
    }

    /// <summary>Encodes a rejection; the text is cut to 64 UTF-8 bytes (at a character boundary).</summary>
    public static int EncodeRejected(uint clientId, ulong clientSeq, RejectReason reason, ReadOnlySpan<char> text, Span<byte> destination)
    {
        Span<byte> body = destination[Frame.HeaderBytes..];
        Span<byte> textField = body.Slice(16, MaxRejectTextBytes);
        textField.Clear();
        Encoding.UTF8.GetEncoder().Convert(text, textField, flush: true, out _, out int textBytes, out _);
        BinaryPrimitives.WriteUInt32LittleEndian(body, clientId);
        BinaryPrimitives.WriteUInt16LittleEndian(body[4..], (ushort)reason);
        BinaryPrimitives.WriteUInt16LittleEndian(body[6..], (ushort)textBytes);
        BinaryPrimitives.WriteUInt64LittleEndian(body[8..], clientSeq);
        Frame.WriteHeader(destination, MessageType.Rejected, RejectedBodyBytes);
        return Frame.HeaderBytes + RejectedBodyBytes;
    }

    public static RejectReason DecodeAccepted(ReadOnlySpan<byte> frame, out Receipt receipt)
    {
        receipt = default;
        RejectReason reason = CheckReply(frame, MessageType.Accepted, AcceptedBodyBytes, out ReadOnlySpan<byte> body);
        if (reason != RejectReason.None)
        {
            return reason;
        }
        receipt.ClientId = BinaryPrimitives.ReadUInt32LittleEndian(body);
        receipt.ClientSeq = BinaryPrimitives.ReadUInt64LittleEndian(body[8..]);
        receipt.Lsn = BinaryPrimitives.ReadUInt64LittleEndian(body[16..]);
        receipt.BlockNo = BinaryPrimitives.ReadUInt64LittleEndian(body[24..]);
        receipt.BlockHash = Hash32.From(body[32..]);
        return RejectReason.None;
    }

    public static RejectReason DecodeRejected(ReadOnlySpan<byte> frame, out Rejection rejection)
    {
        rejection = default;
        RejectReason reason = CheckReply(frame, MessageType.Rejected, RejectedBodyBytes, out ReadOnlySpan<byte> body);
        if (reason != RejectReason.None)
        {
            return reason;
        }
        int textBytes = BinaryPrimitives.ReadUInt16LittleEndian(body[6..]);
        if (textBytes > MaxRejectTextBytes)
        {
            return RejectReason.BadBodyLength;
        }
        rejection.ClientId = BinaryPrimitives.ReadUInt32LittleEndian(body);
        rejection.Reason = (RejectReason)BinaryPrimitives.ReadUInt16LittleEndian(body[4..]);
        rejection.ClientSeq = BinaryPrimitives.ReadUInt64LittleEndian(body[8..]);
        rejection.Text = Encoding.UTF8.GetString(body.Slice(16, textBytes));
        return RejectReason.None;
    }

    private static RejectReason CheckReply(ReadOnlySpan<byte> frame, MessageType expected, int bodyBytes, out ReadOnlySpan<byte> body)
    {
        RejectReason reason = Frame.Check(frame, out MessageType type, out body);
        if (reason != RejectReason.None)
        {
            return reason;
        }
        if (type != expected)
        {
            return RejectReason.UnknownMessageType;
        }
        return body.Length == bodyBytes ? RejectReason.None : RejectReason.BadBodyLength;
    }
}
