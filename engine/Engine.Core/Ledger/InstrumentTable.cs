using Engine.Protocol;

namespace Engine.Core.Ledger;

/// <summary>A tradable instrument: its id on the wire, its symbol and its tick (prices are multiples of it).</summary>
public sealed record Instrument(uint Id, string Symbol, long TickSize)
{
    /// <summary>
    /// The price market orders are checked against (their notional: quantity × this) and limit
    /// prices are banded around until the first trade; after it, the last trade's price. 0: none, and
    /// market orders are refused until the first trade.
    /// </summary>
    public long ReferencePrice { get; init; }

    /// <summary>
    /// The price band, in basis points of the reference price: a limit order priced further from it
    /// is refused, and a market order trades only within it (the rest is cancelled). 0: no band.
    /// </summary>
    public int PriceBandBps { get; init; }

    /// <summary>A trading halt is on: new orders and replaces are refused, cancels pass (only ever set by the ledger).</summary>
    public bool Halted { get; init; }
}

/// <summary>
/// The instruments the engine knows, for the stateless checks: an array indexed by id, so a
/// lookup is one bounds check.
/// </summary>
public sealed class InstrumentTable
{
    /// <summary>Largest instrument id (the table is an array of this size).</summary>
    public const uint MaxId = ProtocolLimits.MaxInstrumentId;

    private readonly Instrument?[] _byId;

    public InstrumentTable(IEnumerable<Instrument> instruments)
    {
        var list = instruments.ToList();
        // Ids are checked before the table is sized by the largest: a hostile configuration's id
        // of 2^31 would otherwise make a negative size (OverflowException), not a clear refusal.
        foreach (Instrument instrument in list)
        {
            if (instrument.Id is 0 or > MaxId)
            {
                throw new ArgumentException($"instrument id {instrument.Id} is outside 1..{MaxId}");
            }
        }
        _byId = new Instrument?[list.Count == 0 ? 1 : (int)list.Max(i => i.Id) + 1];
        foreach (Instrument instrument in list)
        {
            if (instrument.Symbol is null || instrument.Symbol.Length is 0 or > AdminTransaction.MaxSymbolLength || instrument.Symbol.Any(c => c is <= ' ' or > '~'))
            {
                throw new ArgumentException($"instrument {instrument.Id}: the symbol \"{instrument.Symbol}\" must be 1 to {AdminTransaction.MaxSymbolLength} printable ASCII characters, no space (the ledger keeps 8 bytes)");
            }
            if (instrument.TickSize <= 0 || instrument.TickSize > ProtocolLimits.MaxPrice)
            {
                throw new ArgumentException($"instrument {instrument.Symbol}: tick size must be 1 to {ProtocolLimits.MaxPrice}");
            }
            if (instrument.ReferencePrice < 0 || instrument.ReferencePrice > ProtocolLimits.MaxPrice || instrument.ReferencePrice % instrument.TickSize != 0)
            {
                throw new ArgumentException($"instrument {instrument.Symbol}: the reference price must be 0 (none) or a positive multiple of the tick up to {ProtocolLimits.MaxPrice}");
            }
            if (instrument.PriceBandBps is < 0 or > AdminTransaction.MaxPriceBandBps)
            {
                throw new ArgumentException($"instrument {instrument.Symbol}: the price band must be 0 (none) to {AdminTransaction.MaxPriceBandBps:N0} basis points");
            }
            if (_byId[instrument.Id] is not null)
            {
                throw new ArgumentException($"instrument id {instrument.Id} is listed twice");
            }
            _byId[instrument.Id] = instrument;
        }
        All = list;
    }

    public IReadOnlyList<Instrument> All { get; }

    public Instrument? Find(uint id) => id < (uint)_byId.Length ? _byId[id] : null;

    /// <summary>The reference-data checks: a known instrument and, for a priced request, a price on its tick.</summary>
    public RejectReason Check(in Transaction tx)
    {
        Instrument? instrument = tx.Instrument < (uint)_byId.Length ? _byId[tx.Instrument] : null;
        if (instrument is null)
        {
            return RejectReason.UnknownInstrument;
        }
        return tx.Price != 0 && tx.Price % instrument.TickSize != 0 ? RejectReason.PriceNotOnTick : RejectReason.None;
    }

    /// <summary>Three instruments for development and tests: ids 1-3, ticks 1, 5 and 25.</summary>
    public static InstrumentTable Development() => new(
    [
        new Instrument(1, "ACME", 1) { ReferencePrice = 1_000 },
        new Instrument(2, "GLOBEX", 5) { ReferencePrice = 5_000 },
        new Instrument(3, "INITECH", 25) { ReferencePrice = 25_000 },
    ]);
}
