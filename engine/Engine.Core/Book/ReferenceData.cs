using Engine.Core.Ledger;

namespace Engine.Core.Book;

/// <summary>Per-account risk limits, checked by the order book when an order or replace arrives.</summary>
/// <param name="MaxOrderQuantity">Largest quantity of one order.</param>
/// <param name="MaxOrderNotional">Largest price × quantity of one limit order, in ticks × units.</param>
/// <param name="MaxOpenOrders">Most orders resting on the books for the account at once.</param>
public sealed record AccountLimits(long MaxOrderQuantity, long MaxOrderNotional, int MaxOpenOrders);

/// <summary>A client that may log on: its secret token and the accounts it may trade for.</summary>
public sealed record ClientEntitlement(uint ClientId, string Token, IReadOnlyList<uint> Accounts);

/// <summary>
/// What the engine is configured with: instruments, accounts with their limits, clients with their
/// tokens and accounts. Fixed while the engine runs; the same on both nodes of a pair.
/// </summary>
public sealed class ReferenceData
{
    private readonly Dictionary<uint, ClientEntitlement> _clients;
    private readonly Dictionary<uint, HashSet<uint>> _accountsByClient;

    public ReferenceData(InstrumentTable instruments, IReadOnlyDictionary<uint, AccountLimits> accounts, IEnumerable<ClientEntitlement> clients, string source)
    {
        Instruments = instruments;
        Accounts = accounts;
        Source = source;
        _clients = [];
        _accountsByClient = [];
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
            if (string.IsNullOrEmpty(client.Token) || System.Text.Encoding.UTF8.GetByteCount(client.Token) > Protocol.ReplyCodec.MaxTokenBytes)
            {
                throw new ArgumentException($"client {client.ClientId}: the token must be 1 to {Protocol.ReplyCodec.MaxTokenBytes} bytes");
            }
            _accountsByClient[client.ClientId] = [.. client.Accounts];
        }
        AccountIds = [.. accounts.Keys.Order()];
    }

    public InstrumentTable Instruments { get; }

    public IReadOnlyDictionary<uint, AccountLimits> Accounts { get; }

    /// <summary>Account ids in ascending order: the order the state checksum walks them in.</summary>
    public IReadOnlyList<uint> AccountIds { get; }

    public IEnumerable<ClientEntitlement> Clients => _clients.Values.OrderBy(c => c.ClientId);

    /// <summary>Where this came from ("built-in development" or a file), for the start-up log.</summary>
    public string Source { get; }

    /// <summary>True when the client exists and the token is its token (compared in constant time).</summary>
    public bool Authenticate(uint clientId, string token) =>
        _clients.TryGetValue(clientId, out ClientEntitlement? client) &&
        System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(
            System.Text.Encoding.UTF8.GetBytes(client.Token), System.Text.Encoding.UTF8.GetBytes(token));

    public bool MayTrade(uint clientId, uint account) =>
        _accountsByClient.TryGetValue(clientId, out HashSet<uint>? accounts) && accounts.Contains(account);

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
        return new ReferenceData(InstrumentTable.Development(), accounts, clients, "built-in development configuration");
    }

    public override string ToString() =>
        $"{Source}: {Instruments.All.Count} instruments, {Accounts.Count} accounts, {_clients.Count} clients";
}
