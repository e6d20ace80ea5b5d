using System.Globalization;
using Engine.Core.Book;
using Engine.Protocol;

namespace Engine.Cli;

/// <summary>
/// The operator's changes to the ledger's reference data and market, as the admin endpoint takes
/// them (<c>POST /admin/ledger/VERB?name=value&amp;…</c>, signed) and <c>engine admin</c> sends them:
/// each verb is one or more admin transactions (<see cref="AdminTransaction"/>), checked here so a
/// mistake is answered with its reason before anything is sealed.
/// </summary>
internal static class LedgerVerbs
{
    /// <summary>Each verb, its parameters (required ones without a default), and what it does: for the CLI's help and the endpoint's errors.</summary>
    public static IReadOnlyList<(string Verb, string[] Parameters, string Does)> All { get; } =
    [
        ("instrument-define", ["id", "symbol", "tick", "reference_price=0", "band_bps=0"], "Add an instrument, or change one's symbol, tick, reference price or price band."),
        ("instrument-halt", ["id"], "Trading halt: new orders and replaces on the instrument are refused (InstrumentHalted); cancels pass."),
        ("instrument-resume", ["id"], "End a trading halt."),
        ("account-limits", ["id", "max_quantity", "max_notional", "max_open_orders"], "Add an account, or change its risk limits."),
        ("client-add", ["id", "accounts="], "Enable a client (new or disabled) and let it trade for the accounts given (e.g. 1,2,5-9). It logs on with a credential in each node's configuration."),
        ("client-disable", ["id"], "Disable a client: its logons and new orders are refused (ClientDisabled); its cancels pass."),
        ("cancel-all", ["client=0", "instrument=0"], "Cancel every resting order of a client, or on an instrument (exactly one of the two)."),
    ];

    /// <summary>The admin transactions <paramref name="verb"/> with the parameters <paramref name="given"/> makes, or why it makes none.</summary>
    public static (Transaction[]? Transactions, string? Error) Parse(string verb, IReadOnlyDictionary<string, string> given)
    {
        string? parameters(string name) => given.GetValueOrDefault(name);
        try
        {
            if (All.FirstOrDefault(v => v.Verb == verb) is { Parameters: { } known }
                && given.Keys.FirstOrDefault(k => !known.Any(p => p.Split('=')[0] == k)) is { } unknown)
            {
                throw new FormatException($"{verb} takes no \"{unknown}\" (it takes {string.Join(", ", known.Select(p => p.Split('=')[0]))})");
            }
            Transaction[] transactions = verb switch
            {
                "instrument-define" => [AdminTransaction.DefineInstrument(Id(parameters, "id"), Text(parameters, "symbol"), Long(parameters, "tick"),
                    Long(parameters, "reference_price", 0), (int)Number(parameters, "band_bps", 0, AdminTransaction.MaxPriceBandBps, 0))],
                "instrument-halt" => [AdminTransaction.HaltInstrument(Id(parameters, "id"))],
                "instrument-resume" => [AdminTransaction.ResumeInstrument(Id(parameters, "id"))],
                "account-limits" => [AdminTransaction.SetAccountLimits(Id(parameters, "id"), Long(parameters, "max_quantity"), Long(parameters, "max_notional"),
                    (int)Number(parameters, "max_open_orders", 0, int.MaxValue, null))],
                "client-add" => [AdminTransaction.EnableClient(Id(parameters, "id")),
                    .. Accounts(parameters("accounts")).Select(r => AdminTransaction.GrantAccounts(Id(parameters, "id"), r.First, r.Last))],
                "client-disable" => [AdminTransaction.DisableClient(Id(parameters, "id"))],
                "cancel-all" => CancelAll(Id(parameters, "client", 0), Id(parameters, "instrument", 0)),
                _ => throw new FormatException($"no verb \"{verb}\"; the verbs: {string.Join(", ", All.Select(v => v.Verb))}"),
            };
            foreach (Transaction tx in transactions)
            {
                if (AdminTransaction.Check(in tx) != RejectReason.None)
                {
                    throw new FormatException($"{AdminTransaction.Describe(in tx)}: a value is out of range (ids 1-65535 for instruments and clients; a tick of 1 or more; "
                        + $"a reference price of 0 or a multiple of the tick; a band of 0-{AdminTransaction.MaxPriceBandBps} bps; limits of 0 or more, quantity at most {ProtocolLimits.MaxQuantity})");
                }
            }
            if (transactions.Length > ClientGrants.MaxRanges + 1)
            {
                throw new FormatException($"{transactions.Length - 1} account ranges: at most {ClientGrants.MaxRanges} per client");
            }
            return (transactions, null);
        }
        catch (Exception e) when (e is FormatException or OverflowException or ArgumentException)
        {
            return (null, e.Message);
        }
    }

    private static Transaction[] CancelAll(uint client, uint instrument) => (client, instrument) switch
    {
        ( > 0, 0) => [AdminTransaction.CancelAllOfClient(client)],
        (0, > 0) => [AdminTransaction.CancelAllOnInstrument(instrument)],
        _ => throw new FormatException("cancel-all takes exactly one of client or instrument"),
    };

    private static string Text(Func<string, string?> parameters, string name) =>
        parameters(name) is { Length: > 0 } value ? value : throw new FormatException($"{name} is missing");

    private static long Long(Func<string, string?> parameters, string name, long? fallback = null) => Number(parameters, name, 0, long.MaxValue, fallback);

    private static uint Id(Func<string, string?> parameters, string name, uint? fallback = null) => (uint)Number(parameters, name, 0, uint.MaxValue, fallback);

    /// <summary>A whole number from <paramref name="min"/> to <paramref name="max"/>; <paramref name="fallback"/> when it is not given (null: it must be).</summary>
    private static long Number(Func<string, string?> parameters, string name, long min, long max, long? fallback)
    {
        if (parameters(name) is not { } value)
        {
            return fallback ?? throw new FormatException($"{name} is missing");
        }
        if (!long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out long number) || number < min || number > max)
        {
            throw new FormatException($"{name}: \"{value}\" is not a whole number from {min} to {max}");
        }
        return number;
    }

    /// <summary>"1,2,5-9" as ranges; empty or missing: none.</summary>
    public static IEnumerable<AccountRange> Accounts(string? list)
    {
        var ids = new List<AccountRange>();
        foreach (string part in (list ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            string[] ends = part.Split('-');
            if (ends.Length > 2 || !uint.TryParse(ends[0], NumberStyles.None, CultureInfo.InvariantCulture, out uint first)
                || !uint.TryParse(ends[^1], NumberStyles.None, CultureInfo.InvariantCulture, out uint last))
            {
                throw new FormatException($"accounts: \"{part}\" is no account id or range of them (e.g. 1,2,5-9)");
            }
            if (last < first)
            {
                throw new FormatException($"accounts: the range {part} ends before it starts");
            }
            ids.Add(new AccountRange(first, last));
        }
        return ids.Aggregate(System.Collections.Immutable.ImmutableArray<AccountRange>.Empty, AccountRanges.Merge);
    }
}
