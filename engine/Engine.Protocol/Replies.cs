using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
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

/// <summary>
/// "Rejected": the request was not executed; why, as a code and a short text. <see cref="Lsn"/> is
/// non-zero when the rejection is the logged outcome of a transaction in the ledger (a risk limit,
/// an unknown order), zero when the request never reached the ledger (validation, busy).
/// </summary>
public struct Rejection
{
    public uint ClientId;
    public ulong ClientSeq;
    public RejectReason Reason;
    public ulong Lsn;
    public string? Text;

    public override readonly string ToString() => $"rejected client {ClientId} seq {ClientSeq}: {Reason}{(Lsn != 0 ? $" (lsn {Lsn})" : "")} {Text}";
}

/// <summary>Something happened to an order: a fill (with its trade), a cancel, a replace.</summary>
public struct ExecutionReport
{
    public uint ClientId;
    public uint Account;
    public ulong ClientSeq;
    public ulong ClientOrderId;
    public ulong TradeId;
    public long LastPrice;
    public long LastQuantity;
    public long LeavesQuantity;
    public long CumQuantity;
    public ulong Lsn;
    public uint Instrument;
    public ExecType ExecType;
    public Side Side;

    public override readonly string ToString() =>
        $"{ExecType} #{ClientOrderId} {Side} client {ClientId}: {(TradeId != 0 ? $"trade {TradeId} {LastQuantity} @ {LastPrice}, " : "")}cum {CumQuantity}, leaves {LeavesQuantity} (lsn {Lsn})";
}

/// <summary>The answer to a logon: status, and where the engine stands for this client.</summary>
public struct LogonAck
{
    public uint ClientId;
    public LogonStatus Status;

    /// <summary>The highest clientSeq the engine has taken into its ledger for this client: resend only what is above it.</summary>
    public ulong LastClientSeq;

    public ulong Epoch;
    public ulong LastLsn;

    /// <summary>
    /// With <see cref="LogonStatus.NotPrimary"/>: the client endpoint of the node to try instead, when
    /// the refusing node knows it; null otherwise. It travels in place of <see cref="LastClientSeq"/>
    /// and <see cref="Epoch"/> (which mean nothing in a refusal), so the frame keeps its size and a
    /// client that predates it still reads a plain NotPrimary.
    /// </summary>
    public IPEndPoint? OtherNode;
}

/// <summary>Encodes and decodes replies, and the logon exchange.</summary>
/// <remarks>
/// <code>
/// Accepted (64 B)                  Rejected (88 B)                  ExecutionReport (80 B)
///  0 u32 clientId                   0 u32 clientId                   0 u32 clientId      56 u64 lsn
///  4 u32 reserved = 0               4 u16 reason                     4 u32 account       64 u32 instrument
///  8 u64 clientSeq                  6 u16 text bytes (≤ 64)          8 u64 clientOrderId 68 u8 execType
/// 16 u64 lsn                        8 u64 clientSeq                 16 u64 tradeId       69 u8 side
/// 24 u64 blockNo                   16 u64 lsn (0: not in ledger)    24 i64 lastPrice     70 u16 reserved = 0
/// 32 u8[32] blockHash (SHA-256)    24 u8[64] text, UTF-8, 0-padded  32 i64 lastQuantity  72 u64 clientSeq
///                                                                   40 i64 leavesQuantity
/// Logon (40 B)                     LogonAck (32 B)                  48 i64 cumQuantity
///  0 u32 clientId                   0 u32 clientId
///  4 u32 reserved = 0               4 u8  status
///  8 u8[32] token, UTF-8, 0-padded  5 u8  other node: 0 none, 4 IPv4, 6 IPv6 (NotPrimary only)
///                                   6 u16 other node's port (NotPrimary only)
///                                   8 u64 lastClientSeq ┐ NotPrimary: u8[16] other node's
///                                  16 u64 epoch         ┘ address (IPv4 in the first 4 bytes)
///                                  24 u64 lastLsn
/// </code>
/// </remarks>
public static class ReplyCodec
{
    public const int AcceptedBodyBytes = 64;
    public const int RejectedBodyBytes = 88;
    public const int ExecutionReportBodyBytes = 80;
    public const int LogonBodyBytes = 40;
    public const int LogonAckBodyBytes = 32;
    public const int MaxRejectTextBytes = 64;
    public const int MaxTokenBytes = 32;

    /// <summary>The largest reply frame: a rejection.</summary>
    public const int MaxFrameBytes = Frame.HeaderBytes + RejectedBodyBytes;

    /// <summary>The heartbeat frame: a header and no body (<see cref="MessageType.Heartbeat"/>).</summary>
    public const int HeartbeatFrameBytes = Frame.HeaderBytes;

    public static int EncodeHeartbeat(Span<byte> destination)
    {
        Frame.WriteHeader(destination, MessageType.Heartbeat, 0);
        return HeartbeatFrameBytes;
    }

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
    public static int EncodeRejected(uint clientId, ulong clientSeq, RejectReason reason, ulong lsn, ReadOnlySpan<char> text, Span<byte> destination)
    {
        Span<byte> body = destination[Frame.HeaderBytes..];
        BinaryPrimitives.WriteUInt64LittleEndian(body[16..], lsn);
        Span<byte> textField = body.Slice(24, MaxRejectTextBytes);
        textField.Clear();
        // Converts what fits, stopping at a character boundary; allocates nothing (an Encoder would).
        System.Text.Unicode.Utf8.FromUtf16(text, textField, out _, out int textBytes, replaceInvalidSequences: true, isFinalBlock: true);
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

    public static RejectReason DecodeRejected(ReadOnlySpan<byte> frame, out Rejection rejection) => DecodeRejected(frame, out rejection, null);

    /// <summary>
    /// Decodes a rejection; with <paramref name="texts"/>, a text already seen for the same reason is
    /// reused instead of decoded again (no allocation per rejection on a busy connection).
    /// </summary>
    public static RejectReason DecodeRejected(ReadOnlySpan<byte> frame, out Rejection rejection, Dictionary<RejectReason, string>? texts)
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
        rejection.Lsn = BinaryPrimitives.ReadUInt64LittleEndian(body[16..]);
        ReadOnlySpan<byte> text = body.Slice(24, textBytes);
        if (texts is not null && texts.TryGetValue(rejection.Reason, out string? known) && Encoding.UTF8.GetByteCount(known) == text.Length && Equals(known, text))
        {
            rejection.Text = known;
        }
        else
        {
            rejection.Text = Encoding.UTF8.GetString(text);
            if (texts is not null)
            {
                texts[rejection.Reason] = rejection.Text;
            }
        }
        return RejectReason.None;

        static bool Equals(string known, ReadOnlySpan<byte> utf8)
        {
            Span<byte> buffer = stackalloc byte[MaxRejectTextBytes];
            return Encoding.UTF8.TryGetBytes(known, buffer, out int written) && buffer[..written].SequenceEqual(utf8);
        }
    }

    public static int EncodeExecutionReport(in ExecutionReport report, Span<byte> destination)
    {
        Span<byte> body = destination[Frame.HeaderBytes..];
        BinaryPrimitives.WriteUInt32LittleEndian(body, report.ClientId);
        BinaryPrimitives.WriteUInt32LittleEndian(body[4..], report.Account);
        BinaryPrimitives.WriteUInt64LittleEndian(body[8..], report.ClientOrderId);
        BinaryPrimitives.WriteUInt64LittleEndian(body[16..], report.TradeId);
        BinaryPrimitives.WriteInt64LittleEndian(body[24..], report.LastPrice);
        BinaryPrimitives.WriteInt64LittleEndian(body[32..], report.LastQuantity);
        BinaryPrimitives.WriteInt64LittleEndian(body[40..], report.LeavesQuantity);
        BinaryPrimitives.WriteInt64LittleEndian(body[48..], report.CumQuantity);
        BinaryPrimitives.WriteUInt64LittleEndian(body[56..], report.Lsn);
        BinaryPrimitives.WriteUInt32LittleEndian(body[64..], report.Instrument);
        body[68] = (byte)report.ExecType;
        body[69] = (byte)report.Side;
        BinaryPrimitives.WriteUInt16LittleEndian(body[70..], 0);
        BinaryPrimitives.WriteUInt64LittleEndian(body[72..], report.ClientSeq);
        Frame.WriteHeader(destination, MessageType.ExecutionReport, ExecutionReportBodyBytes);
        return Frame.HeaderBytes + ExecutionReportBodyBytes;
    }

    public static RejectReason DecodeExecutionReport(ReadOnlySpan<byte> frame, out ExecutionReport report)
    {
        report = default;
        RejectReason reason = CheckReply(frame, MessageType.ExecutionReport, ExecutionReportBodyBytes, out ReadOnlySpan<byte> body);
        if (reason != RejectReason.None)
        {
            return reason;
        }
        report.ClientId = BinaryPrimitives.ReadUInt32LittleEndian(body);
        report.Account = BinaryPrimitives.ReadUInt32LittleEndian(body[4..]);
        report.ClientOrderId = BinaryPrimitives.ReadUInt64LittleEndian(body[8..]);
        report.TradeId = BinaryPrimitives.ReadUInt64LittleEndian(body[16..]);
        report.LastPrice = BinaryPrimitives.ReadInt64LittleEndian(body[24..]);
        report.LastQuantity = BinaryPrimitives.ReadInt64LittleEndian(body[32..]);
        report.LeavesQuantity = BinaryPrimitives.ReadInt64LittleEndian(body[40..]);
        report.CumQuantity = BinaryPrimitives.ReadInt64LittleEndian(body[48..]);
        report.Lsn = BinaryPrimitives.ReadUInt64LittleEndian(body[56..]);
        report.Instrument = BinaryPrimitives.ReadUInt32LittleEndian(body[64..]);
        report.ExecType = (ExecType)body[68];
        report.Side = (Side)body[69];
        report.ClientSeq = BinaryPrimitives.ReadUInt64LittleEndian(body[72..]);
        return RejectReason.None;
    }

    /// <summary>Where a logon's body carries the heartbeat interval its client asks for (u16, ms; 0: none).</summary>
    public const int LogonHeartbeatOffset = 4;

    /// <summary>
    /// Encodes a logon; the token is cut to 32 UTF-8 bytes. <paramref name="heartbeatMs"/>: how often the
    /// client wants a heartbeat when the engine has nothing else for it (0: never, as before it existed).
    /// </summary>
    public static int EncodeLogon(uint clientId, ReadOnlySpan<char> token, Span<byte> destination, ushort heartbeatMs = 0)
    {
        Span<byte> body = destination[Frame.HeaderBytes..];
        BinaryPrimitives.WriteUInt32LittleEndian(body, clientId);
        BinaryPrimitives.WriteUInt16LittleEndian(body[LogonHeartbeatOffset..], heartbeatMs);
        BinaryPrimitives.WriteUInt16LittleEndian(body[(LogonHeartbeatOffset + 2)..], 0);
        Span<byte> tokenField = body.Slice(8, MaxTokenBytes);
        tokenField.Clear();
        System.Text.Unicode.Utf8.FromUtf16(token, tokenField, out _, out _, replaceInvalidSequences: true, isFinalBlock: true);
        Frame.WriteHeader(destination, MessageType.Logon, LogonBodyBytes);
        return Frame.HeaderBytes + LogonBodyBytes;
    }

    /// <summary>Decodes a logon; the token is returned without its zero padding.</summary>
    public static RejectReason DecodeLogon(ReadOnlySpan<byte> frame, out uint clientId, out string token)
    {
        clientId = 0;
        token = "";
        RejectReason reason = CheckReply(frame, MessageType.Logon, LogonBodyBytes, out ReadOnlySpan<byte> body);
        if (reason != RejectReason.None)
        {
            return reason;
        }
        clientId = BinaryPrimitives.ReadUInt32LittleEndian(body);
        ReadOnlySpan<byte> tokenField = body.Slice(8, MaxTokenBytes);
        int end = tokenField.IndexOf((byte)0);
        token = Encoding.UTF8.GetString(end < 0 ? tokenField : tokenField[..end]);
        return RejectReason.None;
    }

    /// <summary>Encodes a logon answer; <see cref="LogonAck.OtherNode"/> only with <see cref="LogonStatus.NotPrimary"/> (ignored otherwise).</summary>
    public static int EncodeLogonAck(in LogonAck ack, Span<byte> destination)
    {
        Span<byte> body = destination[Frame.HeaderBytes..];
        BinaryPrimitives.WriteUInt32LittleEndian(body, ack.ClientId);
        body[4] = (byte)ack.Status;
        body.Slice(5, 3).Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(body[8..], ack.LastClientSeq);
        BinaryPrimitives.WriteUInt64LittleEndian(body[16..], ack.Epoch);
        BinaryPrimitives.WriteUInt64LittleEndian(body[24..], ack.LastLsn);
        if (ack.Status == LogonStatus.NotPrimary && ack.OtherNode is { } other)
        {
            Span<byte> address = body.Slice(8, 16);
            address.Clear();
            bool v4 = other.AddressFamily == AddressFamily.InterNetwork;
            if (other.Address.TryWriteBytes(address, out _))
            {
                body[5] = v4 ? (byte)4 : (byte)6;
                BinaryPrimitives.WriteUInt16LittleEndian(body[6..], (ushort)other.Port);
            }
        }
        Frame.WriteHeader(destination, MessageType.LogonAck, LogonAckBodyBytes);
        return Frame.HeaderBytes + LogonAckBodyBytes;
    }

    public static RejectReason DecodeLogonAck(ReadOnlySpan<byte> frame, out LogonAck ack)
    {
        ack = default;
        RejectReason reason = CheckReply(frame, MessageType.LogonAck, LogonAckBodyBytes, out ReadOnlySpan<byte> body);
        if (reason != RejectReason.None)
        {
            return reason;
        }
        ack.ClientId = BinaryPrimitives.ReadUInt32LittleEndian(body);
        ack.Status = (LogonStatus)body[4];
        ack.LastClientSeq = BinaryPrimitives.ReadUInt64LittleEndian(body[8..]);
        ack.Epoch = BinaryPrimitives.ReadUInt64LittleEndian(body[16..]);
        ack.LastLsn = BinaryPrimitives.ReadUInt64LittleEndian(body[24..]);
        // An unknown address kind (a later version's) reads as "no other node": the refusal stands.
        if (ack.Status == LogonStatus.NotPrimary && body[5] is 4 or 6)
        {
            var address = new IPAddress(body[5] == 4 ? body.Slice(8, 4) : body.Slice(8, 16));
            ack.OtherNode = new IPEndPoint(address, BinaryPrimitives.ReadUInt16LittleEndian(body[6..]));
            ack.LastClientSeq = 0;
            ack.Epoch = 0;
        }
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
