using System.Diagnostics;
using System.Text;
using Microsoft.Data.Sqlite;

namespace Engine.IntegrationTests.Support;

/// <summary>An observer's SQLite database, read from outside the process that writes it.</summary>
public static class ObserverDatabase
{
    /// <summary>The last block the database holds (committed), or -1 (none yet, or its tables are being made).</summary>
    public static long LastBlock(string database)
    {
        if (!File.Exists(database))
        {
            return -1;
        }
        try
        {
            using var connection = new SqliteConnection($"Data Source={database};Mode=ReadOnly;Pooling=False");
            connection.Open();
            using SqliteCommand command = connection.CreateCommand();
            command.CommandText = "SELECT last_block FROM observer";
            return command.ExecuteScalar() is long block ? block : -1;
        }
        catch (SqliteException)
        {
            return -1; // the tables are being created
        }
    }

    /// <summary>Waits until the database holds block <paramref name="block"/> (polling a file another process writes: nothing signals it); the last block then.</summary>
    public static long WaitFor(string database, long block, Func<bool> writerGone, string what, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        long last;
        while ((last = LastBlock(database)) < block)
        {
            if (writerGone() || clock.Elapsed > timeout)
            {
                Assert.Fail($"{what}: the database holds block {last}, not {block}, after {clock.Elapsed.TotalSeconds:N1} s");
            }
            Thread.Sleep(10);
        }
        return last;
    }

    /// <summary>One scalar, read-only.</summary>
    public static long Scalar(string database, string sql)
    {
        using var connection = new SqliteConnection($"Data Source={database};Mode=ReadOnly;Pooling=False");
        connection.Open();
        using SqliteCommand command = connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteScalar() is long value ? value : -1;
    }

    /// <summary>Every row of every table, in key order, as text: two databases with the same dump hold the same rows.</summary>
    public static string Dump(string database)
    {
        using var connection = new SqliteConnection($"Data Source={database};Pooling=False");
        connection.Open();
        var text = new StringBuilder();
        foreach (string table in new[] { "blocks", "transactions", "outcomes", "trades", "orders", "observer" })
        {
            using SqliteCommand command = connection.CreateCommand();
            command.CommandText = $"SELECT * FROM {table} ORDER BY 1, 2";
            using SqliteDataReader row = command.ExecuteReader();
            while (row.Read())
            {
                for (int i = 0; i < row.FieldCount; i++)
                {
                    text.Append(row.IsDBNull(i) ? "null" : row.GetValue(i).ToString()).Append('|');
                }
                text.Append('\n');
            }
        }
        return text.ToString();
    }
}
