using System.Data.Common;
using System.Diagnostics;
using Engine.Tests.Shared;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Engine.IntegrationTests.Support;

/// <summary>An observer's database (SQLite file or PostgreSQL database), read from outside the process that writes it.</summary>
public sealed class ObserverDatabase
{
    private readonly string? _sqlite;
    private readonly string? _postgres;

    private ObserverDatabase(string? sqlite, string? postgres)
    {
        _sqlite = sqlite;
        _postgres = postgres;
    }

    public static ObserverDatabase Sqlite(string file) => new(file, null);

    public static ObserverDatabase Postgres(string connectionString) => new(null, connectionString);

    /// <summary>What <c>engine observe</c> is told to write to.</summary>
    public string[] Arguments => _sqlite is not null ? ["--sqlite", _sqlite] : ["--postgres", _postgres!];

    private DbConnection Open()
    {
        DbConnection connection = _sqlite is not null ? new SqliteConnection($"Data Source={_sqlite};Mode=ReadOnly;Pooling=False") : new NpgsqlConnection(_postgres);
        connection.Open();
        return connection;
    }

    /// <summary>The last block the database holds (committed), or -1 (none yet, or its tables are being made).</summary>
    public long LastBlock()
    {
        if (_sqlite is not null && !File.Exists(_sqlite))
        {
            return -1;
        }
        try
        {
            return Scalar("SELECT last_block FROM observer");
        }
        catch (DbException)
        {
            return -1; // the tables are being created
        }
    }

    /// <summary>Waits until the database holds block <paramref name="block"/> (polling a database another process writes: nothing signals it); the last block then.</summary>
    public long WaitFor(long block, EngineProcess writer, string what, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        long last;
        while ((last = LastBlock()) < block)
        {
            if (writer.HasExited || clock.Elapsed > timeout)
            {
                Assert.Fail($"{what}: the database holds block {last}, not {block}, after {clock.Elapsed.TotalSeconds:N1} s; "
                    + $"the observer {(writer.HasExited ? "exited" : "runs")}, saying:\n{EngineProcess.Tail(writer.StdErr)}");
            }
            Thread.Sleep(10);
        }
        return last;
    }

    /// <summary>One integer, read-only; -1 for none.</summary>
    public long Scalar(string sql)
    {
        using DbConnection connection = Open();
        using DbCommand command = connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteScalar() is { } value and not DBNull ? Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture) : -1;
    }

    /// <summary>Every row of every table, in key order, as text (<see cref="ObserverTables"/>).</summary>
    public string Dump()
    {
        using DbConnection connection = Open();
        return ObserverTables.Dump(connection);
    }
}
