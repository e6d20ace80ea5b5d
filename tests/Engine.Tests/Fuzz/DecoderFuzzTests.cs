using System.Buffers.Binary;
using CsCheck;
using Engine.Protocol;
using Engine.Tests.Protocol;

namespace Engine.Tests.Fuzz;

/// <summary>
/// Every client-facing decoder, fed random bytes and mutated valid frames (bytes set, cut, added,
/// the length field rewritten, and mostly the CRC made right again, so the mutation reaches the
/// field checks): never throws (in managed code a read out of bounds is an exception, so none
/// happens either), answers with a reject reason, and what it accepts is what an encoder writes.
/// Valid frames round-trip. How long: <see cref="FuzzRun"/>.
/// </summary>
public class DecoderFuzzTests
{
    private enum Mutation : byte
    {
        SetByte,
        Truncate,
        Append,
        SetLength,
    }

    private static readonly Gen<(Mutation Kind, int Position, byte Value)[]> s_mutations =
        Gen.Select(Gen.Enum<Mutation>(), Gen.Int[0, 300], Gen.Byte).Array[1, 4];

    /// <summary>Random bytes, short and long, biased to look like a frame (a plausible length prefix).</summary>
    private static readonly Gen<byte[]> s_randomBytes = Gen.OneOf(
        Gen.Byte.Array[0, 300],
        Gen.Select(Gen.Int[0, 260], Gen.Byte.Array[0, 300], (length, rest) =>
        {
            var bytes = new byte[Math.Max(4, rest.Length)];
            rest.CopyTo(bytes, 0);
            BinaryPrimitives.WriteUInt32LittleEndian(bytes, (uint)length);
            return bytes;
        }));

    private static byte[] Mutate(byte[] valid, (Mutation Kind, int Position, byte Value)[] mutations, bool reseal)
    {
        var frame = new List<byte>(valid);
        foreach (var (kind, position, value) in mutations)
        {
            switch (kind)
            {
                case Mutation.SetByte when frame.Count > 0:
                    frame[position % frame.Count] = value;
                    break;
                case Mutation.Truncate:
                    frame.RemoveRange(Math.Min(position, frame.Count), frame.Count - Math.Min(position, frame.Count));
                    break;
                case Mutation.Append:
                    frame.AddRange(Enumerable.Repeat(value, 1 + position % 16));
                    break;
                case Mutation.SetLength when frame.Count >= 4:
                    byte[] length = BitConverter.GetBytes(position % 2 == 0 ? (uint)(value + position) : uint.MaxValue - value);
                    for (int i = 0; i < 4; i++)
                    {
                        frame[i] = length[i];
                    }
                    break;
            }
        }
        byte[] bytes = [.. frame];
        if (reseal && bytes.Length >= Frame.HeaderBytes)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(Frame.CrcOffset), Crc32C.Compute(bytes.AsSpan(0, Frame.CrcOffset), bytes.AsSpan(Frame.HeaderBytes)));
        }
        return bytes;
    }

    private static Gen<byte[]> Hostile(Gen<byte[]> valid) => Gen.Frequency(
        (3, s_randomBytes),
        (7, Gen.Select(valid, s_mutations, Gen.Int[0, 9], (frame, mutations, reseal) => Mutate(frame, mutations, reseal < 8))));

    // ---- requests ----

    private static readonly Gen<byte[]> s_validRequest = CodecTests.GenValid.Select(tx =>
    {
        var frame = new byte[TransactionCodec.MaxFrameBytes];
        return frame[..TransactionCodec.Encode(in tx, frame)];
    });

    [Test]
    public void A_request_frame_of_any_bytes_is_decoded_or_refused_and_only_canonical_frames_pass()
    {
        Hostile(s_validRequest).Sample(bytes =>
        {
            RejectReason reason = TransactionCodec.Decode(bytes, out Transaction tx);
            if (reason != RejectReason.None)
            {
                // A reason the protocol defines; a field's reason only once the fields were read.
                return Enum.IsDefined(reason) && ((ushort)reason < (ushort)RejectReason.BadClientSeq || tx.Kind is MessageType.NewOrder or MessageType.Cancel or MessageType.Replace);
            }
            // Accepted: every stateless check holds, and the encoder writes exactly these bytes.
            var again = new byte[TransactionCodec.MaxFrameBytes];
            int length = TransactionCodec.Encode(in tx, again);
            return TransactionCodec.Check(in tx) == RejectReason.None && again.AsSpan(0, length).SequenceEqual(bytes);
        }, seed: FuzzRun.Seed, iter: FuzzRun.Iterations(50_000), print: Convert.ToHexString);
    }

    [Test]
    public void Frame_check_and_peek_length_hold_for_any_bytes()
    {
        Hostile(s_validRequest).Sample(bytes =>
        {
            int peeked = Frame.PeekLength(bytes);
            bool peekSane = bytes.Length < 4 ? peeked == 0 : peeked >= 0 && (uint)peeked == Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(bytes), int.MaxValue);
            RejectReason reason = Frame.Check(bytes, out MessageType type, out ReadOnlySpan<byte> body);
            if (reason != RejectReason.None)
            {
                return peekSane && type == MessageType.None && body.IsEmpty;
            }
            return peekSane && peeked == bytes.Length && bytes.Length is >= Frame.HeaderBytes and <= Frame.MaxBytes
                && bytes[Frame.VersionOffset] == Frame.Version && (byte)type == bytes[Frame.TypeOffset] && body.Length == bytes.Length - Frame.HeaderBytes;
        }, seed: FuzzRun.Seed, iter: FuzzRun.Iterations(50_000), print: Convert.ToHexString);
    }

    // ---- replies and the logon, as the client library and the gateway decode them ----

    private static readonly Gen<Hash32> s_hash = Gen.Byte.Array[Hash32.Bytes].Select(b => Hash32.From(b));

    private static readonly Gen<Receipt> s_receipt = Gen.Select(Gen.UInt, Gen.ULong, Gen.ULong, Gen.ULong, s_hash,
        (client, seq, lsn, block, hash) => new Receipt { ClientId = client, ClientSeq = seq, Lsn = lsn, BlockNo = block, BlockHash = hash });

    private static Gen<string> Text(int minChars, int maxChars) =>
        Gen.Char["abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -:"].Array[minChars, maxChars].Select(chars => new string(chars));

    private static readonly Gen<Rejection> s_rejection = Gen.Select(Gen.UInt, Gen.ULong, Gen.UShort, Gen.ULong, Text(0, ReplyCodec.MaxRejectTextBytes),
        (client, seq, reason, lsn, text) => new Rejection { ClientId = client, ClientSeq = seq, Reason = (RejectReason)reason, Lsn = lsn, Text = text });

    private static readonly Gen<ExecutionReport> s_report = Gen.Select(
        Gen.Select(Gen.UInt, Gen.UInt, Gen.ULong, Gen.ULong, Gen.ULong, Gen.Long, Gen.Long),
        Gen.Select(Gen.Long, Gen.Long, Gen.ULong, Gen.UInt, Gen.Byte, Gen.Byte),
        (a, b) => new ExecutionReport
        {
            ClientId = a.Item1, Account = a.Item2, ClientSeq = a.Item3, ClientOrderId = a.Item4, TradeId = a.Item5, LastPrice = a.Item6, LastQuantity = a.Item7,
            LeavesQuantity = b.Item1, CumQuantity = b.Item2, Lsn = b.Item3, Instrument = b.Item4, ExecType = (ExecType)b.Item5, Side = (Side)b.Item6,
        });

    private static readonly Gen<LogonAck> s_logonAck = Gen.Select(Gen.UInt, Gen.Byte, Gen.ULong, Gen.ULong, Gen.ULong,
        (client, status, seq, epoch, lsn) => new LogonAck { ClientId = client, Status = (LogonStatus)status, LastClientSeq = seq, Epoch = epoch, LastLsn = lsn });

    private static readonly Gen<(uint ClientId, string Token)> s_logon = Gen.Select(Gen.UInt, Text(1, ReplyCodec.MaxTokenBytes));

    private static Gen<byte[]> Encoded<T>(Gen<T> gen, Func<T, byte[], int> encode) => gen.Select(value =>
    {
        var frame = new byte[Frame.MaxBytes];
        return frame[..encode(value, frame)];
    });

    private static readonly Gen<byte[]> s_validReply = Gen.OneOf(
        Encoded(s_receipt, (r, f) => ReplyCodec.EncodeAccepted(in r, f)),
        Encoded(s_rejection, (r, f) => ReplyCodec.EncodeRejected(r.ClientId, r.ClientSeq, r.Reason, r.Lsn, r.Text, f)),
        Encoded(s_report, (r, f) => ReplyCodec.EncodeExecutionReport(in r, f)),
        Encoded(s_logonAck, (a, f) => ReplyCodec.EncodeLogonAck(in a, f)),
        Encoded(s_logon, (l, f) => ReplyCodec.EncodeLogon(l.ClientId, l.Token, f)));

    [Test]
    public void Every_reply_decoder_and_the_logon_decoder_refuse_any_bytes_without_throwing()
    {
        Hostile(s_validReply).Sample(bytes =>
        {
            var texts = new Dictionary<RejectReason, string>();
            bool sane = true;
            if (ReplyCodec.DecodeAccepted(bytes, out _) == RejectReason.None)
            {
                sane &= bytes.Length == Frame.HeaderBytes + ReplyCodec.AcceptedBodyBytes;
            }
            if (ReplyCodec.DecodeRejected(bytes, out Rejection rejection) == RejectReason.None)
            {
                // The text is at most 64 bytes on the wire; decoded (invalid UTF-8 replaced) it stays small.
                sane &= bytes.Length == Frame.HeaderBytes + ReplyCodec.RejectedBodyBytes && rejection.Text!.Length <= ReplyCodec.MaxRejectTextBytes;
            }
            // Twice with the cache of texts: the second read reuses or replaces a cached text, never throws.
            ReplyCodec.DecodeRejected(bytes, out _, texts);
            ReplyCodec.DecodeRejected(bytes, out _, texts);
            if (ReplyCodec.DecodeExecutionReport(bytes, out _) == RejectReason.None)
            {
                sane &= bytes.Length == Frame.HeaderBytes + ReplyCodec.ExecutionReportBodyBytes;
            }
            if (ReplyCodec.DecodeLogonAck(bytes, out _) == RejectReason.None)
            {
                sane &= bytes.Length == Frame.HeaderBytes + ReplyCodec.LogonAckBodyBytes;
            }
            if (ReplyCodec.DecodeLogon(bytes, out _, out string token) == RejectReason.None)
            {
                sane &= bytes.Length == Frame.HeaderBytes + ReplyCodec.LogonBodyBytes && token.Length <= ReplyCodec.MaxTokenBytes;
            }
            return sane;
        }, seed: FuzzRun.Seed, iter: FuzzRun.Iterations(30_000), print: Convert.ToHexString);
    }

    [Test]
    public void Valid_replies_and_logons_round_trip()
    {
        var frame = new byte[Frame.MaxBytes];
        s_receipt.Sample(r => ReplyCodec.DecodeAccepted(frame.AsSpan(0, ReplyCodec.EncodeAccepted(in r, frame)), out Receipt d) == RejectReason.None && d.Equals(r),
            seed: FuzzRun.Seed, iter: FuzzRun.Iterations(5_000), threads: 1);
        s_rejection.Sample(r =>
            ReplyCodec.DecodeRejected(frame.AsSpan(0, ReplyCodec.EncodeRejected(r.ClientId, r.ClientSeq, r.Reason, r.Lsn, r.Text, frame)), out Rejection d) == RejectReason.None
            && (d.ClientId, d.ClientSeq, d.Reason, d.Lsn, d.Text) == (r.ClientId, r.ClientSeq, r.Reason, r.Lsn, r.Text),
            seed: FuzzRun.Seed, iter: FuzzRun.Iterations(5_000), threads: 1);
        s_report.Sample(r => ReplyCodec.DecodeExecutionReport(frame.AsSpan(0, ReplyCodec.EncodeExecutionReport(in r, frame)), out ExecutionReport d) == RejectReason.None && d.Equals(r),
            seed: FuzzRun.Seed, iter: FuzzRun.Iterations(5_000), threads: 1);
        s_logonAck.Sample(a => ReplyCodec.DecodeLogonAck(frame.AsSpan(0, ReplyCodec.EncodeLogonAck(in a, frame)), out LogonAck d) == RejectReason.None && d.Equals(a),
            seed: FuzzRun.Seed, iter: FuzzRun.Iterations(5_000), threads: 1);
        s_logon.Sample(l => ReplyCodec.DecodeLogon(frame.AsSpan(0, ReplyCodec.EncodeLogon(l.ClientId, l.Token, frame)), out uint client, out string token) == RejectReason.None
            && client == l.ClientId && token == l.Token,
            seed: FuzzRun.Seed, iter: FuzzRun.Iterations(5_000), threads: 1);
    }
}
