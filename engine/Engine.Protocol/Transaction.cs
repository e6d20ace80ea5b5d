namespace Engine.Protocol;

/// <summary>
/// A request from a front-end, decoded: a new order, a cancel or a replace. One flat value type
/// for the three, so a ring slot holds any of them in place.
/// </summary>
/// <remarks>
/// <c>(ClientId, ClientSeq)</c> is the idempotency key: a client numbers its requests 1, 2, 3, …
/// and the engine applies each at most once.
/// </remarks>
public struct Transaction
{
    public MessageType Kind;
    public Side Side;
    public OrderType Type;
    public TimeInForce TimeInForce;
    public uint ClientId;
    public uint Account;
    public uint Instrument;
    public ulong ClientSeq;

    /// <summary>The order this request creates (new, replace) or names itself by (cancel).</summary>
    public ulong ClientOrderId;

    /// <summary>The order a cancel or replace acts on; 0 for a new order.</summary>
    public ulong OrigClientOrderId;

    /// <summary>Limit price in integer ticks of the instrument's price unit; 0 for a market order and a cancel.</summary>
    public long Price;

    public long Quantity;

    public static Transaction NewOrder(uint clientId, ulong clientSeq, uint account, uint instrument, ulong clientOrderId,
        Side side, OrderType type, TimeInForce timeInForce, long price, long quantity) => new()
        {
            Kind = MessageType.NewOrder,
            ClientId = clientId,
            ClientSeq = clientSeq,
            Account = account,
            Instrument = instrument,
            ClientOrderId = clientOrderId,
            Side = side,
            Type = type,
            TimeInForce = timeInForce,
            Price = price,
            Quantity = quantity,
        };

    public static Transaction Cancel(uint clientId, ulong clientSeq, uint account, uint instrument, ulong clientOrderId, ulong origClientOrderId) => new()
    {
        Kind = MessageType.Cancel,
        ClientId = clientId,
        ClientSeq = clientSeq,
        Account = account,
        Instrument = instrument,
        ClientOrderId = clientOrderId,
        OrigClientOrderId = origClientOrderId,
    };

    public static Transaction Replace(uint clientId, ulong clientSeq, uint account, uint instrument, ulong clientOrderId,
        ulong origClientOrderId, long price, long quantity) => new()
        {
            Kind = MessageType.Replace,
            ClientId = clientId,
            ClientSeq = clientSeq,
            Account = account,
            Instrument = instrument,
            ClientOrderId = clientOrderId,
            OrigClientOrderId = origClientOrderId,
            Type = OrderType.Limit,
            Price = price,
            Quantity = quantity,
        };

    public override readonly string ToString() => Kind switch
    {
        MessageType.NewOrder => $"new #{ClientOrderId} {Side} {Quantity} @ {(Type == OrderType.Market ? "market" : Price)} {TimeInForce} instr {Instrument} acct {Account} (client {ClientId} seq {ClientSeq})",
        MessageType.Cancel => $"cancel #{OrigClientOrderId} as #{ClientOrderId} instr {Instrument} acct {Account} (client {ClientId} seq {ClientSeq})",
        MessageType.Replace => $"replace #{OrigClientOrderId} by #{ClientOrderId} {Quantity} @ {Price} instr {Instrument} acct {Account} (client {ClientId} seq {ClientSeq})",
        _ when AdminTransaction.IsAdmin(Kind) => AdminTransaction.Describe(in this),
        _ => $"{Kind} (client {ClientId} seq {ClientSeq})",
    };
}

/// <summary>Bounds on fields, checked by the codec on decode (and again by the order book, for a transaction that never was decoded).</summary>
public static class ProtocolLimits
{
    /// <summary>
    /// Largest client id: 65,535. Per-client state before the ledger (the highest clientSeq sealed)
    /// is an array indexed by client id, so every id that can log on is tracked; a configuration
    /// naming a larger id is refused.
    /// </summary>
    public const uint MaxClientId = 65_535;

    /// <summary>Largest instrument id: 65,535 (the books are an array indexed by id).</summary>
    public const uint MaxInstrumentId = 65_535;

    /// <summary>
    /// How far above the last clientSeq taken for a client a request's clientSeq may be: 1,024,
    /// the outcomes the order book keeps per client (its dedupe window), and the most requests a
    /// client may have unanswered.
    /// </summary>
    public const ulong ClientSeqWindow = 1024;

    /// <summary>Largest order quantity: 10^9 (a field beyond it is a typo or an attack, not an order).</summary>
    public const long MaxQuantity = 1_000_000_000;

    /// <summary>Largest limit price in ticks: 10^12, so price × quantity stays far inside a long.</summary>
    public const long MaxPrice = 1_000_000_000_000;
}
