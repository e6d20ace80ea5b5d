using System.Diagnostics;
using System.Text;
using Engine.IntegrationTests.Support;
using Microsoft.Data.Sqlite;

namespace Engine.IntegrationTests;

/// <summary>
/// A real <c>engine observe</c> process killed with SIGKILL in the middle of a load, then started
/// again: the database it leaves goes on where it stopped, and ends equal, row for row, to a database
/// loaded in one go: no row missing or doubled.
/// </summary>
public class ObserverKillTests
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(120);
    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Path.Combine(Path.GetTempPath(), $"observe-kill-{Guid.NewGuid():N}");

    [TearDown]
    public void TearDown()
    {
        SqliteConnection.ClearAllPools();
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    private static long LastBlock(string database)
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

    private static string Dump(string database)
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

    [Test]
    public void Killed_mid_load_it_resumes_and_ends_equal_to_one_load()
    {
        string journal = Path.Combine(_dir, "journal");
        using (var generate = EngineProcess.Start("log", "generate", journal, "--count", "250000"))
        {
            Assert.That(generate.WaitForExit(s_timeout), Is.Zero, generate.StdErr);
        }
        string killed = Path.Combine(_dir, "killed.db");
        using (var observe = EngineProcess.Start("observe", "--journal", journal, "--sqlite", killed))
        {
            var clock = Stopwatch.StartNew();
            while (LastBlock(killed) < 60 && clock.Elapsed < s_timeout && !observe.HasExited)
            {
                Thread.Sleep(10); // polling a file another process writes: nothing signals it
            }
            Assert.That(observe.HasExited, Is.False, "still loading when killed: " + observe.StdErr);
            observe.KillHard();
        }
        long stoppedAt = LastBlock(killed);
        Assert.That(stoppedAt, Is.GreaterThanOrEqualTo(60));

        using (var resume = EngineProcess.Start("observe", "--journal", journal, "--sqlite", killed))
        {
            Assert.That(resume.WaitForExit(s_timeout), Is.Zero, resume.StdErr);
            Assert.That(resume.StdErr, Does.Contain($"the database holds blocks up to {stoppedAt}"));
        }
        string whole = Path.Combine(_dir, "whole.db");
        using (var once = EngineProcess.Start("observe", "--journal", journal, "--sqlite", whole))
        {
            Assert.That(once.WaitForExit(s_timeout), Is.Zero, once.StdErr);
        }
        Assert.That(Dump(killed), Is.EqualTo(Dump(whole)));
    }
}
