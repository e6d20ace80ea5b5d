using Engine.Protocol;

namespace Engine.Cli.Observer;

/// <summary>
/// A block's rows as column values, in each table's column order (docs/sql.md): one definition for
/// every database, so SQLite and PostgreSQL hold the same values. Values are 64-bit integers, 32-bit
/// integers, text or null; unsigned 64-bit fields above 2^63 − 1 (client-chosen order ids) are stored
/// as their two's-complement signed value, as a signed 64-bit column holds them.
/// </summary>
internal static class ObserverRows
{
    public static object?[] Block(ObservedBlock block)
    {
        BlockHeader h = block.Header;
        return [(long)h.BlockNo, (long)h.Epoch, (long)h.FirstLsn, (long)h.Count, h.TimestampNs, block.Hash.ToString(), h.PrevHash.ToString(),
            block.Root is { } r ? (long)r.FirstBlock : null, block.Root is { } rb ? (long)rb.Blocks : null, block.Root?.Root.ToString()];
    }

    public static IEnumerable<object?[]> Transactions(ObservedBlock block)
    {
        foreach (TransactionRow t in block.Transactions)
        {
            Transaction tx = t.Tx;
            bool order = tx.Kind is MessageType.NewOrder or MessageType.Cancel or MessageType.Replace;
            bool priced = order && tx.Kind != MessageType.Cancel;
            yield return [(long)t.Lsn, (long)block.Header.BlockNo, LogCommands.KindName(tx.Kind), (long)tx.ClientId, (long)tx.Account, (long)tx.ClientSeq, (long)tx.Instrument,
                order ? Name(tx.Side) : null, priced ? Name(tx.Type) : null, priced ? Name(tx.TimeInForce) : null,
                tx.Price, tx.Quantity, (long)tx.ClientOrderId, (long)tx.OrigClientOrderId];
        }
    }

    public static IEnumerable<object?[]> Outcomes(ObservedBlock block)
    {
        foreach (OutcomeRow o in block.Outcomes)
        {
            bool accepted = o.Reason == RejectReason.None;
            yield return [(long)o.Lsn, accepted ? 1 : 0, accepted ? null : Name(o.Reason), o.OriginalLsn is { } original ? (long)original : null];
        }
    }

    public static IEnumerable<object?[]> Trades(ObservedBlock block)
    {
        foreach (TradeRow t in block.Trades)
        {
            yield return [(long)t.TradeId, (long)t.Lsn, (long)block.Header.BlockNo, (long)t.Instrument, t.Price, t.Quantity, Name(t.Aggressor),
                (long)t.BuyClient, (long)t.BuyAccount, (long)t.BuyOrderId, (long)t.SellClient, (long)t.SellAccount, (long)t.SellOrderId];
        }
    }

    public static IEnumerable<object?[]> Orders(ObservedBlock block) => block.Orders.Values.Select(Order);

    public static object?[] Order(OrderRow o) => [(long)o.ClientId, (long)o.ClientOrderId, (long)o.Account, (long)o.Instrument, Name(o.Side), o.Price, o.Quantity, o.Open, o.Status, (long)o.Lsn];

    /// <summary>The query that counts one of the observer's tables (no other name is taken).</summary>
    public const string FirstBlockQuery = "SELECT min(block_no) FROM blocks";

    public static string CountQuery(string table) => table switch
    {
        "blocks" or "transactions" or "outcomes" or "trades" or "orders" => $"SELECT count(*) FROM {table}",
        _ => throw new ArgumentOutOfRangeException(nameof(table), table, "not an observer table"),
    };

    /// <summary>The open orders, in <see cref="OrdersFrom"/>'s column order.</summary>
    public const string OpenOrdersQuery = "SELECT client_id, client_order_id, account, instrument, side, price, quantity, open_quantity, status, lsn FROM orders WHERE open_quantity > 0";

    /// <summary>Reads the orders <see cref="OpenOrdersQuery"/> selects, from either database.</summary>
    public static List<OrderRow> OrdersFrom(System.Data.Common.DbDataReader row)
    {
        var orders = new List<OrderRow>();
        while (row.Read())
        {
            orders.Add(new OrderRow((uint)row.GetInt64(0), (ulong)row.GetInt64(1), (uint)row.GetInt64(2), (uint)row.GetInt64(3), Enum.Parse<Side>(row.GetString(4), ignoreCase: true),
                row.GetInt64(5), row.GetInt64(6), row.GetInt64(7), row.GetString(8), (ulong)row.GetInt64(9)));
        }
        return orders;
    }

    /// <summary>The <c>observer</c> row after the block: cluster id, last block, its hash.</summary>
    public static object?[] Position(ObservedBlock block) => [block.Header.ClusterId.ToString(), (long)block.Header.BlockNo, block.Hash.ToString()];

    private static string Name<T>(T value) where T : struct, Enum => System.Text.Json.JsonNamingPolicy.SnakeCaseLower.ConvertName(value.ToString());
}
