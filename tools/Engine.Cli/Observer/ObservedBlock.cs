using Engine.Core.Book;
using Engine.Protocol;

namespace Engine.Cli.Observer;

/// <summary>A journaled transaction as the <c>transactions</c> table has it.</summary>
internal readonly record struct TransactionRow(ulong Lsn, Transaction Tx);

/// <summary>
/// The outcome of a transaction (<c>outcomes</c>): accepted, or the reason it was refused; for a
/// repeat of a transaction already applied (its client and sequence), the LSN of that original,
/// whose outcome it has and which it changes nothing after.
/// </summary>
internal readonly record struct OutcomeRow(ulong Lsn, RejectReason Reason, ulong? OriginalLsn);

/// <summary>One trade, both sides (<c>trades</c>): the buyer's and the seller's execution reports of one trade id.</summary>
internal record struct TradeRow(ulong TradeId, ulong Lsn, uint Instrument, long Price, long Quantity, Side Aggressor)
{
    public uint BuyClient;
    public uint BuyAccount;
    public ulong BuyOrderId;
    public uint SellClient;
    public uint SellAccount;
    public ulong SellOrderId;
}

/// <summary>What happened to an order in a block (<c>orders</c>, upserted by client and client order id).</summary>
internal record struct OrderRow(uint ClientId, ulong ClientOrderId, uint Account, uint Instrument, Side Side, long Price, long Quantity, long Open, string Status, ulong Lsn);

/// <summary>
/// The rows one block gives, gathered while the block is replayed through the <see cref="Exchange"/>
/// (<see cref="RowSink"/>), then written in one database transaction. Reused block after block.
/// </summary>
internal sealed class ObservedBlock(Func<uint, ulong, OrderRow?> known)
{
    public BlockHeader Header;
    public Hash32 Hash;
    public RecordsRoot? Root;
    public readonly List<TransactionRow> Transactions = [];
    public readonly List<OutcomeRow> Outcomes = [];
    public readonly List<TradeRow> Trades = [];
    public readonly Dictionary<(uint Client, ulong Order), OrderRow> Orders = [];

    /// <summary>The LSN of the record being applied (the Exchange names a repeat's original instead).</summary>
    public ulong CurrentLsn;
    private readonly Dictionary<ulong, int> _tradeIndex = [];

    public void Begin(in BlockHeader header, in Hash32 hash, RecordsRoot? root)
    {
        Header = header;
        Hash = hash;
        Root = root;
        Transactions.Clear();
        Outcomes.Clear();
        Trades.Clear();
        Orders.Clear();
        _tradeIndex.Clear();
    }

    public void Accepted(in Transaction tx, ulong lsn)
    {
        Outcomes.Add(new OutcomeRow(CurrentLsn, RejectReason.None, lsn != CurrentLsn ? lsn : null));
        if (lsn != CurrentLsn)
        {
            return; // a repeat: it changed nothing
        }
        if (tx.Kind == MessageType.NewOrder)
        {
            Orders[(tx.ClientId, tx.ClientOrderId)] = new OrderRow(tx.ClientId, tx.ClientOrderId, tx.Account, tx.Instrument, tx.Side, tx.Price, tx.Quantity, tx.Quantity, OrderStatus.Open, lsn);
        }
        else if (tx.Kind == MessageType.Replace && Find(tx.ClientId, tx.OrigClientOrderId) is { } replaced)
        {
            // The order goes on under the new id (the Replaced report that follows); the old id is done.
            Orders[(tx.ClientId, tx.OrigClientOrderId)] = replaced with { Open = 0, Status = OrderStatus.Replaced };
        }
    }

    private OrderRow? Find(uint client, ulong order) => Orders.TryGetValue((client, order), out OrderRow row) ? row : known(client, order);

    public void Rejected(RejectReason reason, ulong lsn) => Outcomes.Add(new OutcomeRow(CurrentLsn, reason, lsn != CurrentLsn ? lsn : null));

    public void Execution(in ExecutionReport report)
    {
        if (report.TradeId != 0)
        {
            if (!_tradeIndex.TryGetValue(report.TradeId, out int at))
            {
                at = Trades.Count;
                _tradeIndex[report.TradeId] = at;
                // The first report of a trade is the aggressor's (the incoming order's side).
                Trades.Add(new TradeRow(report.TradeId, report.Lsn, report.Instrument, report.LastPrice, report.LastQuantity, report.Side));
            }
            TradeRow trade = Trades[at];
            if (report.Side == Side.Buy)
            {
                (trade.BuyClient, trade.BuyAccount, trade.BuyOrderId) = (report.ClientId, report.Account, report.ClientOrderId);
            }
            else
            {
                (trade.SellClient, trade.SellAccount, trade.SellOrderId) = (report.ClientId, report.Account, report.ClientOrderId);
            }
            Trades[at] = trade;
        }
        OrderRow current = Find(report.ClientId, report.ClientOrderId)
            ?? new OrderRow(report.ClientId, report.ClientOrderId, report.Account, report.Instrument, report.Side, report.LastPrice, report.CumQuantity + report.LeavesQuantity, 0, OrderStatus.Open, report.Lsn);
        Orders[(report.ClientId, report.ClientOrderId)] = report.ExecType switch
        {
            ExecType.Fill => current with { Open = 0, Status = OrderStatus.Filled },
            ExecType.PartialFill => current with { Open = report.LeavesQuantity, Status = OrderStatus.Open },
            ExecType.Cancelled => current with { Open = 0, Status = OrderStatus.Cancelled },
            // Under its new id: the price and open quantity the replace gave it.
            ExecType.Replaced => current with { Open = report.LeavesQuantity, Price = report.LastPrice, Quantity = report.CumQuantity + report.LeavesQuantity, Status = OrderStatus.Open, Lsn = report.Lsn },
            _ => current,
        };
    }
}

/// <summary>The <c>status</c> column of <c>orders</c>.</summary>
internal static class OrderStatus
{
    public const string Open = "open";
    public const string Filled = "filled";
    public const string Cancelled = "cancelled";
    public const string Replaced = "replaced";
}

/// <summary>Hears the <see cref="Exchange"/>'s outcomes and reports for one block into an <see cref="ObservedBlock"/>.</summary>
internal readonly struct RowSink(ObservedBlock block) : IExecutionSink
{
    public void Accepted(in Transaction tx, ulong lsn, ulong blockNo, in Hash32 blockHash) => block.Accepted(in tx, lsn);

    public void Rejected(in Transaction tx, RejectReason reason, ulong lsn) => block.Rejected(reason, lsn);

    public void Execution(in ExecutionReport report) => block.Execution(in report);
}
