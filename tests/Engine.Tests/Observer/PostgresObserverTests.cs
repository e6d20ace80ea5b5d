using Engine.Cli.Observer;
using Engine.Core.Journaling;
using Engine.Core.Ledger;
using Engine.Core.Ring;
using Engine.Tests.Shared;
using Engine.Tests.Support;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Engine.Tests.Observer;

/// <summary>
/// The observer into a real PostgreSQL server (started by the test, as the postgres user): the same
/// rows as SQLite's for the same journal, and a load resumed after more blocks equal to one load of
/// the whole. Skipped, saying why, where PostgreSQL is not installed.
/// </summary>
[NonParallelizable]
public class PostgresObserverTests
{
    private PostgresServer? _server;
    private TempDirectory _temp = null!;

    [OneTimeSetUp]
    public void StartServer()
    {
        _server = PostgresServer.TryStart(out string? why);
        if (_server is null)
        {
            Assert.Ignore(why!);
        }
    }

    [OneTimeTearDown]
    public void StopServer() => _server?.Dispose();

    [SetUp]
    public void SetUp() => _temp = new TempDirectory("observer-pg");

    [TearDown]
    public void TearDown()
    {
        SqliteConnection.ClearAllPools();
        _temp.Dispose();
    }

    private string Generate(long count, int seed)
    {
        string dir = _temp.Sub("journal");
        using Journal journal = Journal.Open(new JournalSettings { Directory = dir, Durability = Durability.Memory, MaxTransactionsPerBlock = 50 });
        SyntheticLedgerRun.Run(journal, count, new RingSettings { Size = 1 << 12 }, seed, rootsEveryRequests: 2_000);
        return dir;
    }

    private static ObserveReport Load(string journal, IObserverStore store)
    {
        using (store)
        {
            return JournalObserver.Load(journal, store, _ => { });
        }
    }

    private static string DumpSqlite(string file)
    {
        using var connection = new SqliteConnection($"Data Source={file};Pooling=False");
        connection.Open();
        return ObserverTables.Dump(connection);
    }

    private static string DumpPostgres(string connectionString)
    {
        using var connection = new NpgsqlConnection(connectionString);
        connection.Open();
        return ObserverTables.Dump(connection);
    }

    [Test]
    public void PostgreSQL_holds_the_same_rows_as_SQLite_and_a_resumed_load_equals_one_load()
    {
        string journal = Generate(12_000, seed: 3);
        string resumed = _server!.CreateDatabase("resumed");
        ObserveReport first = Load(journal, new PostgresObserverStore(resumed));
        Generate(12_000, seed: 4); // the same journal, continued
        ObserveReport second = Load(journal, new PostgresObserverStore(resumed));
        Assert.That(second.FromBlock, Is.EqualTo(first.ToBlock + 1), "it went on where the database stopped");
        Assert.That(second.RootsChecked, Is.GreaterThan(0));

        string sqlite = Path.Combine(_temp.Path, "whole.db");
        Load(journal, new SqliteObserverStore(sqlite));
        string expected = DumpSqlite(sqlite);
        Assert.That(expected.Split('\n').Length, Is.GreaterThan(20_000), "a dump worth comparing");
        Assert.That(DumpPostgres(resumed), Is.EqualTo(expected));

        string whole = _server.CreateDatabase("whole");
        Load(journal, new PostgresObserverStore(whole));
        Assert.That(DumpPostgres(whole), Is.EqualTo(expected));
    }
}
