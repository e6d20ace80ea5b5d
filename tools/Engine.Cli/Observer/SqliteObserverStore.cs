using System.Globalization;
using Engine.Protocol;
using Microsoft.Data.Sqlite;

namespace Engine.Cli.Observer;

/// <summary>Where an observer stopped: the last block its database holds, with that block's hash and the chain's cluster.</summary>
internal readonly record struct ObserverPosition(ulong Block, Hash32 Hash, ClusterId Cluster);

/// <summary>
/// The observer's tables in a SQLite file (docs/sql.md): <c>blocks</c>, <c>transactions</c>,
/// <c>outcomes</c>, <c>trades</c>, <c>orders</c>, and <c>observer</c> (where it stopped). Every
/// block's rows and the position after it are written in one database transaction, so a kill at any
/// instant leaves the database at a block boundary: the observer goes on from there, no row missing
/// or doubled (inserts are keyed by LSN, block and trade id: a row written twice is refused, not
/// doubled). Several blocks share a database transaction for speed (<see cref="BlocksPerCommit"/>).
/// </summary>
internal sealed class SqliteObserverStore : IObserverStore
{
    /// <summary>Blocks per database transaction: SQLite's commit (a WAL append and, here, no fsync per commit) costs more than a block's rows.</summary>
    public const int BlocksPerCommit = 256;

    public const string Schema = """
        CREATE TABLE IF NOT EXISTS observer (
          id INTEGER PRIMARY KEY CHECK (id = 1),
          cluster_id TEXT NOT NULL,
          last_block INTEGER NOT NULL,
          last_block_hash TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS blocks (
          block_no INTEGER PRIMARY KEY,
          epoch INTEGER NOT NULL,
          first_lsn INTEGER NOT NULL,
          transactions INTEGER NOT NULL,
          sealed_at_ns INTEGER NOT NULL,
          hash TEXT NOT NULL,
          prev_hash TEXT NOT NULL,
          roots_first_block INTEGER,
          roots_blocks INTEGER,
          records_root TEXT);
        CREATE TABLE IF NOT EXISTS transactions (
          lsn INTEGER PRIMARY KEY,
          block_no INTEGER NOT NULL,
          kind TEXT NOT NULL,
          client_id INTEGER NOT NULL,
          account INTEGER NOT NULL,
          client_seq INTEGER NOT NULL,
          instrument INTEGER NOT NULL,
          side TEXT,
          order_type TEXT,
          time_in_force TEXT,
          price INTEGER NOT NULL,
          quantity INTEGER NOT NULL,
          client_order_id INTEGER NOT NULL,
          orig_client_order_id INTEGER NOT NULL);
        CREATE INDEX IF NOT EXISTS transactions_by_client ON transactions (client_id, client_seq);
        CREATE TABLE IF NOT EXISTS outcomes (
          lsn INTEGER PRIMARY KEY,
          accepted INTEGER NOT NULL,
          reason TEXT,
          original_lsn INTEGER);
        CREATE TABLE IF NOT EXISTS trades (
          trade_id INTEGER PRIMARY KEY,
          lsn INTEGER NOT NULL,
          block_no INTEGER NOT NULL,
          instrument INTEGER NOT NULL,
          price INTEGER NOT NULL,
          quantity INTEGER NOT NULL,
          aggressor_side TEXT NOT NULL,
          buy_client INTEGER NOT NULL,
          buy_account INTEGER NOT NULL,
          buy_order_id INTEGER NOT NULL,
          sell_client INTEGER NOT NULL,
          sell_account INTEGER NOT NULL,
          sell_order_id INTEGER NOT NULL);
        CREATE INDEX IF NOT EXISTS trades_by_buyer ON trades (buy_client);
        CREATE INDEX IF NOT EXISTS trades_by_seller ON trades (sell_client);
        CREATE INDEX IF NOT EXISTS trades_by_instrument ON trades (instrument, block_no);
        CREATE TABLE IF NOT EXISTS orders (
          client_id INTEGER NOT NULL,
          client_order_id INTEGER NOT NULL,
          account INTEGER NOT NULL,
          instrument INTEGER NOT NULL,
          side TEXT NOT NULL,
          price INTEGER NOT NULL,
          quantity INTEGER NOT NULL,
          open_quantity INTEGER NOT NULL,
          status TEXT NOT NULL,
          lsn INTEGER NOT NULL,
          PRIMARY KEY (client_id, client_order_id));
        CREATE INDEX IF NOT EXISTS open_orders ON orders (instrument, side, price) WHERE open_quantity > 0;
        """;

    private readonly SqliteConnection _connection;
    private SqliteTransaction? _transaction;
    private int _pending;
    private readonly SqliteCommand _block;
    private readonly SqliteCommand _tx;
    private readonly SqliteCommand _outcome;
    private readonly SqliteCommand _trade;
    private readonly SqliteCommand _order;
    private readonly SqliteCommand _position;

    public SqliteObserverStore(string path)
    {
        _connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadWriteCreate, Pooling = false }.ToString());
        _connection.Open();
        Execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
        Execute(Schema);
        _block = Prepare("INSERT INTO blocks VALUES ($b, $epoch, $first, $count, $at, $hash, $prev, $rf, $rb, $root)", "$b", "$epoch", "$first", "$count", "$at", "$hash", "$prev", "$rf", "$rb", "$root");
        _tx = Prepare("INSERT INTO transactions VALUES ($lsn, $b, $kind, $client, $account, $seq, $instrument, $side, $type, $tif, $price, $qty, $order, $orig)",
            "$lsn", "$b", "$kind", "$client", "$account", "$seq", "$instrument", "$side", "$type", "$tif", "$price", "$qty", "$order", "$orig");
        _outcome = Prepare("INSERT INTO outcomes VALUES ($lsn, $accepted, $reason, $original)", "$lsn", "$accepted", "$reason", "$original");
        _trade = Prepare("INSERT INTO trades VALUES ($id, $lsn, $b, $instrument, $price, $qty, $aggressor, $bc, $ba, $bo, $sc, $sa, $so)",
            "$id", "$lsn", "$b", "$instrument", "$price", "$qty", "$aggressor", "$bc", "$ba", "$bo", "$sc", "$sa", "$so");
        _order = Prepare("INSERT OR REPLACE INTO orders VALUES ($client, $order, $account, $instrument, $side, $price, $qty, $open, $status, $lsn)",
            "$client", "$order", "$account", "$instrument", "$side", "$price", "$qty", "$open", "$status", "$lsn");
        _position = Prepare("INSERT OR REPLACE INTO observer VALUES (1, $cluster, $b, $hash)", "$cluster", "$b", "$hash");
    }

    /// <summary>Where the database stopped; null for an empty one.</summary>
    public ObserverPosition? Position()
    {
        using SqliteCommand read = _connection.CreateCommand();
        read.CommandText = "SELECT cluster_id, last_block, last_block_hash FROM observer WHERE id = 1";
        using SqliteDataReader row = read.ExecuteReader();
        return row.Read() ? new ObserverPosition((ulong)row.GetInt64(1), Hash32.Parse(row.GetString(2)), ClusterId.Parse(row.GetString(0))) : null;
    }

    public IEnumerable<OrderRow> OpenOrders()
    {
        using SqliteCommand read = _connection.CreateCommand();
        read.Transaction = _transaction;
        read.CommandText = ObserverRows.OpenOrdersQuery;
        using SqliteDataReader rows = read.ExecuteReader();
        return ObserverRows.OrdersFrom(rows);
    }

    /// <summary>Writes a block's rows and the position after it; commits every <see cref="BlocksPerCommit"/> blocks (and at <see cref="Commit"/>).</summary>
    public void Write(ObservedBlock block)
    {
        _transaction ??= _connection.BeginTransaction();
        Run(_block, ObserverRows.Block(block));
        foreach (object?[] row in ObserverRows.Transactions(block))
        {
            Run(_tx, row);
        }
        foreach (object?[] row in ObserverRows.Outcomes(block))
        {
            Run(_outcome, row);
        }
        foreach (object?[] row in ObserverRows.Trades(block))
        {
            Run(_trade, row);
        }
        foreach (object?[] row in ObserverRows.Orders(block))
        {
            Run(_order, row);
        }
        Run(_position, ObserverRows.Position(block));
        if (++_pending >= BlocksPerCommit)
        {
            Commit();
        }
    }

    /// <summary>Commits what was written (a block boundary).</summary>
    public void Commit()
    {
        _transaction?.Commit();
        _transaction?.Dispose();
        _transaction = null;
        _pending = 0;
    }

    public ulong? FirstBlock()
    {
        using SqliteCommand first = _connection.CreateCommand();
        first.Transaction = _transaction;
        first.CommandText = ObserverRows.FirstBlockQuery;
        return first.ExecuteScalar() is long block ? (ulong)block : null;
    }

    /// <summary>Rows in a table (for reports and tests).</summary>
    public long Count(string table)
    {
        using SqliteCommand count = _connection.CreateCommand();
        count.Transaction = _transaction;
        count.CommandText = ObserverRows.CountQuery(table);
        return (long)count.ExecuteScalar()!;
    }

    private void Run(SqliteCommand command, object?[] values)
    {
        command.Transaction = _transaction;
        for (int i = 0; i < values.Length; i++)
        {
            command.Parameters[i].Value = values[i] ?? DBNull.Value;
        }
        command.ExecuteNonQuery();
    }

    private SqliteCommand Prepare(string sql, params string[] names)
    {
        SqliteCommand command = _connection.CreateCommand();
        command.CommandText = sql;
        foreach (string name in names)
        {
            command.Parameters.Add(new SqliteParameter(name, null));
        }
        return command;
    }

    private void Execute(string sql)
    {
        using SqliteCommand command = _connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    /// <summary>Closes the database; what was written since the last <see cref="Commit"/> is rolled back (a failed write's half must not be committed).</summary>
    public void Dispose()
    {
        _transaction?.Dispose();
        foreach (SqliteCommand command in new[] { _block, _tx, _outcome, _trade, _order, _position })
        {
            command.Dispose();
        }
        _connection.Dispose();
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"sqlite {_connection.DataSource}");
}
