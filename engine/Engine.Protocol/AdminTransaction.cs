using System.Buffers.Binary;

namespace Engine.Protocol;

/// <summary>
/// The admin transactions: changes to the reference data (instruments, accounts and their limits,
/// clients and the accounts they trade for) and the operator's actions on the market (trading halt,
/// cancel-all). Each is a <see cref="Transaction"/> of an admin <see cref="MessageType"/> (17-25),
/// sealed into the ledger like an order, so both nodes apply it at the same place in the same
/// order, replay it on recovery, and carry its effect in their snapshots.
/// </summary>
/// <remarks>
/// <para>Fields, by kind (every field not named is zero, clientSeq included: an admin transaction is
/// no client's request and is not deduplicated; applying one twice gives the same state, but for
/// cancel-all, which cancels what rests at the time):</para>
/// <code>
/// InstrumentDefine     Instrument = id, ClientOrderId = symbol (1-8 ASCII bytes, see PackSymbol),
///                      Quantity = tick size, Price = reference price (0: none), Account = price band (bps, 0: none)
/// InstrumentHalt       Instrument = id
/// InstrumentResume     Instrument = id
/// AccountLimits        Account = id, Quantity = max order quantity, Price = max order notional,
///                      OrigClientOrderId = max open orders
/// ClientEnable         ClientId = id
/// ClientGrant          ClientId = id, Account = first account, OrigClientOrderId = last account (a range)
/// ClientDisable        ClientId = id
/// CancelAllClient      ClientId = id
/// CancelAllInstrument  Instrument = id
/// </code>
/// <para>Token hashes are never in the ledger: it reaches auditors and observers. A client's credential
/// stays in each node's configuration; the ledger says which clients exist, are enabled, and may trade
/// for which accounts.</para>
/// </remarks>
public static class AdminTransaction
{
    /// <summary>Longest instrument symbol the ledger keeps: 8 ASCII bytes (one u64 field).</summary>
    public const int MaxSymbolLength = 8;

    /// <summary>Widest price band: 100,000 bps (10×).</summary>
    public const int MaxPriceBandBps = 100_000;

    /// <summary>True for the admin kinds (17-25).</summary>
    public static bool IsAdmin(MessageType kind) => kind is >= MessageType.InstrumentDefine and <= MessageType.CancelAllInstrument;

    public static Transaction DefineInstrument(uint id, string symbol, long tickSize, long referencePrice = 0, int priceBandBps = 0) => new()
    {
        Kind = MessageType.InstrumentDefine,
        Instrument = id,
        ClientOrderId = PackSymbol(symbol),
        Quantity = tickSize,
        Price = referencePrice,
        Account = (uint)priceBandBps,
    };

    public static Transaction HaltInstrument(uint id) => new() { Kind = MessageType.InstrumentHalt, Instrument = id };

    public static Transaction ResumeInstrument(uint id) => new() { Kind = MessageType.InstrumentResume, Instrument = id };

    public static Transaction SetAccountLimits(uint account, long maxOrderQuantity, long maxOrderNotional, int maxOpenOrders) => new()
    {
        Kind = MessageType.AccountLimits,
        Account = account,
        Quantity = maxOrderQuantity,
        Price = maxOrderNotional,
        OrigClientOrderId = (ulong)(long)maxOpenOrders,
    };

    public static Transaction EnableClient(uint clientId) => new() { Kind = MessageType.ClientEnable, ClientId = clientId };

    public static Transaction GrantAccounts(uint clientId, uint firstAccount, uint lastAccount) => new()
    {
        Kind = MessageType.ClientGrant,
        ClientId = clientId,
        Account = firstAccount,
        OrigClientOrderId = lastAccount,
    };

    public static Transaction DisableClient(uint clientId) => new() { Kind = MessageType.ClientDisable, ClientId = clientId };

    public static Transaction CancelAllOfClient(uint clientId) => new() { Kind = MessageType.CancelAllClient, ClientId = clientId };

    public static Transaction CancelAllOnInstrument(uint id) => new() { Kind = MessageType.CancelAllInstrument, Instrument = id };

    /// <summary>
    /// The checks an admin transaction's fields must pass, whatever the state: the ids in range, the
    /// values an instrument or an account can have, every unused field zero (so a record has one
    /// meaning). <see cref="RejectReason.None"/> or <see cref="RejectReason.BadReferenceData"/>.
    /// </summary>
    public static RejectReason Check(in Transaction tx)
    {
        bool ok = tx.Kind switch
        {
            MessageType.InstrumentDefine => ValidInstrument(tx.Instrument) && TryUnpackSymbol(tx.ClientOrderId, out _)
                && tx.Quantity is > 0 and <= ProtocolLimits.MaxPrice
                && tx.Price >= 0 && tx.Price <= ProtocolLimits.MaxPrice && tx.Price % tx.Quantity == 0
                && tx.Account <= MaxPriceBandBps
                && Unused([tx.ClientId, tx.OrigClientOrderId]),
            MessageType.InstrumentHalt or MessageType.InstrumentResume or MessageType.CancelAllInstrument =>
                ValidInstrument(tx.Instrument) && Unused([tx.ClientId, tx.Account, tx.ClientOrderId, tx.OrigClientOrderId, (ulong)tx.Price, (ulong)tx.Quantity]),
            MessageType.AccountLimits => tx.Quantity is >= 0 and <= ProtocolLimits.MaxQuantity && tx.Price >= 0 && tx.OrigClientOrderId <= int.MaxValue
                && Unused([tx.ClientId, tx.Instrument, tx.ClientOrderId]),
            MessageType.ClientEnable or MessageType.ClientDisable or MessageType.CancelAllClient =>
                ValidClient(tx.ClientId) && Unused([tx.Account, tx.Instrument, tx.ClientOrderId, tx.OrigClientOrderId, (ulong)tx.Price, (ulong)tx.Quantity]),
            MessageType.ClientGrant => ValidClient(tx.ClientId) && tx.OrigClientOrderId <= uint.MaxValue && tx.Account <= tx.OrigClientOrderId
                && Unused([tx.Instrument, tx.ClientOrderId, (ulong)tx.Price, (ulong)tx.Quantity]),
            _ => false,
        };
        return ok && tx.ClientSeq == 0 && tx.Side == Side.None && tx.Type == OrderType.None && tx.TimeInForce == TimeInForce.None
            ? RejectReason.None
            : RejectReason.BadReferenceData;
    }

    /// <summary>A symbol as the ledger keeps it: its ASCII bytes (1 to 8, printable, no space) in a little-endian u64, zero-padded.</summary>
    /// <exception cref="ArgumentException">The symbol is empty, longer than 8, or not printable ASCII.</exception>
    public static ulong PackSymbol(string symbol)
    {
        ArgumentNullException.ThrowIfNull(symbol);
        if (symbol.Length is 0 or > MaxSymbolLength || symbol.Any(c => c is <= ' ' or > '~'))
        {
            throw new ArgumentException($"symbol \"{symbol}\": 1 to {MaxSymbolLength} printable ASCII characters, no space");
        }
        Span<byte> bytes = stackalloc byte[8];
        bytes.Clear();
        for (int i = 0; i < symbol.Length; i++)
        {
            bytes[i] = (byte)symbol[i];
        }
        return BinaryPrimitives.ReadUInt64LittleEndian(bytes);
    }

    /// <summary>The symbol <see cref="PackSymbol"/> made; false for a value it cannot have made.</summary>
    public static bool TryUnpackSymbol(ulong packed, out string symbol)
    {
        symbol = "";
        Span<byte> bytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, packed);
        int length = bytes.IndexOf((byte)0);
        length = length < 0 ? 8 : length;
        if (length == 0 || bytes[length..].ContainsAnyExcept((byte)0) || bytes[..length].ContainsAnyExceptInRange((byte)'!', (byte)'~'))
        {
            return false;
        }
        symbol = System.Text.Encoding.ASCII.GetString(bytes[..length]);
        return true;
    }

    private static bool ValidInstrument(uint id) => id is > 0 and <= ProtocolLimits.MaxInstrumentId;

    private static bool ValidClient(uint id) => id is > 0 and <= ProtocolLimits.MaxClientId;

    /// <summary>The fields a kind does not use are all zero.</summary>
    private static bool Unused(ReadOnlySpan<ulong> fields) => !fields.ContainsAnyExcept(0UL);

    /// <summary>What an admin transaction does, in words (logs, the admin endpoint's answer).</summary>
    public static string Describe(in Transaction tx) => tx.Kind switch
    {
        MessageType.InstrumentDefine => $"define instrument {tx.Instrument} {(TryUnpackSymbol(tx.ClientOrderId, out string s) ? s : "?")} tick {tx.Quantity} reference {tx.Price} band {tx.Account} bps",
        MessageType.InstrumentHalt => $"halt instrument {tx.Instrument}",
        MessageType.InstrumentResume => $"resume instrument {tx.Instrument}",
        MessageType.AccountLimits => $"account {tx.Account} limits: quantity {tx.Quantity}, notional {tx.Price}, open orders {tx.OrigClientOrderId}",
        MessageType.ClientEnable => $"enable client {tx.ClientId}",
        MessageType.ClientGrant => tx.Account == tx.OrigClientOrderId ? $"client {tx.ClientId} may trade account {tx.Account}" : $"client {tx.ClientId} may trade accounts {tx.Account}-{tx.OrigClientOrderId}",
        MessageType.ClientDisable => $"disable client {tx.ClientId}",
        MessageType.CancelAllClient => $"cancel all orders of client {tx.ClientId}",
        MessageType.CancelAllInstrument => $"cancel all orders on instrument {tx.Instrument}",
        _ => tx.ToString(),
    };
}
