namespace Engine.Protocol;

/// <summary>
/// The message type byte of a frame. Requests below 32, replies from 32. The admin transactions
/// (17-31) are requests only an operator makes, through a node's signed admin endpoint: the client
/// protocol never accepts them (<see cref="TransactionCodec.Decode"/> answers
/// <see cref="RejectReason.UnknownMessageType"/>); they travel the ring and the ledger as
/// transactions, and their record kinds in the ledger are these values.
/// </summary>
public enum MessageType : byte
{
    None = 0,
    NewOrder = 1,
    Cancel = 2,
    Replace = 3,

    /// <summary>
    /// Asks for the inclusion proof of one of the client's own transactions (its receipt's LSN and
    /// block): answered by <see cref="ProofChunk"/> frames, never through the ledger (see
    /// <see cref="ProofCodec"/>). A proof of another client's transaction is refused as one that does
    /// not exist.
    /// </summary>
    ProofRequest = 4,
    Logon = 16,

    /// <summary>Defines an instrument or changes one (symbol, tick, reference price, price band); see <see cref="AdminTransaction"/> for the fields of each.</summary>
    InstrumentDefine = 17,
    /// <summary>Trading halt: new orders and replaces on the instrument are refused (<see cref="RejectReason.InstrumentHalted"/>); cancels still pass.</summary>
    InstrumentHalt = 18,
    /// <summary>Ends a trading halt.</summary>
    InstrumentResume = 19,
    /// <summary>Defines an account or changes its risk limits.</summary>
    AccountLimits = 20,
    /// <summary>Adds a client (or enables a disabled one): it may log on, with a credential in the node's configuration.</summary>
    ClientEnable = 21,
    /// <summary>Lets a client trade for a range of accounts.</summary>
    ClientGrant = 22,
    /// <summary>Disables a client: its logons and new orders are refused (<see cref="RejectReason.ClientDisabled"/>); its cancels still pass.</summary>
    ClientDisable = 23,
    /// <summary>Cancels every resting order of a client.</summary>
    CancelAllClient = 24,
    /// <summary>Cancels every resting order on an instrument.</summary>
    CancelAllInstrument = 25,

    Accepted = 32,
    Rejected = 33,
    ExecutionReport = 34,
    LogonAck = 35,

    /// <summary>
    /// Engine to client, no body: the session is alive. Sent on a session that has had nothing else
    /// for the heartbeat interval, so a client that hears nothing for longer knows the engine is gone or
    /// frozen (a stopped process keeps its sockets open) and fails over.
    /// </summary>
    Heartbeat = 36,

    /// <summary>Engine to client: a piece of the proof a <see cref="ProofRequest"/> asked for, or its refusal (<see cref="ProofCodec"/>).</summary>
    ProofChunk = 37,
}

/// <summary>What an execution report says happened to an order.</summary>
public enum ExecType : byte
{
    None = 0,
    /// <summary>A fill that leaves nothing open.</summary>
    Fill = 1,
    /// <summary>A fill that leaves quantity open.</summary>
    PartialFill = 2,
    /// <summary>The order (or its unfilled remainder: IOC, FOK, market) is off the book.</summary>
    Cancelled = 3,
    /// <summary>A replace took effect; the report carries the new id, leaves and price.</summary>
    Replaced = 4,
}

/// <summary>
/// The answer to a logon. Every status but <see cref="Ok"/> is followed by the engine closing the
/// connection. Codes are part of the wire protocol: never renumber, only add (a client that does
/// not know a code treats it as a refusal).
/// </summary>
public enum LogonStatus : byte
{
    Ok = 0,

    /// <summary>Unknown client id or wrong token: do not retry with the same credentials.</summary>
    BadCredentials = 1,

    /// <summary>This node does not serve clients now (a backup, stepping down, halted); the LogonAck may name the node to try instead.</summary>
    NotPrimary = 2,

    /// <summary>Too many failed logons from this address lately: refused without looking at the logon; retry later.</summary>
    Throttled = 3,

    /// <summary>The engine has no room for another session now; retry later.</summary>
    Unavailable = 4,

    /// <summary>The port requires TLS and the connection spoke plaintext.</summary>
    TlsRequired = 5,

    /// <summary>The client is disabled in the ledger (an operator's <see cref="MessageType.ClientDisable"/>): do not retry.</summary>
    ClientDisabled = 6,
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
    /// <summary>The request's client id is not the one the session logged on with.</summary>
    ClientMismatch = 28,
    /// <summary>The account is not one this client may trade for.</summary>
    AccountNotAllowed = 29,
    /// <summary>A request before a successful logon.</summary>
    NotLoggedOn = 30,
    /// <summary>
    /// The client id is 0 or above <see cref="ProtocolLimits.MaxClientId"/>: no client can have it,
    /// and the engine could not keep its clientSeqs apart.
    /// </summary>
    BadClientId = 31,
    /// <summary>
    /// clientSeq is more than <see cref="ProtocolLimits.ClientSeqWindow"/> above the last one this
    /// client's requests reached: a jump no honest client makes (it numbers 1, 2, 3, …). Not
    /// executed; each such rejection lets the client's window move on by one window, so a client
    /// that lost count (many requests answered <see cref="Busy"/> or <see cref="NoBackup"/>) gets
    /// back in after a few.
    /// </summary>
    ClientSeqTooFarAhead = 32,

    // State (40-63): checked by the order book, deterministically; the request is in the ledger
    // with its LSN, and the rejection is its outcome.
    UnknownOrder = 40,
    DuplicateOrderId = 41,
    RiskMaxQuantity = 42,
    RiskMaxNotional = 43,
    RiskMaxOpenOrders = 44,
    ReplaceQuantityTooLow = 45,
    /// <summary>clientSeq is not above the last one taken for this client, and no outcome is kept for it: it was not executed now.</summary>
    StaleClientSeq = 46,
    /// <summary>A market order on an instrument with no reference price yet (none configured, no trade): its notional cannot be checked.</summary>
    NoReferencePrice = 47,
    /// <summary>A limit price further from the instrument's reference price than its price band allows.</summary>
    PriceOutsideBand = 48,
    /// <summary>The instrument is halted (an operator's trading halt): no new order or replace until it resumes; cancels pass.</summary>
    InstrumentHalted = 49,
    /// <summary>The client is disabled: no new order or replace; cancels pass.</summary>
    ClientDisabled = 50,
    /// <summary>An admin transaction whose fields are out of range (a tick of 0, a symbol that is no symbol, a grant of no accounts).</summary>
    BadReferenceData = 51,
    /// <summary>An admin transaction names a client the ledger does not know.</summary>
    UnknownClient = 52,
    /// <summary>A client already has as many account ranges as the ledger keeps per client.</summary>
    TooManyGrants = 53,
    /// <summary>
    /// A proof request names no transaction of this client: no transaction with that LSN in that
    /// block, or one of another client (the same answer for both, so it tells nothing about others).
    /// </summary>
    NoSuchTransaction = 54,

    // Engine state (64-): the request was fine but the engine could not take it now.
    Busy = 64,
    NotPrimary = 65,
    NoBackup = 66,
    ShuttingDown = 67,
    /// <summary>
    /// The proof cannot be made now: no signed head covers the transaction yet (retry after the next
    /// head, about a second), this node signs no heads (no ledger key), or too many proofs are being
    /// made; the text says which.
    /// </summary>
    ProofUnavailable = 68,
}
