namespace Engine.Ledger;

/// <summary>
/// What a 64-byte ledger record is: byte 8 of every record (after its LSN). A reader dispatches on
/// it and refuses a kind it does not know; it never skips one.
/// </summary>
/// <remarks>
/// The kinds come in families, by range, so that later changes to the ledger have their numbers
/// and a reader names what it met. Every known kind is the protocol's <see cref="Engine.Protocol.MessageType"/>
/// of the transaction it holds, so the sealer writes a transaction's kind as it is (a test pins it):
/// <code>
/// 0x00          none: never valid (a zeroed record is caught)
/// 0x01 - 0x0F   order requests: 0x01 new, 0x02 cancel, 0x03 replace; the rest reserved
/// 0x10 - 0x1F   admin transactions (Engine.Protocol.AdminTransaction): 0x11 define an instrument,
///               0x12 halt it, 0x13 resume it, 0x14 an account's limits, 0x15 enable a client,
///               0x16 grant it accounts, 0x17 disable it, 0x18 cancel-all of a client, 0x19
///               cancel-all on an instrument; 0x10 and 0x1A-0x1F reserved
/// 0x20 - 0x4F   reserved (more reference data kinds, should 0x1A-0x1F not be enough)
/// 0x50 - 0x5F   chain records (reserved: e.g. an anchor or a checkpoint carried in a body)
/// 0x60 - 0xEF   unassigned
/// 0xF0 - 0xFF   continuation (reserved: the payload of the record before it goes on here, for a
///               transaction longer than one record's 55 bytes)
/// </code>
/// A kind this version does not know fails verification.
/// </remarks>
public enum RecordKind : byte
{
    None = 0,
    OrderNew = 1,
    OrderCancel = 2,
    OrderReplace = 3,
    InstrumentDefine = 0x11,
    InstrumentHalt = 0x12,
    InstrumentResume = 0x13,
    AccountLimits = 0x14,
    ClientEnable = 0x15,
    ClientGrant = 0x16,
    ClientDisable = 0x17,
    CancelAllClient = 0x18,
    CancelAllInstrument = 0x19,
}

/// <summary>The family a <see cref="RecordKind"/> value belongs to (its range).</summary>
public enum RecordFamily
{
    None,
    OrderRequest,
    Admin,
    Reserved,
    Chain,
    Unassigned,
    Continuation,
}
