using System.Collections.Immutable;
using Engine.Core.Ledger;
using Engine.Protocol;

namespace Engine.Core.Book;

/// <summary>A range of account ids a client may trade for, both ends included.</summary>
public readonly record struct AccountRange(uint First, uint Last)
{
    public bool Contains(uint account) => account >= First && account <= Last;

    public override string ToString() => First == Last ? $"{First}" : $"{First}-{Last}";
}

/// <summary>What the ledger says of a client: whether it is enabled, and the accounts it may trade for.</summary>
public sealed record ClientGrants(bool Enabled, ImmutableArray<AccountRange> Accounts)
{
    /// <summary>Most account ranges kept per client: a grant beyond them is refused (<see cref="RejectReason.TooManyGrants"/>).</summary>
    public const int MaxRanges = 256;

    public bool MayTrade(uint account)
    {
        foreach (AccountRange range in Accounts)
        {
            if (range.Contains(account))
            {
                return true;
            }
        }
        return false;
    }
}

/// <summary>
/// The reference data as the ledger has it at some point: an immutable copy the order book
/// publishes after every admin transaction it applies, for the threads that check requests before
/// the ledger (the validate stage, the gateway's logons). The book itself decides on its own tables,
/// at the transaction's place in the log; a check made on a view a transaction older is at worst a
/// refusal before the ledger of a request that raced with an operator's change.
/// </summary>
public sealed class ReferenceView
{
    public static ReferenceView Empty { get; } = new(new InstrumentTable([]), ImmutableSortedDictionary<uint, AccountLimits>.Empty, ImmutableSortedDictionary<uint, ClientGrants>.Empty);

    public ReferenceView(InstrumentTable instruments, ImmutableSortedDictionary<uint, AccountLimits> accounts, ImmutableSortedDictionary<uint, ClientGrants> clients)
    {
        Instruments = instruments;
        Accounts = accounts;
        Clients = clients;
    }

    /// <summary>Instruments alone (synthetic runs: no sessions, so no clients or accounts are checked before the ledger).</summary>
    public static ReferenceView OfInstruments(InstrumentTable instruments) =>
        new(instruments, ImmutableSortedDictionary<uint, AccountLimits>.Empty, ImmutableSortedDictionary<uint, ClientGrants>.Empty);

    public InstrumentTable Instruments { get; }

    public ImmutableSortedDictionary<uint, AccountLimits> Accounts { get; }

    public ImmutableSortedDictionary<uint, ClientGrants> Clients { get; }

    /// <summary>True when nothing is defined: a ledger whose reference data was never journaled.</summary>
    public bool IsEmpty => Instruments.All.Count == 0 && Accounts.IsEmpty && Clients.IsEmpty;

    /// <summary>Whether <paramref name="clientId"/> may enter a new order for <paramref name="account"/>: None, <see cref="RejectReason.ClientDisabled"/> or <see cref="RejectReason.AccountNotAllowed"/>.</summary>
    public RejectReason CheckEntitlement(uint clientId, uint account) =>
        !Clients.TryGetValue(clientId, out ClientGrants? grants) ? RejectReason.AccountNotAllowed
        : !grants.Enabled ? RejectReason.ClientDisabled
        : grants.MayTrade(account) ? RejectReason.None : RejectReason.AccountNotAllowed;

    /// <summary>
    /// Where <paramref name="config"/> (a node's configuration) says otherwise than this ledger: one line
    /// per difference, none when they agree. The node follows the ledger and says so.
    /// </summary>
    public IEnumerable<string> DifferencesFrom(ReferenceData config)
    {
        foreach (Instrument wanted in config.Instruments.All)
        {
            Instrument? has = Instruments.Find(wanted.Id);
            if (has is null)
            {
                yield return $"instrument {wanted.Id} ({wanted.Symbol}) is configured, not in the ledger";
            }
            else if (has.Symbol != wanted.Symbol || has.TickSize != wanted.TickSize || has.ReferencePrice != wanted.ReferencePrice || has.PriceBandBps != wanted.PriceBandBps)
            {
                yield return $"instrument {wanted.Id}: configured {Describe(wanted)}, the ledger has {Describe(has)}";
            }
        }
        foreach (Instrument has in Instruments.All.Where(i => config.Instruments.Find(i.Id) is null))
        {
            yield return $"instrument {has.Id} ({has.Symbol}) is in the ledger, not configured";
        }
        foreach (var (id, wanted) in config.Accounts.OrderBy(a => a.Key))
        {
            if (!Accounts.TryGetValue(id, out AccountLimits? has))
            {
                yield return $"account {id} is configured, not in the ledger";
            }
            else if (has != wanted)
            {
                yield return $"account {id}: configured {wanted}, the ledger has {has}";
            }
        }
        foreach (uint id in Accounts.Keys.Where(a => !config.Accounts.ContainsKey(a)))
        {
            yield return $"account {id} is in the ledger, not configured";
        }
        var configured = config.Clients.ToDictionary(c => c.ClientId);
        foreach (ClientEntitlement wanted in configured.Values)
        {
            if (!Clients.TryGetValue(wanted.ClientId, out ClientGrants? has))
            {
                yield return $"client {wanted.ClientId} is configured, not in the ledger: it cannot log on";
            }
            else if (!has.Enabled)
            {
                yield return $"client {wanted.ClientId} is disabled in the ledger";
            }
            else if (!AccountRanges.Of(wanted.Accounts).SequenceEqual(has.Accounts))
            {
                yield return $"client {wanted.ClientId}: configured accounts {string.Join(",", AccountRanges.Of(wanted.Accounts))}, the ledger has {string.Join(",", has.Accounts)}";
            }
        }
        foreach (var (id, has) in Clients.Where(c => !configured.ContainsKey(c.Key)))
        {
            yield return has.Enabled
                ? $"client {id} is in the ledger and has no credential in this node's configuration: it cannot log on here"
                : $"client {id} is in the ledger (disabled), not configured";
        }
    }

    private static string Describe(Instrument i) => $"{i.Symbol} tick {i.TickSize} reference {i.ReferencePrice} band {i.PriceBandBps} bps";

    public override string ToString() => $"{Instruments.All.Count} instruments, {Accounts.Count} accounts, {Clients.Count} clients";
}

/// <summary>Account ids as ranges of consecutive ids: how grants are journaled.</summary>
public static class AccountRanges
{
    /// <summary>The ranges covering exactly <paramref name="accounts"/>, ascending.</summary>
    public static IEnumerable<AccountRange> Of(IEnumerable<uint> accounts)
    {
        AccountRange? open = null;
        foreach (uint account in accounts.Distinct().Order())
        {
            if (open is { } range && range.Last != uint.MaxValue && account == range.Last + 1)
            {
                open = range with { Last = account };
                continue;
            }
            if (open is { } done)
            {
                yield return done;
            }
            open = new AccountRange(account, account);
        }
        if (open is { } last)
        {
            yield return last;
        }
    }

    /// <summary><paramref name="ranges"/> (ascending, apart) with <paramref name="added"/> merged in: ascending, apart, adjacent ones joined.</summary>
    public static ImmutableArray<AccountRange> Merge(ImmutableArray<AccountRange> ranges, AccountRange added)
    {
        var merged = ImmutableArray.CreateBuilder<AccountRange>(ranges.Length + 1);
        foreach (AccountRange range in ranges.Append(added).OrderBy(r => r.First))
        {
            if (merged.Count > 0 && (ulong)range.First <= (ulong)merged[^1].Last + 1)
            {
                merged[^1] = merged[^1] with { Last = Math.Max(merged[^1].Last, range.Last) };
            }
            else
            {
                merged.Add(range);
            }
        }
        return merged.ToImmutable();
    }
}

/// <summary>
/// The reference data the checks before the ledger use (the validate stage, the gateway's logons):
/// the book's, as it publishes it; but while a new ledger's initial set is on its way through the
/// pipeline (sealed, and waiting for the journal and the backup before the book applies it), that set
/// as it will be once applied, so that no client is refused for reference data that is already in
/// the ledger and not yet in the book.
/// </summary>
public sealed class ReferenceSource(Exchange exchange)
{
    private Tuple<ReferenceView, Task>? _journaling;

    /// <summary>The initial set, sealed as admin transactions; <paramref name="applied"/> completes when the book has applied the last of them.</summary>
    public void Journaling(ReferenceData initial, Task applied) =>
        Volatile.Write(ref _journaling, Tuple.Create(new Exchange(initial).Reference, applied));

    public ReferenceView Current =>
        Volatile.Read(ref _journaling) is { } journaling && !journaling.Item2.IsCompleted ? journaling.Item1 : exchange.Reference;
}
