using Engine.Core.Book;
using Engine.Core.Ledger;
using Engine.Core.Server;
using Microsoft.Extensions.Configuration;

namespace Engine.Cli;

/// <summary>
/// Instruments, accounts and clients from configuration; the built-in development set when the
/// configuration has none. Shape in JSON:
/// <code>
/// "Instruments": [ { "Id": 1, "Symbol": "ACME", "TickSize": 1 } ],
/// "Accounts":    [ { "Id": 1, "MaxOrderQuantity": 1000000, "MaxOrderNotional": 1000000000000, "MaxOpenOrders": 100000 } ],
/// "Clients":     [ { "Id": 1, "TokenHash": "pbkdf2-sha256$5000$…$…", "Accounts": [ 1 ] } ]
/// </code>
/// A client gives its token as <c>TokenHash</c> (from <c>engine token hash</c>) or, discouraged,
/// in clear as <c>Token</c> (start-up warns); never both.
/// </summary>
internal static class ReferenceConfig
{
    public static ReferenceData Load(IConfiguration configuration, string? file)
    {
        var instruments = configuration.GetSection("Instruments").Get<List<InstrumentDto>>();
        var accounts = configuration.GetSection("Accounts").Get<List<AccountDto>>();
        var clients = configuration.GetSection("Clients").Get<List<ClientDto>>();
        if (instruments is null && accounts is null && clients is null)
        {
            return ReferenceData.Development();
        }
        if (instruments is not { Count: > 0 } || accounts is not { Count: > 0 } || clients is not { Count: > 0 })
        {
            throw new InvalidDataException("the configuration must list Instruments, Accounts and Clients together (or none of them, for the built-in development set)");
        }
        return new ReferenceData(
            new InstrumentTable(instruments.Select(i => new Instrument(i.Id, i.Symbol ?? $"#{i.Id}", i.TickSize) { ReferencePrice = i.ReferencePrice, PriceBandBps = i.PriceBandBps })),
            accounts.ToDictionary(a => a.Id, a => new AccountLimits(a.MaxOrderQuantity, a.MaxOrderNotional, a.MaxOpenOrders)),
            clients.Select(Entitlement),
            file is null ? "configuration" : $"configuration file {file}");
    }

    private static ClientEntitlement Entitlement(ClientDto client)
    {
        if ((client.Token is null) == (client.TokenHash is null))
        {
            throw new InvalidDataException($"client {client.Id}: give exactly one of TokenHash (from `engine token hash`) or Token");
        }
        try
        {
            return client.TokenHash is not null
                ? new ClientEntitlement(client.Id, TokenHash.Parse(client.TokenHash), client.Accounts ?? [])
                : new ClientEntitlement(client.Id, client.Token!, client.Accounts ?? []);
        }
        catch (Exception e) when (e is FormatException or ArgumentException)
        {
            throw new InvalidDataException($"client {client.Id}: {e.Message}");
        }
    }

    private sealed class InstrumentDto
    {
        public uint Id { get; set; }
        public string? Symbol { get; set; }
        public long TickSize { get; set; } = 1;

        public long ReferencePrice { get; set; }

        public int PriceBandBps { get; set; }
    }

    private sealed class AccountDto
    {
        public uint Id { get; set; }
        public long MaxOrderQuantity { get; set; } = 1_000_000;
        public long MaxOrderNotional { get; set; } = 1_000_000_000_000;
        public int MaxOpenOrders { get; set; } = 100_000;
    }

    private sealed class ClientDto
    {
        public uint Id { get; set; }
        public string? Token { get; set; }
        public string? TokenHash { get; set; }
        public List<uint>? Accounts { get; set; }
    }
}
