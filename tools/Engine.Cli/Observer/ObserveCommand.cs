using System.CommandLine;
using System.Globalization;
using Engine.Core.Journaling;

namespace Engine.Cli.Observer;

/// <summary><c>engine observe --journal DIR --sqlite FILE</c>: an observer that loads a journal into SQL tables.</summary>
internal static class ObserveCommand
{
    private const int ExitOk = 0;
    private const int ExitFault = 1;
    private const int ExitError = 2;

    public static Command Build()
    {
        var journal = new Option<DirectoryInfo?>("--journal") { Description = "Load this journal directory (a stopped node's, or a copy): every block verified, replayed and written; again later, it goes on where the database stopped." };
        var sqlite = new Option<FileInfo?>("--sqlite") { Description = "The SQLite database to write (created if missing); its tables are in docs/sql.md." };
        var peer = new Option<string?>("--peer") { Description = "Follow a running primary at HOST:PORT as a read-only member (not built yet)." };
        var postgres = new Option<string?>("--postgres") { Description = "Write to PostgreSQL at this connection string (Npgsql's, e.g. \"Host=127.0.0.1;Port=5432;Username=engine;Password=…;Database=ledger\"), instead of --sqlite: the same tables, binary COPY." };
        var key = new Option<string?>("--key") { Description = "The ledger's public key (64 hex digits): the signed head beside the journal (ledger-head) must be signed with it and be the root of the journal's blocks." };
        var cluster = new Option<FileInfo?>("--cluster") { Description = "The cluster's cluster.json: its ledger_public_key is the key. Without --key or --cluster, a development journal's head is checked against the development key, another's not at all." };
        var command = new Command("observe",
            "An observer: verifies every block of a ledger (the chain, the cluster, the records roots; and the signed head beside the journal against the ledger key), replays it through the same order book the nodes run, and writes " +
            "relational tables: blocks, transactions, outcomes, trades and the current orders (docs/sql.md). Each block's rows are committed with the position after it, so " +
            "after a kill it resumes where the database says it stopped, no row missing or doubled; a journal that does not verify, or a database of another history, " +
            "stops it (exit 1, the reason on standard error). Exit 0 loaded; 2 bad arguments.")
        {
            journal,
            sqlite,
            peer,
            postgres,
            key,
            cluster,
        };
        command.SetAction(parse =>
        {
            if (parse.GetValue(peer) is not null)
            {
                Console.Error.WriteLine("engine observe: following a primary (--peer) is not built yet; this version loads a journal (--journal)");
                return ExitError;
            }
            string? connection = parse.GetValue(postgres);
            FileInfo? file = parse.GetValue(sqlite);
            if (parse.GetValue(journal) is not { } dir || (file is null) == (connection is null))
            {
                Console.Error.WriteLine("engine observe: --journal DIR and one database, --sqlite FILE or --postgres CONNSTRING, are required");
                return ExitError;
            }
            Func<byte[], byte[], bool>? verifyHead = null;
            try
            {
                if (ProofCommands.LedgerPublicKey(parse.GetValue(key), parse.GetValue(cluster), JournalCluster(dir.FullName)) is { } publicKey)
                {
                    verifyHead = (signed, signature) => Security.LedgerKey.VerifyHead(publicKey, signed, signature);
                }
            }
            catch (Exception e) when (e is ArgumentException or InvalidDataException or IOException or FormatException)
            {
                Console.Error.WriteLine($"engine observe: {e.Message}");
                return ExitError;
            }
            try
            {
                using IObserverStore store = file is not null ? new SqliteObserverStore(file.FullName) : new PostgresObserverStore(connection!);
                string into = file?.FullName ?? "postgres";
                ObserveReport report = JournalObserver.Load(dir.FullName, store, line => Console.Error.WriteLine(line), verifyHead);
                Console.Error.WriteLine(report.HeadChecked is { } head ? $"observer: the {head} beside the journal is the ledger key's and the root of its blocks"
                    : verifyHead is null ? "observer: no ledger key given: the signed head beside the journal was not checked" : "observer: no signed head beside the journal was checked (none, or it covers more blocks than the journal holds)");
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"observed blocks {report.FromBlock:N0}…{report.ToBlock:N0} of {dir.FullName} into {into}: {report.BlocksWritten:N0} blocks, {report.Rows:N0} rows, " +
                    $"{report.RootsChecked:N0} records roots checked, {report.Elapsed.TotalSeconds:F2} s ({report.RowsPerSecond:N0} rows/s); " +
                    $"tables now: {store.Count("transactions"):N0} transactions, {store.Count("trades"):N0} trades, {store.Count("orders"):N0} orders"));
                return ExitOk;
            }
            catch (ObserverFaultException e)
            {
                Console.Error.WriteLine($"engine observe: STOPPED: {e.Message}");
                return ExitFault;
            }
            catch (Exception e) when (e is DirectoryNotFoundException or JournalCorruptException or IOException or Microsoft.Data.Sqlite.SqliteException or Npgsql.NpgsqlException or ArgumentException)
            {
                Console.Error.WriteLine($"engine observe: {e.Message}");
                return e is JournalCorruptException ? ExitFault : ExitError;
            }
        });
        return command;
    }

    /// <summary>The cluster the journal's genesis names, for the development key's default; null when it cannot be read (the load will say why).</summary>
    private static Ledger.ClusterId? JournalCluster(string directory)
    {
        try
        {
            using JournalReader reader = JournalReader.Open(directory);
            Ledger.ClusterId? cluster = null;
            reader.Scan((entry, _) =>
            {
                cluster = Ledger.BlockFormat.TryReadHeader(entry, out Ledger.BlockHeader header) is null ? header.ClusterId : null;
                return false;
            });
            return cluster;
        }
        catch (Exception e) when (e is DirectoryNotFoundException or JournalCorruptException or IOException)
        {
            return null;
        }
    }
}
