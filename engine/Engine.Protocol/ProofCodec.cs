using System.Buffers.Binary;

namespace Engine.Protocol;

/// <summary>
/// The proof request and its answer. A proof (tens of KiB: it holds a whole block) is larger than
/// any frame may be, so it travels in <see cref="MessageType.ProofChunk"/> frames of at most
/// <see cref="Frame.MaxBytes"/>, consecutive on the connection (no other frame between them), that
/// the client puts back together: every frame a reader accepts stays small and bounded.
/// </summary>
/// <remarks>
/// <code>
/// ProofRequest (32 B)              ProofChunk (20 B + data)
///  0 u32 clientId                    0 u64 requestId (the request's)
///  4 u32 reserved = 0                8 u32 total proof bytes (0 with a refusal)
///  8 u64 requestId (≠ 0)            12 u32 offset of this chunk's data in the proof
/// 16 u64 lsn (the receipt's)        16 u16 reason: 0 data, else a RejectReason (a refusal, one frame)
/// 24 u64 blockNo (the receipt's)    18 u16 reserved = 0
///                                   20 data: proof bytes, or the refusal's text (UTF-8)
/// </code>
/// The request's id is the client's own number, apart from clientSeq: a proof request is not a
/// transaction and never enters the ledger. The proof bytes are <c>InclusionProof.ToBytes</c>
/// (Engine.Ledger).
/// </remarks>
public static class ProofCodec
{
    public const int RequestBodyBytes = 32;
    public const int RequestFrameBytes = Frame.HeaderBytes + RequestBodyBytes;
    public const int ChunkHeaderBytes = 20;

    /// <summary>The most proof bytes one chunk carries.</summary>
    public const int MaxChunkDataBytes = Frame.MaxBytes - Frame.HeaderBytes - ChunkHeaderBytes;

    /// <summary>The largest proof either side handles (a root block of the largest size, and two paths).</summary>
    public const int MaxProofBytes = 1 << 20;

    public static int EncodeRequest(uint clientId, ulong requestId, ulong lsn, ulong blockNo, Span<byte> destination)
    {
        Span<byte> body = destination.Slice(Frame.HeaderBytes, RequestBodyBytes);
        BinaryPrimitives.WriteUInt32LittleEndian(body, clientId);
        BinaryPrimitives.WriteUInt32LittleEndian(body[4..], 0);
        BinaryPrimitives.WriteUInt64LittleEndian(body[8..], requestId);
        BinaryPrimitives.WriteUInt64LittleEndian(body[16..], lsn);
        BinaryPrimitives.WriteUInt64LittleEndian(body[24..], blockNo);
        Frame.WriteHeader(destination, MessageType.ProofRequest, RequestBodyBytes);
        return RequestFrameBytes;
    }

    /// <summary>Checks and reads a request frame.</summary>
    public static RejectReason DecodeRequest(ReadOnlySpan<byte> frame, out uint clientId, out ulong requestId, out ulong lsn, out ulong blockNo)
    {
        clientId = 0;
        requestId = lsn = blockNo = 0;
        RejectReason reason = Frame.Check(frame, out MessageType type, out ReadOnlySpan<byte> body);
        if (reason != RejectReason.None)
        {
            return reason;
        }
        if (type != MessageType.ProofRequest)
        {
            return RejectReason.UnknownMessageType;
        }
        if (body.Length != RequestBodyBytes)
        {
            return RejectReason.BadBodyLength;
        }
        if (BinaryPrimitives.ReadUInt32LittleEndian(body[4..]) != 0)
        {
            return RejectReason.ReservedNotZero;
        }
        clientId = BinaryPrimitives.ReadUInt32LittleEndian(body);
        requestId = BinaryPrimitives.ReadUInt64LittleEndian(body[8..]);
        lsn = BinaryPrimitives.ReadUInt64LittleEndian(body[16..]);
        blockNo = BinaryPrimitives.ReadUInt64LittleEndian(body[24..]);
        return requestId == 0 ? RejectReason.BadClientSeq : RejectReason.None;
    }

    /// <summary>How many bytes <see cref="EncodeProof"/> writes for a proof of <paramref name="proofBytes"/>.</summary>
    public static int EncodedProofBytes(int proofBytes)
    {
        int chunks = Math.Max(1, (proofBytes + MaxChunkDataBytes - 1) / MaxChunkDataBytes);
        return chunks * (Frame.HeaderBytes + ChunkHeaderBytes) + proofBytes;
    }

    /// <summary>Writes the whole proof as consecutive chunk frames into <paramref name="destination"/> (<see cref="EncodedProofBytes"/> long); returns the bytes written.</summary>
    public static int EncodeProof(ulong requestId, ReadOnlySpan<byte> proof, Span<byte> destination)
    {
        if (proof.Length is 0 or > MaxProofBytes)
        {
            throw new ArgumentException($"a proof is 1 to {MaxProofBytes} bytes, not {proof.Length}", nameof(proof));
        }
        int written = 0;
        for (int offset = 0; offset < proof.Length; offset += MaxChunkDataBytes)
        {
            ReadOnlySpan<byte> data = proof.Slice(offset, Math.Min(MaxChunkDataBytes, proof.Length - offset));
            written += WriteChunk(requestId, (uint)proof.Length, (uint)offset, RejectReason.None, data, destination[written..]);
        }
        return written;
    }

    /// <summary>Writes a refusal: one chunk frame with the reason and its text (cut to fit, at a character boundary).</summary>
    public static int EncodeRefusal(ulong requestId, RejectReason reason, ReadOnlySpan<char> text, Span<byte> destination)
    {
        Span<byte> utf8 = stackalloc byte[MaxChunkDataBytes];
        System.Text.Unicode.Utf8.FromUtf16(text, utf8, out _, out int textBytes, replaceInvalidSequences: true, isFinalBlock: true);
        return WriteChunk(requestId, 0, 0, reason == RejectReason.None ? RejectReason.ProofUnavailable : reason, utf8[..textBytes], destination);
    }

    private static int WriteChunk(ulong requestId, uint total, uint offset, RejectReason reason, ReadOnlySpan<byte> data, Span<byte> destination)
    {
        Span<byte> body = destination[Frame.HeaderBytes..];
        BinaryPrimitives.WriteUInt64LittleEndian(body, requestId);
        BinaryPrimitives.WriteUInt32LittleEndian(body[8..], total);
        BinaryPrimitives.WriteUInt32LittleEndian(body[12..], offset);
        BinaryPrimitives.WriteUInt16LittleEndian(body[16..], (ushort)reason);
        BinaryPrimitives.WriteUInt16LittleEndian(body[18..], 0);
        data.CopyTo(body[ChunkHeaderBytes..]);
        Frame.WriteHeader(destination, MessageType.ProofChunk, ChunkHeaderBytes + data.Length);
        return Frame.HeaderBytes + ChunkHeaderBytes + data.Length;
    }

    /// <summary>Checks and reads a chunk frame; <paramref name="data"/> is the proof's bytes at <paramref name="offset"/>, or the refusal's text.</summary>
    public static RejectReason DecodeChunk(ReadOnlySpan<byte> frame, out ulong requestId, out int total, out int offset, out RejectReason refusal, out ReadOnlySpan<byte> data)
    {
        requestId = 0;
        total = offset = 0;
        refusal = RejectReason.None;
        data = default;
        RejectReason reason = Frame.Check(frame, out MessageType type, out ReadOnlySpan<byte> body);
        if (reason != RejectReason.None)
        {
            return reason;
        }
        if (type != MessageType.ProofChunk)
        {
            return RejectReason.UnknownMessageType;
        }
        if (body.Length < ChunkHeaderBytes)
        {
            return RejectReason.BadBodyLength;
        }
        if (BinaryPrimitives.ReadUInt16LittleEndian(body[18..]) != 0)
        {
            return RejectReason.ReservedNotZero;
        }
        requestId = BinaryPrimitives.ReadUInt64LittleEndian(body);
        uint totalBytes = BinaryPrimitives.ReadUInt32LittleEndian(body[8..]);
        uint offsetBytes = BinaryPrimitives.ReadUInt32LittleEndian(body[12..]);
        refusal = (RejectReason)BinaryPrimitives.ReadUInt16LittleEndian(body[16..]);
        data = body[ChunkHeaderBytes..];
        if (refusal == RejectReason.None
            && (totalBytes is 0 or > MaxProofBytes || offsetBytes >= totalBytes || data.IsEmpty || (ulong)offsetBytes + (ulong)data.Length > totalBytes))
        {
            return RejectReason.BadBodyLength;
        }
        total = (int)totalBytes;
        offset = (int)offsetBytes;
        return RejectReason.None;
    }
}
