using System.Buffers.Binary;

namespace Engine.Protocol;

/// <summary>
/// Encodes and decodes the three request messages, with every stateless check on decode. No
/// allocation: spans in, spans out.
/// </summary>
/// <remarks>
/// Bodies (after the 12-byte <see cref="Frame"/> header), little-endian:
/// <code>
/// NewOrder (48 B)                     Cancel (40 B)                      Replace (56 B)
///  0 u32 clientId                      0 u32 clientId                     0 u32 clientId
///  4 u32 account                       4 u32 account                      4 u32 account
///  8 u64 clientSeq                     8 u64 clientSeq                    8 u64 clientSeq
/// 16 u64 clientOrderId                16 u64 clientOrderId               16 u64 clientOrderId (new)
/// 24 i64 price (ticks; 0 = market)    24 u64 origClientOrderId           24 u64 origClientOrderId
/// 32 i64 quantity                     32 u32 instrument                  32 i64 price (ticks)
/// 40 u32 instrument                   36 u32 reserved = 0                40 i64 quantity
/// 44 u8  side  (1 buy, 2 sell)                                           48 u32 instrument
/// 45 u8  type  (1 limit, 2 market)                                       52 u32 reserved = 0
/// 46 u8  tif   (1 GTC, 2 IOC, 3 FOK)
/// 47 u8  reserved = 0
/// </code>
/// </remarks>
public static class TransactionCodec
{
    public const int NewOrderBodyBytes = 48;
    public const int CancelBodyBytes = 40;
    public const int ReplaceBodyBytes = 56;

    /// <summary>The largest encoded request: a replace.</summary>
    public const int MaxFrameBytes = Frame.HeaderBytes + ReplaceBodyBytes;

    /// <summary>Writes <paramref name="tx"/> as a frame into <paramref name="destination"/>; returns the frame's length.</summary>
    public static int Encode(in Transaction tx, Span<byte> destination)
    {
        Span<byte> body = destination[Frame.HeaderBytes..];
        int bodyBytes;
        BinaryPrimitives.WriteUInt32LittleEndian(body, tx.ClientId);
        BinaryPrimitives.WriteUInt32LittleEndian(body[4..], tx.Account);
        BinaryPrimitives.WriteUInt64LittleEndian(body[8..], tx.ClientSeq);
        BinaryPrimitives.WriteUInt64LittleEndian(body[16..], tx.ClientOrderId);
        switch (tx.Kind)
        {
            case MessageType.NewOrder:
                BinaryPrimitives.WriteInt64LittleEndian(body[24..], tx.Price);
                BinaryPrimitives.WriteInt64LittleEndian(body[32..], tx.Quantity);
                BinaryPrimitives.WriteUInt32LittleEndian(body[40..], tx.Instrument);
                body[44] = (byte)tx.Side;
                body[45] = (byte)tx.Type;
                body[46] = (byte)tx.TimeInForce;
                body[47] = 0;
                bodyBytes = NewOrderBodyBytes;
                break;
            case MessageType.Cancel:
                BinaryPrimitives.WriteUInt64LittleEndian(body[24..], tx.OrigClientOrderId);
                BinaryPrimitives.WriteUInt32LittleEndian(body[32..], tx.Instrument);
                BinaryPrimitives.WriteUInt32LittleEndian(body[36..], 0);
                bodyBytes = CancelBodyBytes;
                break;
            case MessageType.Replace:
                BinaryPrimitives.WriteUInt64LittleEndian(body[24..], tx.OrigClientOrderId);
                BinaryPrimitives.WriteInt64LittleEndian(body[32..], tx.Price);
                BinaryPrimitives.WriteInt64LittleEndian(body[40..], tx.Quantity);
                BinaryPrimitives.WriteUInt32LittleEndian(body[48..], tx.Instrument);
                BinaryPrimitives.WriteUInt32LittleEndian(body[52..], 0);
                bodyBytes = ReplaceBodyBytes;
                break;
            default:
                throw new ArgumentException($"not a request: {tx.Kind}", nameof(tx));
        }
        Frame.WriteHeader(destination, tx.Kind, bodyBytes);
        return Frame.HeaderBytes + bodyBytes;
    }

    /// <summary>
    /// Decodes a complete frame into <paramref name="tx"/> and checks every field that needs no
    /// engine state (<see cref="Check"/>). Returns <see cref="RejectReason.None"/> or the first
    /// reason it is invalid; on a frame-level failure <paramref name="tx"/> is default, on a field
    /// failure it holds the decoded fields (for the reply). Never throws: any bytes are an answer.
    /// </summary>
    public static RejectReason Decode(ReadOnlySpan<byte> frame, out Transaction tx)
    {
        tx = default;
        RejectReason frameReason = Frame.Check(frame, out MessageType type, out ReadOnlySpan<byte> body);
        if (frameReason != RejectReason.None)
        {
            return frameReason;
        }
        int expected = type switch
        {
            MessageType.NewOrder => NewOrderBodyBytes,
            MessageType.Cancel => CancelBodyBytes,
            MessageType.Replace => ReplaceBodyBytes,
            _ => -1,
        };
        if (expected < 0)
        {
            return RejectReason.UnknownMessageType;
        }
        if (body.Length != expected)
        {
            return RejectReason.BadBodyLength;
        }
        tx.Kind = type;
        tx.ClientId = BinaryPrimitives.ReadUInt32LittleEndian(body);
        tx.Account = BinaryPrimitives.ReadUInt32LittleEndian(body[4..]);
        tx.ClientSeq = BinaryPrimitives.ReadUInt64LittleEndian(body[8..]);
        tx.ClientOrderId = BinaryPrimitives.ReadUInt64LittleEndian(body[16..]);
        bool reservedZero;
        switch (type)
        {
            case MessageType.NewOrder:
                tx.Price = BinaryPrimitives.ReadInt64LittleEndian(body[24..]);
                tx.Quantity = BinaryPrimitives.ReadInt64LittleEndian(body[32..]);
                tx.Instrument = BinaryPrimitives.ReadUInt32LittleEndian(body[40..]);
                tx.Side = (Side)body[44];
                tx.Type = (OrderType)body[45];
                tx.TimeInForce = (TimeInForce)body[46];
                reservedZero = body[47] == 0;
                break;
            case MessageType.Cancel:
                tx.OrigClientOrderId = BinaryPrimitives.ReadUInt64LittleEndian(body[24..]);
                tx.Instrument = BinaryPrimitives.ReadUInt32LittleEndian(body[32..]);
                reservedZero = BinaryPrimitives.ReadUInt32LittleEndian(body[36..]) == 0;
                break;
            default:
                tx.OrigClientOrderId = BinaryPrimitives.ReadUInt64LittleEndian(body[24..]);
                tx.Price = BinaryPrimitives.ReadInt64LittleEndian(body[32..]);
                tx.Quantity = BinaryPrimitives.ReadInt64LittleEndian(body[40..]);
                tx.Instrument = BinaryPrimitives.ReadUInt32LittleEndian(body[48..]);
                tx.Type = OrderType.Limit;
                reservedZero = BinaryPrimitives.ReadUInt32LittleEndian(body[52..]) == 0;
                break;
        }
        return reservedZero ? Check(in tx) : RejectReason.ReservedNotZero;
    }

    /// <summary>
    /// The checks that need no engine state, on a request however it was made: the idempotency key
    /// (a client id that can exist, a clientSeq above 0), then the fields its kind carries. The
    /// codec runs them on decode; the order book runs them again on every transaction it applies,
    /// so a journaled transaction that never was decoded (a hand-made block, an older version's
    /// journal) meets the same rules and no field outside them ever reaches the book.
    /// </summary>
    public static RejectReason Check(in Transaction tx)
    {
        if (tx.ClientId is 0 or > ProtocolLimits.MaxClientId)
        {
            return RejectReason.BadClientId;
        }
        if (tx.ClientSeq == 0)
        {
            return RejectReason.BadClientSeq;
        }
        return tx.Kind switch
        {
            MessageType.NewOrder => CheckNewOrder(in tx),
            MessageType.Cancel => RejectReason.None,
            MessageType.Replace => CheckReplace(in tx),
            _ => RejectReason.UnknownMessageType,
        };
    }

    private static RejectReason CheckNewOrder(in Transaction tx)
    {
        if (tx.Side is not (Side.Buy or Side.Sell))
        {
            return RejectReason.BadSide;
        }
        if (tx.Type is not (OrderType.Limit or OrderType.Market))
        {
            return RejectReason.BadOrderType;
        }
        if (tx.TimeInForce is not (TimeInForce.Gtc or TimeInForce.Ioc or TimeInForce.Fok))
        {
            return RejectReason.BadTimeInForce;
        }
        RejectReason quantity = CheckQuantity(tx.Quantity);
        if (quantity != RejectReason.None)
        {
            return quantity;
        }
        if (tx.Type == OrderType.Market)
        {
            if (tx.Price != 0)
            {
                return RejectReason.MarketOrderHasPrice;
            }
            // A market order never rests: there is no price to rest at.
            return tx.TimeInForce == TimeInForce.Gtc ? RejectReason.MarketOrderMustBeImmediate : RejectReason.None;
        }
        return CheckPrice(tx.Price);
    }

    private static RejectReason CheckReplace(in Transaction tx)
    {
        if (tx.ClientOrderId == tx.OrigClientOrderId)
        {
            return RejectReason.SameOrderId;
        }
        RejectReason quantity = CheckQuantity(tx.Quantity);
        return quantity != RejectReason.None ? quantity : CheckPrice(tx.Price);
    }

    private static RejectReason CheckQuantity(long quantity) => quantity switch
    {
        0 => RejectReason.ZeroQuantity,
        < 0 or > ProtocolLimits.MaxQuantity => RejectReason.QuantityOutOfRange,
        _ => RejectReason.None,
    };

    private static RejectReason CheckPrice(long price) =>
        price is <= 0 or > ProtocolLimits.MaxPrice ? RejectReason.PriceOutOfRange : RejectReason.None;
}
