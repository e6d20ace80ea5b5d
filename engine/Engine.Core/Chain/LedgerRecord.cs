using System.Buffers.Binary;
using Engine.Protocol;

namespace Engine.Core.Chain;

/// <summary>
/// A transaction as the ledger keeps it: 64 fixed bytes inside a block body, little-endian.
/// </summary>
/// <remarks>
/// <code>
///  0 u64 lsn                 32 u64 origClientOrderId
///  8 u32 clientId            40 i64 price (ticks)
/// 12 u32 account             48 i64 quantity
/// 16 u64 clientSeq           56 u32 instrument
/// 24 u64 clientOrderId       60 u8 kind  61 u8 side  62 u8 type  63 u8 tif
/// </code>
/// </remarks>
public static class LedgerRecord
{
    public const int Bytes = 64;

    public static void Write(in Transaction tx, ulong lsn, Span<byte> destination)
    {
        destination = destination[..Bytes];
        BinaryPrimitives.WriteUInt64LittleEndian(destination, lsn);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[8..], tx.ClientId);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[12..], tx.Account);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[16..], tx.ClientSeq);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[24..], tx.ClientOrderId);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[32..], tx.OrigClientOrderId);
        BinaryPrimitives.WriteInt64LittleEndian(destination[40..], tx.Price);
        BinaryPrimitives.WriteInt64LittleEndian(destination[48..], tx.Quantity);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[56..], tx.Instrument);
        destination[60] = (byte)tx.Kind;
        destination[61] = (byte)tx.Side;
        destination[62] = (byte)tx.Type;
        destination[63] = (byte)tx.TimeInForce;
    }

    public static ulong Read(ReadOnlySpan<byte> source, out Transaction tx)
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
            Kind = (MessageType)source[60],
            Side = (Side)source[61],
            Type = (OrderType)source[62],
            TimeInForce = (TimeInForce)source[63],
        };
        return BinaryPrimitives.ReadUInt64LittleEndian(source);
    }
}
