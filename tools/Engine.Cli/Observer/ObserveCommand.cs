using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;
using Engine.Core.Server;
using Engine.Security;
using Engine.Core.Book;
using Engine.Core.Journaling;

namespace Engine.Cli.Observer;

/// <summary><c>engine observe (--journal DIR | --peer HOST:PORT) (--sqlite FILE | --postgres CONNSTRING)</c>: an observer that keeps SQL tables of the ledger.</summary>
internal static class ObserveCommand
{
    private const int ExitOk = 0;
    private const int ExitFault = 1;
    private const int ExitError = 2;

    public static Command Build()
    {
        var journal = new Option<DirectoryInfo?>("--journal") { Description = "Load this journal directory (a stopped node's, or a copy): every block verified, replayed and written; again later, it goes on where the database stopped." };
        var peer = new Option<string?>("--peer") { Description = "Follow a running pair as a read-only member: HOST:PORT of a node's replication endpoint, or several comma-separated (both nodes: whichever is primary serves, and the observer follows it across a takeover). Runs until SIGTERM or Ctrl-C." };
        var sqlite = new Option<FileInfo?>("--sqlite") { Description = "The SQLite database to write (created if missing); its tables are in docs/sql.md." };
        var postgres = new Option<string?>("--postgres") { Description = "Write to PostgreSQL at this connection string (Npgsql's, e.g. \"Host=127.0.0.1;Port=5432;Username=engine;Password=…;Database=ledger\"), instead of --sqlite: the same tables, binary COPY." };
        var key = new Option<string?>("--key") { Description = "The ledger's public key (64 hex digits): every signed head (beside the journal, or sent by the primary) must be signed with it and be the root of the blocks it covers." };
        var cluster = new Option<FileInfo?>("--cluster") { Description = "The cluster's cluster.json: its ledger_public_key is the key, and with --peer it names the nodes the observer authenticates (with --observer-key). Without it, the development cluster (its keys are public): a development journal's head is checked against the development key, another's not at all." };
        var snapshot = new Option<FileInfo?>("--snapshot") { Description = "Start from this node snapshot (DATA/journal/snapshots/snapshot-….snap) instead of genesis: for a journal compacted without its archive, or a primary whose journal starts after genesis. Its block must be the ledger's; the book starts as it holds it (an empty database gets its resting orders); signed heads are not checked then." };
        var untilBlock = new Option<ulong?>("--until-block") { Description = "With --journal: load up to this block only (the tables as of it: the orders table then holds the book at that block)." };
        var observerKey = new Option<FileInfo?>("--observer-key") { Description = "With --peer and --cluster: the observer's private key (observer.key from `engine cluster init`), which the nodes know from the roster." };
        var command = new Command("observe",
            "An observer: verifies every block of a ledger (the chain, the cluster, the records roots; the signed heads against the ledger key), replays it through the same order book the nodes run, and writes " +
            "relational tables: blocks, transactions, outcomes, trades and the current orders (docs/sql.md). From a journal directory (--journal) it loads what is there and exits; from a running pair " +
            "(--peer) it follows the primary live, as a read-only member the pair never waits for, until stopped. Each block's rows are committed with the position after it, so " +
            "after a kill it resumes where the database says it stopped, no row missing or doubled; a ledger that does not verify, or a database of another history, " +
            "stops it (exit 1, the reason on standard error). Exit 0 loaded (or stopped); 2 bad arguments.")
        {
            journal,
            peer,
            sqlite,
            postgres,
            key,
            cluster,
            observerKey,
            untilBlock,
            snapshot,
        };
        command.SetAction(async (parse, cancel) =>
        {
            string? connection = parse.GetValue(postgres);
            FileInfo? file = parse.GetValue(sqlite);
            DirectoryInfo? dir = parse.GetValue(journal);
            string? peers = parse.GetValue(peer);
            if ((dir is null) == (peers is null) || (file is null) == (connection is null))
            {
                Console.Error.WriteLine("engine observe: one source, --journal DIR or --peer HOST:PORT[,HOST:PORT], and one database, --sqlite FILE or --postgres CONNSTRING, are required");
                return ExitError;
            }
            if (parse.GetValue(untilBlock) is not null && peers is not null)
            {
                Console.Error.WriteLine("engine observe: --until-block goes with --journal");
                return ExitError;
            }
            if (parse.GetValue(observerKey) is not null && (peers is null || parse.GetValue(cluster) is null))
            {
                Console.Error.WriteLine("engine observe: --observer-key goes with --peer and --cluster");
                return ExitError;
            }
            try
            {
                LoadedSnapshot? start = parse.GetValue(snapshot) is { } snapshotFile ? ReadSnapshot(snapshotFile) : null;
                using IObserverStore store = file is not null ? new SqliteObserverStore(file.FullName) : new PostgresObserverStore(connection!);
                string into = file?.FullName ?? "postgres";
                return peers is null
                    ? Load(parse, dir!, store, into, key, cluster, parse.GetValue(untilBlock), start)
                    : await FollowAsync(parse, peers, store, into, key, cluster, observerKey, start, cancel).ConfigureAwait(false);
            }
            catch (ObserverFaultException e)
            {
                Console.Error.WriteLine($"engine observe: STOPPED: {e.Message}");
                return ExitFault;
            }
            catch (Exception e) when (e is DirectoryNotFoundException or JournalCorruptException or IOException or Microsoft.Data.Sqlite.SqliteException or Npgsql.NpgsqlException
                or ArgumentException or InvalidDataException or FormatException)
            {
                Console.Error.WriteLine($"engine observe: {e.Message}{(e.InnerException is { } inner ? $" ({inner.GetType().Name}: {inner.Message})" : "")}");
                return e is JournalCorruptException ? ExitFault : ExitError;
            }
        });
        return command;
    }

    /// <summary>A node's snapshot file, checked whole (its own checksum, every structure), at most <see cref="Replication.SnapshotTransfer.MaxSnapshotBytes"/>.</summary>
    private static LoadedSnapshot ReadSnapshot(FileInfo file)
    {
        if (!file.Exists)
        {
            throw new FileNotFoundException($"--snapshot: {file.FullName}: no such file");
        }
        if (file.Length > Replication.SnapshotTransfer.MaxSnapshotBytes)
        {
            throw new InvalidDataException($"--snapshot: {file.FullName}: {file.Length:N0} bytes, more than any snapshot ({Replication.SnapshotTransfer.MaxSnapshotBytes:N0})");
        }
        try
        {
            Exchange exchange = Exchange.ReadSnapshot(File.ReadAllBytes(file.FullName), out SnapshotHeader header);
            return new LoadedSnapshot(exchange, header, file.FullName);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"--snapshot: {file.FullName}: {e.Message}", e);
        }
    }

    private static int Load(ParseResult parse, DirectoryInfo dir, IObserverStore store, string into, Option<string?> key, Option<FileInfo?> cluster, ulong? untilBlock, LoadedSnapshot? snapshot)
    {
        Func<byte[], byte[], bool>? verifyHead = null;
        if (ProofCommands.LedgerPublicKey(parse.GetValue(key), parse.GetValue(cluster), JournalCluster(dir.FullName)) is { } publicKey)
        {
            verifyHead = (signed, signature) => Security.LedgerKey.VerifyHead(publicKey, signed, signature);
        }
        ObserveReport report = JournalObserver.Load(dir.FullName, store, line => Console.Error.WriteLine(line), verifyHead, untilBlock, snapshot);
        Console.Error.WriteLine(report.HeadChecked is { } head ? $"observer: the {head} beside the journal is the ledger key's and the root of its blocks"
            : snapshot is not null ? "observer: started from a snapshot: the signed head beside the journal was not checked (it signs every block from genesis)"
            : verifyHead is null ? "observer: no ledger key given: the signed head beside the journal was not checked" : "observer: no signed head beside the journal was checked (none, or it covers more blocks than the journal holds)");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"observed blocks {report.FromBlock:N0}…{report.ToBlock:N0} of {dir.FullName} into {into}: {report.BlocksWritten:N0} blocks, {report.Rows:N0} rows, " +
            $"{report.RootsChecked:N0} records roots checked, {report.Elapsed.TotalSeconds:F2} s ({report.RowsPerSecond:N0} rows/s); " +
            $"tables now: {store.Count("transactions"):N0} transactions, {store.Count("trades"):N0} trades, {store.Count("orders"):N0} orders"));
        return ExitOk;
    }

    private static async Task<int> FollowAsync(ParseResult parse, string peers, IObserverStore store, string into, Option<string?> key, Option<FileInfo?> cluster,
        Option<FileInfo?> observerKey, LoadedSnapshot? snapshot, CancellationToken cancel)
    {
        IPEndPoint[] endpoints = [.. peers.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(p => EngineSettings.ParseEndpoint(p, "--peer"))];
        if (endpoints.Length == 0)
        {
            throw new ArgumentException("--peer: no HOST:PORT given");
        }
        FileInfo? roster = parse.GetValue(cluster);
        ClusterCredentials self;
        if (roster is null)
        {
            self = ClusterCredentials.Development("observer");
        }
        else
        {
            FileInfo keyFile = parse.GetValue(observerKey) ?? throw new ArgumentException("--peer with --cluster needs --observer-key (the observer's key from `engine cluster init`)");
            self = ClusterCredentials.Load(roster.FullName, keyFile.FullName);
            if (self.Self.Role != PrincipalRole.Observer)
            {
                throw new ArgumentException($"{keyFile.FullName} is the key of {self.Self}; an observer needs one of role observer");
            }
        }
        byte[] publicKey = ProofCommands.LedgerPublicKey(parse.GetValue(key), roster, self.IsDevelopment ? Ledger.ClusterId.Development : null)
            ?? throw new ArgumentException("the ledger's public key is needed to check the signed heads: --key, or --cluster");
        Console.Error.WriteLine($"observer: {self}; following {string.Join(", ", endpoints.Select(e => e.ToString()))} into {into}");
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c =>
        {
            c.Cancel = true;
            stop.Cancel();
        });
        var observer = new PeerObserver(endpoints, self, store, (signed, signature) => Security.LedgerKey.VerifyHead(publicKey, signed, signature), line => Console.Error.WriteLine(line), snapshot);
        PeerObserveReport report = await observer.RunAsync(stop.Token).ConfigureAwait(false);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"observed blocks {report.FromBlock:N0}…{report.LastBlock:N0} from {peers} into {into}: {report.BlocksWritten:N0} blocks, {report.Rows:N0} rows, " +
            $"{report.RootsChecked:N0} records roots and {report.HeadsChecked:N0} signed heads checked, {report.Connections:N0} connections, {report.Elapsed.TotalSeconds:F1} s; {report.LagSummary}; " +
            $"tables now: {store.Count("transactions"):N0} transactions, {store.Count("trades"):N0} trades, {store.Count("orders"):N0} orders"));
        return ExitOk;
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
