namespace Engine.Core.Chain;

/// <summary>
/// What a 64-byte ledger record is: byte 8 of every record (after its LSN). A reader dispatches on
/// it and refuses a kind it does not know; it never skips one.
/// </summary>
/// <remarks>
/// The kinds come in families, by range, so that the later changes to the ledger (admin
/// transactions and reference data in issue 12, chain records) have their numbers now and a reader
/// of today names what it met:
/// <code>
/// 0x00          none: never valid (a zeroed record is caught)
/// 0x01 - 0x0F   order requests: 0x01 new, 0x02 cancel, 0x03 replace (= the protocol's MessageType);
///               the rest reserved
/// 0x10 - 0x2F   admin transactions (reserved: halt/resume an instrument, cancel-all, ...)
/// 0x30 - 0x4F   reference data changes (reserved: instruments, accounts, clients, limits)
/// 0x50 - 0x5F   chain records (reserved: e.g. an anchor or a checkpoint carried in a body)
/// 0x60 - 0xEF   unassigned
/// 0xF0 - 0xFF   continuation (reserved: the payload of the record before it goes on here, for a
///               transaction longer than one record's 55 bytes)
/// </code>
/// Only the order requests are known to this version; every other kind fails verification.
/// </remarks>
public enum RecordKind : byte
{
    None = 0,
    OrderNew = 1,
    OrderCancel = 2,
    OrderReplace = 3,
}

/// <summary>The family a <see cref="RecordKind"/> value belongs to (its range).</summary>
public enum RecordFamily
{
    None,
    OrderRequest,
    Admin,
    ReferenceData,
    Chain,
    Unassigned,
    Continuation,
}
