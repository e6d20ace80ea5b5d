using Engine.Core.Book;
using Engine.Core.Ledger;
using Microsoft.Extensions.Configuration;

namespace Engine.Cli;

/// <summary>
/// Instruments, accounts and clients from configuration; the built-in development set when the
/// configuration has none. Shape in JSON:
/// <code>
/// "Instruments": [ { "Id": 1, "Symbol": "ACME", "TickSize": 1 } ],
/// "Accounts":    [ { "Id": 1, "MaxOrderQuantity": 1000000, "MaxOrderNotional": 1000000000000, "MaxOpenOrders": 100000 } ],
/// "Clients":     [ { "Id": 1, "Token": "secret", "Accounts": [ 1 ] } ]
/// </code>
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
            new InstrumentTable(instruments.Select(i => new Instrument(i.Id, i.Symbol ?? $"#{i.Id}", i.TickSize))),
            accounts.ToDictionary(a => a.Id, a => new AccountLimits(a.MaxOrderQuantity, a.MaxOrderNotional, a.MaxOpenOrders)),
            clients.Select(c => new ClientEntitlement(c.Id, c.Token ?? "", c.Accounts ?? [])),
            file is null ? "configuration" : $"configuration file {file}");
    }

    private sealed class InstrumentDto
    {
        public uint Id { get; set; }
        public string? Symbol { get; set; }
        public long TickSize { get; set; } = 1;
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
        public List<uint>? Accounts { get; set; }
    }
}
