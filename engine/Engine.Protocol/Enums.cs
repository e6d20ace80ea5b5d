namespace Engine.Protocol;

/// <summary>The message type byte of a frame. Requests below 32, replies from 32.</summary>
public enum MessageType : byte
{
    None = 0,
    NewOrder = 1,
    Cancel = 2,
    Replace = 3,
    Accepted = 32,
    Rejected = 33,
    ExecutionReport = 34,
}

public enum Side : byte
{
    None = 0,
    Buy = 1,
    Sell = 2,
}

public enum OrderType : byte
{
    None = 0,
    Limit = 1,
    Market = 2,
}

public enum TimeInForce : byte
{
    None = 0,
    /// <summary>Good till cancelled: the remainder rests on the book.</summary>
    Gtc = 1,
    /// <summary>Immediate or cancel: fill what can be filled now, cancel the rest.</summary>
    Ioc = 2,
    /// <summary>Fill or kill: fill all of it now or none of it.</summary>
    Fok = 3,
}

/// <summary>
/// Why a request was not accepted; one code per distinct failure so a client can act on it. Codes
/// are part of the wire protocol: never renumber, only add.
/// </summary>
public enum RejectReason : ushort
{
    None = 0,

    // Frame (1-15): the bytes are not a well-formed frame.
    FrameTooShort = 1,
    FrameTooLarge = 2,
    LengthMismatch = 3,
    BadChecksum = 4,
    UnsupportedVersion = 5,
    UnknownMessageType = 6,
    BadBodyLength = 7,
    ReservedNotZero = 8,

    // Fields (16-47): well-formed, but a field is out of range.
    BadClientSeq = 16,
    BadSide = 17,
    BadOrderType = 18,
    BadTimeInForce = 19,
    ZeroQuantity = 20,
    QuantityOutOfRange = 21,
    PriceOutOfRange = 22,
    MarketOrderHasPrice = 23,
    MarketOrderMustBeImmediate = 24,
    UnknownInstrument = 25,
    PriceNotOnTick = 26,
    SameOrderId = 27,

    // Engine state (64-): the request was fine but the engine could not take it now.
    Busy = 64,
    NotPrimary = 65,
    NoBackup = 66,
    ShuttingDown = 67,
}
