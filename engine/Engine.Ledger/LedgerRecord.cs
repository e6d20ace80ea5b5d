using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using Engine.Protocol;

namespace Engine.Ledger;

/// <summary>
/// A transaction as the ledger keeps it: 64 fixed bytes inside a block body, little-endian. Every
/// record starts with its LSN and its <see cref="RecordKind"/>; the other 55 bytes are the kind's.
/// </summary>
/// <remarks>
/// Block format version 2 (docs/ledger-format.md):
/// <code>
///  every record              order requests (kinds 0x01 new, 0x02 cancel, 0x03 replace)
///  0 u64 lsn                  9 u8 side   10 u8 type   11 u8 tif
///  8 u8  kind                12 u32 instrument
///  9 .. 63  kind's payload   16 u32 clientId           20 u32 account
///                            24 u64 clientSeq
///                            32 u64 clientOrderId
///                            40 u64 origClientOrderId
///                            48 i64 price (ticks)
///                            56 i64 quantity
/// </code>
/// Version 1 (read for audit only, <see cref="Read(ReadOnlySpan{byte}, ushort, out Transaction)"/>)
/// had no record kind: the order's message type sat at byte 60:
/// <code>
///  0 u64 lsn                 32 u64 origClientOrderId
///  8 u32 clientId            40 i64 price (ticks)
/// 12 u32 account             48 i64 quantity
/// 16 u64 clientSeq           56 u32 instrument
/// 24 u64 clientOrderId       60 u8 kind  61 u8 side  62 u8 type  63 u8 tif
/// </code>
/// The record kinds of the order requests are the protocol's <see cref="MessageType"/> values, so
/// the sealer writes the validated request's type as it is (a test pins the equality).
/// </remarks>
public static class LedgerRecord
{
    public const int Bytes = 64;

    /// <summary>Where the kind sits in every record (v2).</summary>
    public const int KindOffset = 8;

    /// <summary>Where a version 1 record kept the order's message type, its kind.</summary>
    private const int Version1KindOffset = 60;

    public static void Write(in Transaction tx, ulong lsn, Span<byte> destination)
    {
        destination = destination[..Bytes];
        BinaryPrimitives.WriteUInt64LittleEndian(destination, lsn);
        destination[8] = (byte)tx.Kind;
        destination[9] = (byte)tx.Side;
        destination[10] = (byte)tx.Type;
        destination[11] = (byte)tx.TimeInForce;
        BinaryPrimitives.WriteUInt32LittleEndian(destination[12..], tx.Instrument);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[16..], tx.ClientId);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[20..], tx.Account);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[24..], tx.ClientSeq);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[32..], tx.ClientOrderId);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[40..], tx.OrigClientOrderId);
        BinaryPrimitives.WriteInt64LittleEndian(destination[48..], tx.Price);
        BinaryPrimitives.WriteInt64LittleEndian(destination[56..], tx.Quantity);
    }

    /// <summary>The LSN of a record (any version: it is the first 8 bytes in both).</summary>
    public static ulong LsnOf(ReadOnlySpan<byte> record) => BinaryPrimitives.ReadUInt64LittleEndian(record);

    /// <summary>The kind of a v2 record: what a reader dispatches on.</summary>
    public static RecordKind KindOf(ReadOnlySpan<byte> record) => (RecordKind)record[KindOffset];

    /// <summary>
    /// The kind of a record of block format <paramref name="formatVersion"/> (1 or 2): a version 1
    /// record's message type is its kind (the order request kinds are the message types).
    /// </summary>
    public static RecordKind KindOf(ReadOnlySpan<byte> record, ushort formatVersion) =>
        (RecordKind)record[formatVersion == BlockFormat.Version1 ? Version1KindOffset : KindOffset];

    /// <summary>True for the kinds this version knows: the order requests and the admin transactions.</summary>
    public static bool IsKnown(RecordKind kind) =>
        kind is RecordKind.OrderNew or RecordKind.OrderCancel or RecordKind.OrderReplace || AdminTransaction.IsAdmin((MessageType)kind);

    /// <summary>The family of a kind, by its range.</summary>
    public static RecordFamily FamilyOf(RecordKind kind) => (byte)kind switch
    {
        0x00 => RecordFamily.None,
        <= 0x0F => RecordFamily.OrderRequest,
        <= 0x1F => RecordFamily.Admin,
        <= 0x4F => RecordFamily.Reserved,
        <= 0x5F => RecordFamily.Chain,
        <= 0xEF => RecordFamily.Unassigned,
        _ => RecordFamily.Continuation,
    };

    /// <summary>Why a reader of this version refuses <paramref name="kind"/>, for a fault message.</summary>
    public static string Unknown(RecordKind kind) => FamilyOf(kind) switch
    {
        RecordFamily.None => "kind 0x00, which no record has (a zeroed record)",
        RecordFamily.OrderRequest => $"kind 0x{(byte)kind:x2}, an order request kind reserved for later (0x04-0x0F)",
        RecordFamily.Admin => $"kind 0x{(byte)kind:x2}, an admin transaction kind reserved for later (0x10, 0x1A-0x1F)",
        RecordFamily.Reserved => $"kind 0x{(byte)kind:x2}, reserved (0x20-0x4F): not known to this reader",
        RecordFamily.Chain => $"kind 0x{(byte)kind:x2}, a chain record (0x50-0x5F), reserved: not known to this reader",
        RecordFamily.Continuation => $"kind 0x{(byte)kind:x2}, a continuation (0xF0-0xFF), reserved: not known to this reader",
        _ => $"kind 0x{(byte)kind:x2}, unassigned",
    };

    /// <summary>
    /// Reads the transaction a v2 record holds (an order request or an admin transaction: the same
    /// fields, <see cref="Transaction.Kind"/> says which); returns its LSN. Callers read verified
    /// blocks (<c>ChainVerifier</c> (Engine.Core) refuses every kind it does not know); a record of a kind
    /// this version does not know throws rather than be misread.
    /// </summary>
    /// <exception cref="InvalidDataException">The record is of no kind this version knows.</exception>
    public static ulong Read(ReadOnlySpan<byte> source, out Transaction tx)
    {
        source = source[..Bytes];
        byte kind = source[8];
        if (!IsKnown((RecordKind)kind))
        {
            ThrowNotATransaction(source);
        }
        tx = new Transaction
        {
            Kind = (MessageType)kind,
            Side = (Side)source[9],
            Type = (OrderType)source[10],
            TimeInForce = (TimeInForce)source[11],
            Instrument = BinaryPrimitives.ReadUInt32LittleEndian(source[12..]),
            ClientId = BinaryPrimitives.ReadUInt32LittleEndian(source[16..]),
            Account = BinaryPrimitives.ReadUInt32LittleEndian(source[20..]),
            ClientSeq = BinaryPrimitives.ReadUInt64LittleEndian(source[24..]),
            ClientOrderId = BinaryPrimitives.ReadUInt64LittleEndian(source[32..]),
            OrigClientOrderId = BinaryPrimitives.ReadUInt64LittleEndian(source[40..]),
            Price = BinaryPrimitives.ReadInt64LittleEndian(source[48..]),
            Quantity = BinaryPrimitives.ReadInt64LittleEndian(source[56..]),
        };
        return BinaryPrimitives.ReadUInt64LittleEndian(source);
    }

    /// <summary>Reads an order request from a record of block format <paramref name="formatVersion"/> (1 or 2).</summary>
    public static ulong Read(ReadOnlySpan<byte> source, ushort formatVersion, out Transaction tx) =>
        formatVersion == BlockFormat.Version1 ? ReadVersion1(source, out tx) : Read(source, out tx);

    private static ulong ReadVersion1(ReadOnlySpan<byte> source, out Transaction tx)
    {
        source = source[..Bytes];
        tx = new Transaction
        {
            ClientId = BinaryPrimitives.ReadUInt32LittleEndian(source[8..]),
            Account = BinaryPrimitives.ReadUInt32LittleEndian(source[12..]),
            ClientSeq = BinaryPrimitives.ReadUInt64LittleEndian(source[16..]),
            ClientOrderId = BinaryPrimitives.ReadUInt64LittleEndian(source[24..]),
            OrigClientOrderId = BinaryPrimitives.ReadUInt64LittleEndian(source[32..]),
            Price = BinaryPrimitives.ReadInt64LittleEndian(source[40..]),
            Quantity = BinaryPrimitives.ReadInt64LittleEndian(source[48..]),
            Instrument = BinaryPrimitives.ReadUInt32LittleEndian(source[56..]),
            Kind = (MessageType)source[Version1KindOffset],
            Side = (Side)source[61],
            Type = (OrderType)source[62],
            TimeInForce = (TimeInForce)source[63],
        };
        return BinaryPrimitives.ReadUInt64LittleEndian(source);
    }

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowNotATransaction(ReadOnlySpan<byte> record) =>
        throw new InvalidDataException($"the record with LSN {LsnOf(record)} holds no transaction this version knows: {Unknown(KindOf(record))}");
}
