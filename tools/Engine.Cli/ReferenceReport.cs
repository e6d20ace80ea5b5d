using System.Text.Json;
using Engine.Core.Book;

namespace Engine.Cli;

/// <summary>
/// <c>GET /reference</c>: the ledger's reference data as this node has applied it (never a credential:
/// the ledger has none), and where this node's configuration differs from it. Read by
/// <c>engine admin reference</c> and the tests (snake_case on the wire).
/// </summary>
/// <param name="Instruments">Every instrument, by id.</param>
/// <param name="Accounts">Every account and its limits, by id.</param>
/// <param name="Clients">Every client the ledger knows, by id.</param>
/// <param name="DiffersFromConfiguration">One line per difference with this node's configuration (the node follows the ledger).</param>
internal sealed record ReferenceReport(IReadOnlyList<InstrumentLine> Instruments, IReadOnlyList<AccountLine> Accounts, IReadOnlyList<ClientLine> Clients,
    IReadOnlyList<string> DiffersFromConfiguration)
{
    public static ReferenceReport Of(ReferenceView ledger, ReferenceData? configured) => new(
        [.. ledger.Instruments.All.OrderBy(i => i.Id).Select(i => new InstrumentLine(i.Id, i.Symbol, i.TickSize, i.ReferencePrice, i.PriceBandBps, i.Halted))],
        [.. ledger.Accounts.Select(a => new AccountLine(a.Key, a.Value.MaxOrderQuantity, a.Value.MaxOrderNotional, a.Value.MaxOpenOrders))],
        [.. ledger.Clients.Select(c => new ClientLine(c.Key, c.Value.Enabled, string.Join(",", c.Value.Accounts)))],
        configured is null ? [] : [.. ledger.DifferencesFrom(configured)]);

    public byte[] ToJsonUtf8() => JsonSerializer.SerializeToUtf8Bytes(this, AdminEndpoint.Json);

    /// <exception cref="JsonException">Not a report.</exception>
    public static ReferenceReport Parse(ReadOnlySpan<byte> json) => JsonSerializer.Deserialize<ReferenceReport>(json, AdminEndpoint.Json) ?? throw new JsonException("null");
}

internal sealed record InstrumentLine(uint Id, string Symbol, long Tick, long ReferencePrice, int BandBps, bool Halted);

internal sealed record AccountLine(uint Id, long MaxQuantity, long MaxNotional, int MaxOpenOrders);

/// <summary>A client as the ledger has it: enabled or not, and the accounts it may trade for, as ranges ("1-10,12").</summary>
internal sealed record ClientLine(uint Id, bool Enabled, string Accounts);
