using System.Data.Common;
using System.Globalization;
using System.Text;

namespace Engine.Tests.Shared;

/// <summary>An observer's tables (docs/sql.md) as text, the same from SQLite and PostgreSQL: two databases with the same dump hold the same rows.</summary>
internal static class ObserverTables
{
    private static readonly string[] s_queries =
    [
        "SELECT * FROM blocks ORDER BY block_no", "SELECT * FROM transactions ORDER BY lsn", "SELECT * FROM outcomes ORDER BY lsn",
        "SELECT * FROM trades ORDER BY trade_id", "SELECT * FROM orders ORDER BY client_id, client_order_id", "SELECT * FROM observer",
    ];

    /// <summary>Every row of every table, in key order.</summary>
    public static string Dump(DbConnection connection)
    {
        var text = new StringBuilder();
        foreach (string query in s_queries)
        {
            using DbCommand command = connection.CreateCommand();
            command.CommandText = query;
            using DbDataReader row = command.ExecuteReader();
            while (row.Read())
            {
                for (int i = 0; i < row.FieldCount; i++)
                {
                    text.Append(row.IsDBNull(i) ? "null" : Convert.ToString(row.GetValue(i), CultureInfo.InvariantCulture)).Append('|');
                }
                text.Append('\n');
            }
        }
        return text.ToString();
    }
}
