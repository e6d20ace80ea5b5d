using System.Buffers.Binary;
using CsCheck;
using Engine.Protocol;

namespace Engine.Tests.Protocol;

public class CodecTests
{
    /// <summary>Seeded: a failure prints the seed, and the same seed replays it.</summary>
    private const string Seed = "0N0XIzNsQ0O2";

    private static readonly Gen<Side> GenSide = Gen.OneOf(Side.Buy, Side.Sell);
    private static readonly Gen<TimeInForce> GenTif = Gen.OneOf(TimeInForce.Gtc, TimeInForce.Ioc, TimeInForce.Fok);

    // Who and what: client (1 to the largest id), seq (never 0), account, instrument, client order id.
    private static readonly Gen<(uint, ulong, uint, uint, ulong)> GenIds =
        Gen.Select(Gen.UInt[1, ProtocolLimits.MaxClientId], Gen.ULong[1, ulong.MaxValue], Gen.UInt, Gen.UInt, Gen.ULong);

    private static readonly Gen<long> GenPrice = Gen.Long[1, ProtocolLimits.MaxPrice];
    private static readonly Gen<long> GenQuantity = Gen.Long[1, ProtocolLimits.MaxQuantity];

    private static readonly Gen<Transaction> GenNewLimit =
        Gen.Select(GenIds, GenSide, GenTif, GenPrice, GenQuantity, (id, side, tif, price, quantity) =>
            Transaction.NewOrder(id.Item1, id.Item2, id.Item3, id.Item4, id.Item5, side, OrderType.Limit, tif, price, quantity));

    private static readonly Gen<Transaction> GenNewMarket =
        Gen.Select(GenIds, GenSide, Gen.OneOf(TimeInForce.Ioc, TimeInForce.Fok), GenQuantity, (id, side, tif, quantity) =>
            Transaction.NewOrder(id.Item1, id.Item2, id.Item3, id.Item4, id.Item5, side, OrderType.Market, tif, 0, quantity));

    private static readonly Gen<Transaction> GenCancel =
        Gen.Select(GenIds, Gen.ULong, (id, orig) => Transaction.Cancel(id.Item1, id.Item2, id.Item3, id.Item4, id.Item5, orig));

    private static readonly Gen<Transaction> GenReplace =
        Gen.Select(GenIds, Gen.ULong, GenPrice, GenQuantity, (id, orig, price, quantity) =>
            Transaction.Replace(id.Item1, id.Item2, id.Item3, id.Item4, id.Item5 == orig ? orig + 1 : id.Item5, orig, price, quantity));

    public static readonly Gen<Transaction> GenValid = Gen.OneOf(GenNewLimit, GenNewMarket, GenCancel, GenReplace);

    [Test]
    public void Every_valid_request_round_trips_exactly()
    {
        GenValid.Sample(tx =>
        {
            Span<byte> frame = stackalloc byte[TransactionCodec.MaxFrameBytes];
            int length = TransactionCodec.Encode(in tx, frame);
            RejectReason reason = TransactionCodec.Decode(frame[..length], out Transaction decoded);
            return reason == RejectReason.None && decoded.Equals(tx) && Frame.PeekLength(frame) == length;
        }, seed: Seed, iter: 20_000);
    }

    [Test]
    public void Any_single_flipped_bit_is_caught()
    {
        Gen.Select(GenValid, Gen.Int[0, 10_000], Gen.Int[0, 7]).Sample(t =>
        {
            var (tx, position, bit) = t;
            Span<byte> frame = stackalloc byte[TransactionCodec.MaxFrameBytes];
            int length = TransactionCodec.Encode(in tx, frame);
            frame[position % length] ^= (byte)(1 << bit);
            // A flip anywhere, header included, must be refused: CRC-32C detects every single-bit error.
            return TransactionCodec.Decode(frame[..length], out _) != RejectReason.None;
        }, seed: Seed, iter: 20_000);
    }

    [Test]
    public void Crc32C_matches_the_standard_check_value()
    {
        Assert.That(Crc32C.Compute("123456789"u8), Is.EqualTo(0xE3069283u));
        Assert.That(Crc32C.Compute("1234"u8, "56789"u8), Is.EqualTo(0xE3069283u));
    }

    private static byte[] Encode(Transaction tx)
    {
        var frame = new byte[TransactionCodec.MaxFrameBytes];
        return frame[..TransactionCodec.Encode(in tx, frame)];
    }

    private static Transaction ValidLimit => Transaction.NewOrder(7, 1, 3, 1, 100, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 1000, 10);

    /// <summary>Re-encodes the header CRC after a test has changed a byte on purpose, so only the intended check fails.</summary>
    private static byte[] Resealed(byte[] frame)
    {
        uint crc = Crc32C.Compute(frame.AsSpan(0, Frame.CrcOffset), frame.AsSpan(Frame.HeaderBytes));
        BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(Frame.CrcOffset), crc);
        return frame;
    }

    public static IEnumerable<TestCaseData> Malformed()
    {
        byte[] good = Encode(ValidLimit);
        yield return new TestCaseData(good[..5], RejectReason.FrameTooShort).SetName("truncated below the header");
        yield return new TestCaseData(good[..^1], RejectReason.LengthMismatch).SetName("truncated body");
        yield return new TestCaseData(good.Concat(new byte[3]).ToArray(), RejectReason.LengthMismatch).SetName("trailing bytes");
        byte[] huge = (byte[])good.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(huge, 1 << 20);
        yield return new TestCaseData(huge, RejectReason.FrameTooLarge).SetName("oversized length");
        byte[] tiny = (byte[])good.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(tiny, 4);
        yield return new TestCaseData(tiny, RejectReason.FrameTooShort).SetName("length below the header");
        byte[] crc = (byte[])good.Clone();
        crc[20] ^= 1;
        yield return new TestCaseData(crc, RejectReason.BadChecksum).SetName("wrong crc");
        byte[] version = (byte[])good.Clone();
        version[Frame.VersionOffset] = 9;
        yield return new TestCaseData(Resealed(version), RejectReason.UnsupportedVersion).SetName("unknown version");
        byte[] type = (byte[])good.Clone();
        type[Frame.TypeOffset] = 99;
        yield return new TestCaseData(Resealed(type), RejectReason.UnknownMessageType).SetName("unknown type");
        byte[] reply = (byte[])good.Clone();
        reply[Frame.TypeOffset] = (byte)MessageType.Accepted;
        yield return new TestCaseData(Resealed(reply), RejectReason.UnknownMessageType).SetName("a reply sent as a request");
        byte[] asCancel = (byte[])good.Clone();
        asCancel[Frame.TypeOffset] = (byte)MessageType.Cancel;
        yield return new TestCaseData(Resealed(asCancel), RejectReason.BadBodyLength).SetName("body length of another type");
        byte[] reserved = (byte[])good.Clone();
        reserved[Frame.ReservedOffset] = 1;
        yield return new TestCaseData(Resealed(reserved), RejectReason.ReservedNotZero).SetName("reserved header bytes set");
        byte[] bodyReserved = (byte[])good.Clone();
        bodyReserved[Frame.HeaderBytes + 47] = 1;
        yield return new TestCaseData(Resealed(bodyReserved), RejectReason.ReservedNotZero).SetName("reserved body byte set");

        Transaction t = ValidLimit;
        yield return Field(t with { ClientSeq = 0 }, RejectReason.BadClientSeq, "client seq zero");
        yield return Field(t with { ClientId = 0 }, RejectReason.BadClientId, "client id zero");
        yield return Field(t with { ClientId = ProtocolLimits.MaxClientId + 1 }, RejectReason.BadClientId, "client id above the largest");
        yield return Field(Transaction.Cancel(uint.MaxValue, 1, 3, 1, 101, 100), RejectReason.BadClientId, "cancel from client id 2^32-1");
        yield return Field(t with { Side = (Side)7 }, RejectReason.BadSide, "bad side");
        yield return Field(t with { Type = (OrderType)9 }, RejectReason.BadOrderType, "bad order type");
        yield return Field(t with { TimeInForce = 0 }, RejectReason.BadTimeInForce, "bad time in force");
        yield return Field(t with { Quantity = 0 }, RejectReason.ZeroQuantity, "zero quantity");
        yield return Field(t with { Quantity = -5 }, RejectReason.QuantityOutOfRange, "negative quantity");
        yield return Field(t with { Quantity = ProtocolLimits.MaxQuantity + 1 }, RejectReason.QuantityOutOfRange, "quantity above the limit");
        yield return Field(t with { Price = 0 }, RejectReason.PriceOutOfRange, "limit order without a price");
        yield return Field(t with { Price = -1 }, RejectReason.PriceOutOfRange, "negative price");
        yield return Field(t with { Price = ProtocolLimits.MaxPrice + 1 }, RejectReason.PriceOutOfRange, "price above the limit");
        yield return Field(t with { Type = OrderType.Market, TimeInForce = TimeInForce.Ioc }, RejectReason.MarketOrderHasPrice, "market order with a price");
        yield return Field(t with { Type = OrderType.Market, Price = 0 }, RejectReason.MarketOrderMustBeImmediate, "market order GTC");
        yield return Field(Transaction.Replace(7, 2, 3, 1, 100, 100, 1000, 10), RejectReason.SameOrderId, "replace onto its own id");
        yield return Field(Transaction.Replace(7, 2, 3, 1, 101, 100, 1000, 0), RejectReason.ZeroQuantity, "replace to zero quantity");
        yield return Field(Transaction.Cancel(7, 0, 3, 1, 101, 100), RejectReason.BadClientSeq, "cancel with client seq zero");

        static TestCaseData Field(Transaction tx, RejectReason reason, string name) => new TestCaseData(Encode(tx), reason).SetName(name);
    }

    [TestCaseSource(nameof(Malformed))]
    public void A_malformed_frame_gets_its_own_reason(byte[] frame, RejectReason expected)
    {
        Assert.That(TransactionCodec.Decode(frame, out _), Is.EqualTo(expected));
    }

    [Test]
    public void Replies_round_trip()
    {
        var receipt = new Receipt { ClientId = 9, ClientSeq = 77, Lsn = 12345, BlockNo = 42, BlockHash = Hash32.From(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray()) };
        var frame = new byte[Frame.MaxBytes];
        int length = ReplyCodec.EncodeAccepted(in receipt, frame);
        Assert.That(ReplyCodec.DecodeAccepted(frame.AsSpan(0, length), out Receipt decoded), Is.EqualTo(RejectReason.None));
        Assert.That(decoded, Is.EqualTo(receipt));

        length = ReplyCodec.EncodeRejected(9, 78, RejectReason.PriceNotOnTick, 0, "price 1003 is not a multiple of the tick 5 — ünïcødé and far too long for the field", frame);
        Assert.That(ReplyCodec.DecodeRejected(frame.AsSpan(0, length), out Rejection rejection), Is.EqualTo(RejectReason.None));
        Assert.Multiple(() =>
        {
            Assert.That(rejection.Reason, Is.EqualTo(RejectReason.PriceNotOnTick));
            Assert.That(rejection.ClientSeq, Is.EqualTo(78));
            Assert.That(rejection.Text, Does.StartWith("price 1003 is not a multiple"));
            Assert.That(System.Text.Encoding.UTF8.GetByteCount(rejection.Text!), Is.LessThanOrEqualTo(ReplyCodec.MaxRejectTextBytes));
        });
    }

    [Test]
    public void Encoding_and_decoding_allocate_nothing()
    {
        Transaction tx = ValidLimit;
        var frame = new byte[TransactionCodec.MaxFrameBytes];
        TransactionCodec.Encode(in tx, frame); // warm up
        TransactionCodec.Decode(frame.AsSpan(0, 60), out _);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
        {
            int length = TransactionCodec.Encode(in tx, frame);
            TransactionCodec.Decode(frame.AsSpan(0, length), out _);
        }
        Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.Zero);
    }
}
