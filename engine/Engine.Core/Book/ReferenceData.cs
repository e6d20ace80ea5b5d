using Engine.Core.Ledger;
using Engine.Core.Server;
using Engine.Protocol;

namespace Engine.Core.Book;

/// <summary>Per-account risk limits, checked by the order book when an order or replace arrives.</summary>
/// <param name="MaxOrderQuantity">Largest quantity of one order.</param>
/// <param name="MaxOrderNotional">Largest price × quantity of one limit order, in ticks × units.</param>
/// <param name="MaxOpenOrders">Most orders resting on the books for the account at once.</param>
public sealed record AccountLimits(long MaxOrderQuantity, long MaxOrderNotional, int MaxOpenOrders);

/// <summary>A client that may log on: the salted hash of its secret token and the accounts it may trade for.</summary>
public sealed record ClientEntitlement(uint ClientId, TokenHash Credential, IReadOnlyList<uint> Accounts)
{
    /// <summary>A client whose token is given in clear: it is hashed at once (see <see cref="TokenHash.FromPlaintext"/>), nothing keeps the clear text.</summary>
    /// <exception cref="ArgumentException">The token is empty or longer than the logon frame carries.</exception>
    public ClientEntitlement(uint clientId, string token, IReadOnlyList<uint> accounts)
        : this(clientId, TokenHash.FromPlaintext(token), accounts)
    {
    }
}

/// <summary>
/// What a node is configured with: instruments, accounts with their limits, clients with their
/// tokens and accounts. Only the credentials (token hashes) are used as they are: the rest is the
/// reference data a new ledger starts with (the first primary journals it as admin transactions,
/// <see cref="AdminTransactions"/>); from then on the ledger's tables rule, on every node, whatever
/// its file says (<see cref="ReferenceView.DifferencesFrom"/> tells the operator where they differ).
/// </summary>
public sealed class ReferenceData
{
    private readonly Dictionary<uint, ClientEntitlement> _clients;

    public ReferenceData(InstrumentTable instruments, IReadOnlyDictionary<uint, AccountLimits> accounts, IEnumerable<ClientEntitlement> clients, string source)
        : this(instruments, accounts, clients, source, isDevelopment: false)
    {
    }

    private ReferenceData(InstrumentTable instruments, IReadOnlyDictionary<uint, AccountLimits> accounts, IEnumerable<ClientEntitlement> clients, string source,
        bool isDevelopment)
    {
        Instruments = instruments;
        Accounts = accounts;
        Source = source;
        IsDevelopment = isDevelopment;
        _clients = [];
        foreach (var (id, limits) in accounts)
        {
            if (limits.MaxOrderQuantity is < 0 or > Protocol.ProtocolLimits.MaxQuantity || limits.MaxOrderNotional < 0 || limits.MaxOpenOrders < 0)
            {
                throw new ArgumentException($"account {id}: limits must be a quantity of 0 to {Protocol.ProtocolLimits.MaxQuantity:N0}, a notional and open orders of 0 or more");
            }
        }
        foreach (ClientEntitlement client in clients)
        {
            // Every client that can log on must be one whose clientSeqs the sealer tracks (an array
            // indexed by client id), and the gateway sizes its registry by the largest id.
            if (client.ClientId is 0 or > Protocol.ProtocolLimits.MaxClientId)
            {
                throw new ArgumentException($"client id {client.ClientId} is outside 1..{Protocol.ProtocolLimits.MaxClientId}");
            }
            if (!_clients.TryAdd(client.ClientId, client))
            {
                throw new ArgumentException($"client {client.ClientId} is configured twice");
            }
            foreach (uint account in client.Accounts)
            {
                if (!accounts.ContainsKey(account))
                {
                    throw new ArgumentException($"client {client.ClientId} trades for account {account}, which has no limits configured");
                }
            }
            ArgumentNullException.ThrowIfNull(client.Credential);
        }
    }

    public InstrumentTable Instruments { get; }

    public IReadOnlyDictionary<uint, AccountLimits> Accounts { get; }

    public IEnumerable<ClientEntitlement> Clients => _clients.Values.OrderBy(c => c.ClientId);

    /// <summary>Where this came from ("built-in development" or a file), for the start-up log.</summary>
    public string Source { get; }

    /// <summary>
    /// The built-in development set, whose tokens everybody knows: <c>engine serve</c> refuses it
    /// on anything but a loopback address unless the operator says so.
    /// </summary>
    public bool IsDevelopment { get; }

    /// <summary>Clients whose token the configuration gave in clear (<c>Token</c> instead of <c>TokenHash</c>): start-up warns.</summary>
    public IReadOnlyList<uint> ClientsWithPlaintextTokens => [.. Clients.Where(c => c.Credential.FromPlaintextToken).Select(c => c.ClientId)];

    /// <summary>
    /// True when the client exists and <paramref name="token"/> (UTF-8, without the frame's zero
    /// padding) hashes to its stored hash: the key derivation runs in full and the comparison is
    /// in constant time (<see cref="TokenHash.Verify(ReadOnlySpan{byte})"/>). Costs the hash's
    /// iterations: never call it on a socket completion thread.
    /// </summary>
    public bool Authenticate(uint clientId, ReadOnlySpan<byte> token) =>
        _clients.TryGetValue(clientId, out ClientEntitlement? client) && client.Credential.Verify(token);

    /// <summary>As <see cref="Authenticate(uint, ReadOnlySpan{byte})"/>, for a token as text.</summary>
    public bool Authenticate(uint clientId, string token) =>
        _clients.TryGetValue(clientId, out ClientEntitlement? client) && client.Credential.Verify(token);

    /// <summary>True when this configuration has a credential for the client: it can log on here, if the ledger has it enabled.</summary>
    public bool HasCredential(uint clientId) => _clients.ContainsKey(clientId);

    /// <summary>
    /// This configuration as the admin transactions that make it the ledger's reference data: every
    /// instrument defined, every account's limits, every client enabled and granted its accounts (as
    /// ranges of consecutive ids). In id order, so two nodes with the same file journal the same records.
    /// </summary>
    public IEnumerable<Transaction> AdminTransactions()
    {
        foreach (Ledger.Instrument instrument in Instruments.All.OrderBy(i => i.Id))
        {
            yield return AdminTransaction.DefineInstrument(instrument.Id, instrument.Symbol, instrument.TickSize, instrument.ReferencePrice, instrument.PriceBandBps);
        }
        foreach (var (id, limits) in Accounts.OrderBy(a => a.Key))
        {
            yield return AdminTransaction.SetAccountLimits(id, limits.MaxOrderQuantity, limits.MaxOrderNotional, limits.MaxOpenOrders);
        }
        foreach (ClientEntitlement client in Clients)
        {
            yield return AdminTransaction.EnableClient(client.ClientId);
            foreach (AccountRange range in AccountRanges.Of(client.Accounts))
            {
                yield return AdminTransaction.GrantAccounts(client.ClientId, range.First, range.Last);
            }
        }
    }

    /// <summary>
    /// The built-in development configuration: the three development instruments, accounts 1-10
    /// (quantity ≤ 1,000,000, notional ≤ 10^12, ≤ 100,000 open orders each), and clients 1-64 with
    /// token <c>dev-token-N</c>, each allowed every account. For `engine serve` and `engine load`
    /// to work together with no set-up; never for production.
    /// </summary>
    public static ReferenceData Development()
    {
        var limits = new AccountLimits(1_000_000, 1_000_000_000_000, 100_000);
        var accounts = Enumerable.Range(1, 10).ToDictionary(a => (uint)a, _ => limits);
        var clients = Enumerable.Range(1, 64).Select(c => new ClientEntitlement((uint)c, $"dev-token-{c}", [.. accounts.Keys]));
        return new ReferenceData(InstrumentTable.Development(), accounts, clients, "built-in development configuration", isDevelopment: true);
    }

    public override string ToString() =>
        $"{Source}: {Instruments.All.Count} instruments, {Accounts.Count} accounts, {_clients.Count} clients";
}
