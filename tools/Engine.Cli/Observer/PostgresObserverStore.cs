using Engine.Protocol;
using Npgsql;
using NpgsqlTypes;

namespace Engine.Cli.Observer;

/// <summary>
/// The observer's tables in PostgreSQL (docs/sql.md), for shared use: the same tables and columns as
/// SQLite's. Blocks are written <see cref="BlocksPerCommit"/> to a database transaction: the
/// append-only tables (<c>blocks</c>, <c>transactions</c>, <c>outcomes</c>, <c>trades</c>) by binary
/// COPY when the transaction commits, <c>orders</c> upserted as they change (an order's later report
/// reads it back), and the position after the last block in the same transaction.
/// </summary>
internal sealed class PostgresObserverStore : IObserverStore
{
    public const int BlocksPerCommit = 256;

    public const string Schema = """
        CREATE TABLE IF NOT EXISTS observer (
          id INTEGER PRIMARY KEY CHECK (id = 1),
          cluster_id TEXT NOT NULL,
          last_block BIGINT NOT NULL,
          last_block_hash TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS blocks (
          block_no BIGINT PRIMARY KEY,
          epoch BIGINT NOT NULL,
          first_lsn BIGINT NOT NULL,
          transactions BIGINT NOT NULL,
          sealed_at_ns BIGINT NOT NULL,
          hash TEXT NOT NULL,
          prev_hash TEXT NOT NULL,
          roots_first_block BIGINT,
          roots_blocks BIGINT,
          records_root TEXT);
        CREATE TABLE IF NOT EXISTS transactions (
          lsn BIGINT PRIMARY KEY,
          block_no BIGINT NOT NULL,
          kind TEXT NOT NULL,
          client_id BIGINT NOT NULL,
          account BIGINT NOT NULL,
          client_seq BIGINT NOT NULL,
          instrument BIGINT NOT NULL,
          side TEXT,
          order_type TEXT,
          time_in_force TEXT,
          price BIGINT NOT NULL,
          quantity BIGINT NOT NULL,
          client_order_id BIGINT NOT NULL,
          orig_client_order_id BIGINT NOT NULL);
        CREATE INDEX IF NOT EXISTS transactions_by_client ON transactions (client_id, client_seq);
        CREATE TABLE IF NOT EXISTS outcomes (
          lsn BIGINT PRIMARY KEY,
          accepted INTEGER NOT NULL,
          reason TEXT,
          original_lsn BIGINT);
        CREATE TABLE IF NOT EXISTS trades (
          trade_id BIGINT PRIMARY KEY,
          lsn BIGINT NOT NULL,
          block_no BIGINT NOT NULL,
          instrument BIGINT NOT NULL,
          price BIGINT NOT NULL,
          quantity BIGINT NOT NULL,
          aggressor_side TEXT NOT NULL,
          buy_client BIGINT NOT NULL,
          buy_account BIGINT NOT NULL,
          buy_order_id BIGINT NOT NULL,
          sell_client BIGINT NOT NULL,
          sell_account BIGINT NOT NULL,
          sell_order_id BIGINT NOT NULL);
        CREATE INDEX IF NOT EXISTS trades_by_buyer ON trades (buy_client);
        CREATE INDEX IF NOT EXISTS trades_by_seller ON trades (sell_client);
        CREATE INDEX IF NOT EXISTS trades_by_instrument ON trades (instrument, block_no);
        CREATE TABLE IF NOT EXISTS orders (
          client_id BIGINT NOT NULL,
          client_order_id BIGINT NOT NULL,
          account BIGINT NOT NULL,
          instrument BIGINT NOT NULL,
          side TEXT NOT NULL,
          price BIGINT NOT NULL,
          quantity BIGINT NOT NULL,
          open_quantity BIGINT NOT NULL,
          status TEXT NOT NULL,
          lsn BIGINT NOT NULL,
          PRIMARY KEY (client_id, client_order_id));
        CREATE INDEX IF NOT EXISTS open_orders ON orders (instrument, side, price) WHERE open_quantity > 0;
        """;

    private readonly NpgsqlConnection _connection;
    private readonly List<object?[]> _blocks = [];
    private readonly List<object?[]> _transactions = [];
    private readonly List<object?[]> _outcomes = [];
    private readonly List<object?[]> _trades = [];
    private readonly Dictionary<(uint Client, ulong Order), OrderRow> _orders = [];
    private NpgsqlTransaction? _transaction;
    private object?[]? _position;
    private int _pending;

    public PostgresObserverStore(string connectionString)
    {
        _connection = new NpgsqlConnection(connectionString);
        _connection.Open();
        using var schema = new NpgsqlCommand(Schema, _connection);
        schema.ExecuteNonQuery();
    }

    public ObserverPosition? Position()
    {
        using var read = new NpgsqlCommand("SELECT cluster_id, last_block, last_block_hash FROM observer WHERE id = 1", _connection, _transaction);
        using NpgsqlDataReader row = read.ExecuteReader();
        return row.Read() ? new ObserverPosition((ulong)row.GetInt64(1), Hash32.Parse(row.GetString(2)), ClusterId.Parse(row.GetString(0))) : null;
    }

    public IEnumerable<OrderRow> OpenOrders()
    {
        using var read = new NpgsqlCommand(ObserverRows.OpenOrdersQuery, _connection, _transaction);
        using NpgsqlDataReader rows = read.ExecuteReader();
        return ObserverRows.OrdersFrom(rows);
    }

    public void Write(ObservedBlock block)
    {
        _transaction ??= _connection.BeginTransaction();
        _blocks.Add(ObserverRows.Block(block));
        _transactions.AddRange(ObserverRows.Transactions(block));
        _outcomes.AddRange(ObserverRows.Outcomes(block));
        _trades.AddRange(ObserverRows.Trades(block));
        foreach (OrderRow order in block.Orders.Values)
        {
            _orders[(order.ClientId, order.ClientOrderId)] = order; // the last state of the batch is the one written
        }
        _position = ObserverRows.Position(block);
        if (++_pending >= BlocksPerCommit)
        {
            Commit();
        }
    }

    public void Commit()
    {
        if (_transaction is null)
        {
            return;
        }
        Copy("blocks", _blocks);
        Copy("transactions", _transactions);
        Copy("outcomes", _outcomes);
        Copy("trades", _trades);
        if (_orders.Count > 0)
        {
            // The batch's orders through a temporary table, then one upsert: one round trip, not one an order.
            using (var stage = new NpgsqlCommand("CREATE TEMP TABLE IF NOT EXISTS orders_batch (LIKE orders) ON COMMIT DELETE ROWS", _connection, _transaction))
            {
                stage.ExecuteNonQuery();
            }
            var rows = new List<object?[]>(_orders.Count);
            foreach (OrderRow order in _orders.Values)
            {
                rows.Add(ObserverRows.Order(order));
            }
            Copy("orders_batch", rows);
            using var upsert = new NpgsqlCommand(
                "INSERT INTO orders SELECT * FROM orders_batch ON CONFLICT (client_id, client_order_id) DO UPDATE SET " +
                "account = EXCLUDED.account, instrument = EXCLUDED.instrument, side = EXCLUDED.side, price = EXCLUDED.price, quantity = EXCLUDED.quantity, " +
                "open_quantity = EXCLUDED.open_quantity, status = EXCLUDED.status, lsn = EXCLUDED.lsn", _connection, _transaction);
            upsert.ExecuteNonQuery();
            _orders.Clear();
        }
        if (_position is { } position)
        {
            using var save = new NpgsqlCommand(
                "INSERT INTO observer VALUES (1, $1, $2, $3) ON CONFLICT (id) DO UPDATE SET cluster_id = EXCLUDED.cluster_id, last_block = EXCLUDED.last_block, last_block_hash = EXCLUDED.last_block_hash",
                _connection, _transaction);
            foreach (object? value in position)
            {
                save.Parameters.Add(new NpgsqlParameter { Value = value! });
            }
            save.ExecuteNonQuery();
        }
        _transaction.Commit();
        _transaction.Dispose();
        _transaction = null;
        _position = null;
        _pending = 0;
    }

    /// <summary>Binary COPY of the buffered rows (in the open transaction); the buffer is emptied.</summary>
    private void Copy(string table, List<object?[]> rows)
    {
        if (rows.Count == 0)
        {
            return;
        }
        using (NpgsqlBinaryImporter copy = _connection.BeginBinaryImport($"COPY {table} FROM STDIN (FORMAT BINARY)"))
        {
            foreach (object?[] row in rows)
            {
                copy.StartRow();
                foreach (object? value in row)
                {
                    switch (value)
                    {
                        case null:
                            copy.WriteNull();
                            break;
                        case long number:
                            copy.Write(number, NpgsqlDbType.Bigint);
                            break;
                        case int small:
                            copy.Write(small, NpgsqlDbType.Integer);
                            break;
                        case string text:
                            copy.Write(text, NpgsqlDbType.Text);
                            break;
                        default:
                            throw new InvalidOperationException($"a {value.GetType().Name} in {table}");
                    }
                }
            }
            copy.Complete();
        }
        rows.Clear();
    }

    public ulong? FirstBlock()
    {
        using var first = new NpgsqlCommand(ObserverRows.FirstBlockQuery, _connection, _transaction);
        return first.ExecuteScalar() is long block ? (ulong)block : null;
    }

    public long Count(string table)
    {
        using var count = new NpgsqlCommand(ObserverRows.CountQuery(table), _connection, _transaction);
        return (long)count.ExecuteScalar()!;
    }

    /// <summary>Closes the connection; what was written since the last <see cref="Commit"/> is rolled back (a failed write's half must not be committed).</summary>
    public void Dispose()
    {
        _transaction?.Dispose();
        _connection.Dispose();
    }
}
