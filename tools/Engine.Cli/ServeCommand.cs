using System.CommandLine;
using System.Runtime.InteropServices;
using System.Net;
using System.Net.Sockets;
using Engine.Core.Book;
using Engine.Core.Journaling;
using Engine.Core.Ledger;
using Engine.Core.Server;
using Engine.Replication;
using Engine.Replication.Pair;
using Engine.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;

namespace Engine.Cli;

/// <summary><c>engine serve</c>: run one engine node until SIGTERM or Ctrl-C.</summary>
internal static class ServeCommand
{
    public const string EnvironmentPrefix = "ENGINE_";

    /// <summary>
    /// The exit code of a node that halted (its journal or its pipeline failed) and was then stopped:
    /// distinct from a clean stop (0), bad arguments or configuration (2) and a refusal to start (3),
    /// so a supervisor can tell a node that needs its disk looked at from one that was merely stopped.
    /// </summary>
    public const int ExitHalted = 4;

    public static Command Build()
    {
        var data = new Option<string>("--data") { Description = "The node's data directory (the journal goes in DATA/journal). Required, here, in ENGINE_DATA or in the config file." };
        var listen = new Option<string>("--listen") { Description = "HOST:PORT for trading front-ends (default 127.0.0.1:7400)." };
        var admin = new Option<string>("--admin") { Description = "HOST:PORT for the admin HTTP endpoint, up whatever the node's role: GET /status, GET /log?after=N (recent pair events), POST /admin/go-solo. Off unless given." };
        var config = new Option<FileInfo>("--config") { Description = "JSON configuration file: any setting below, and Instruments (Id, Symbol, TickSize, ReferencePrice, PriceBandBps), Accounts (Id, MaxOrderQuantity, MaxOrderNotional, MaxOpenOrders) and Clients (Id, TokenHash or Token, Accounts) (else the built-in development set)." };
        var durability = new Option<Durability?>("--durability") { Description = "memory (default): a block counts once in the journal's memory; disk: once committed." };
        var role = new Option<string>("--role") { Description = "standalone (default); primary (waits for a backup on --replication-listen, mirrors every block to it and acknowledges only what it holds); backup (follows the primary at --peer, catching up first, and takes over when it is gone). Also Pair:Role in the config file." };
        role.AcceptOnlyFromAmong("standalone", "primary", "backup");
        var peer = new Option<string>("--peer") { Description = "backup: HOST:PORT of the primary's replication endpoint. primary: the other node's; if it answers as a primary of a higher epoch (it took over), this node steps down to backup." };
        var replicationListen = new Option<string>("--replication-listen") { Description = "primary and backup: HOST:PORT where this node, as primary, takes its backup." };
        var witness = new Option<string>("--witness") { Description = "HOST:PORT of an `engine witness`: the solo lease comes from it, and only while no backup is in step (instead of --allow-solo)." };
        var allowSolo = new Option<bool>("--allow-solo") { Description = "the operator's solo lease: as primary (from the start, or after a takeover), acknowledge while no backup is in step. Without it such a primary answers \"no backup\"." };
        var tlsCert = new Option<string>("--tls-cert") { Description = "PEM certificate (chain) for the client port: with --tls-key, clients must speak TLS 1.2/1.3 (Gateway:TlsCertificateFile)." };
        var tlsKey = new Option<string>("--tls-key") { Description = "PEM private key of --tls-cert (Gateway:TlsKeyFile)." };
        var peerListen = new Option<string>("--peer-listen") { Description = "HOST:PORT of the other node's client port: named in the \"not primary\" answer to clients that log on here while this node does not serve (Gateway:PeerListen)." };
        var allowDevOnNetwork = new Option<bool>("--allow-dev-config-on-network") { Description = "Serve the built-in development configuration (tokens everybody knows), or one with no clients, on a non-loopback --listen. Refused without it." };
        var cluster = new Option<string>("--cluster") { Description = "The cluster's cluster.json (from `engine cluster init`); with --key, the replication link is authenticated and encrypted with it. Also the setting Cluster, ENGINE_CLUSTER. Without both: the built-in development cluster (loopback only: its keys are public)." };
        var key = new Option<string>("--key") { Description = "This node's key file (NAME.key from `engine cluster init`, a node's). Also the setting Key, ENGINE_KEY." };
        var ledgerKey = new Option<string>("--ledger-key") { Description = "The cluster's ledger key (ledger.key from `engine cluster init`): as primary, the node signs the ledger's head with it every SignedHeadIntervalMs (1000), for inclusion proofs. Also the setting LedgerKey, ENGINE_LEDGERKEY. The development cluster signs with its built-in key; a cluster without it signs no heads." };
        var logFormat = new Option<string>("--log-format") { Description = "text (default) or json.", DefaultValueFactory = _ => "text" };
        logFormat.AcceptOnlyFromAmong("text", "json");
        var command = new Command("serve", $"""
            Run an engine node: accept front-ends on --listen, journal every accepted order, apply it to the order book, answer.
            Settings come from the config file, then environment variables ({EnvironmentPrefix}DATA, {EnvironmentPrefix}LISTEN, {EnvironmentPrefix}DURABILITY, {EnvironmentPrefix}RINGSIZE, …), then flags, later ones winning.
            Other settings: RingSize, OutboundRingSize, WaitStrategy (adaptive, blocking, yielding, busy-spin, adaptive:SPINS:YIELDS), Topology (single, sealahead, fused, separate), DispatchOnApplyThread (true: the apply thread sends the answers; false: through the outbound ring's dispatch thread), MemoryCommitIntervalUs (20000: memory durability's least time between journal commits), MaxTransactionsPerBlock, RecordsRootIntervalMs (10: how often the records roots of new blocks are computed; 0: none), MaxInFlightPerClient, MaxOutboundBytesPerSession, MaxSessions, LogonTimeoutMs, DrainTimeoutMs, ChecksumEveryBlocks (10000).
            Snapshots (in DATA/journal/snapshots, taken off the apply thread by a replica of the state that follows the journal; a restart loads the newest that verifies and replays only the blocks after it): SnapshotEveryBlocks (100000; 0 off), SnapshotEverySeconds (60; 0 off), SnapshotRetain (3). `engine admin snapshot` takes one now. JournalRetention (archive, delete, keep; default archive): once SnapshotRetain snapshots exist, the blocks before the oldest leave the journal (FASTER frees its 64 MiB segments), archived to DATA/journal/archive (`engine log verify` reads archive and journal as one chain) or deleted.
            Pair (section Pair, environment {EnvironmentPrefix}PAIR__…): Role, Peer, ReplicationListen, Witness, AllowSolo (the flags below), and its clocks HeartbeatMs (50), SilenceMs (500, at least three heartbeats), HelloAnswerMs (5000), LeaseMarginMs (150), PeerProbeMs (500), PeerProbeTimeoutMs (1000).
            Client port (section Gateway, environment {EnvironmentPrefix}GATEWAY__…): MaxPendingLogons, MaxPendingLogonsPerAddress, FailedLogonLimit, FailedLogonWindowMs, FailedLogonBlockMs, MaxTrackedAddresses, HoldLogonMs, HeartbeatMs (20: the shortest heartbeat interval a client may ask for; 0: no heartbeats).
            SIGTERM or Ctrl-C: stop accepting, drain, commit the journal, exit 0.
            A node whose journal fails (an I/O error, a full disk) or whose pipeline halts halts: it acknowledges nothing more, closes its backup's link (the backup takes over at once), answers every logon "not primary", says why on /status, and stays up until SIGTERM or Ctrl-C, then exits {ExitHalted}. A backup whose own journal fails halts too, and never takes over.
            Exit codes: 0 stopped; 2 bad arguments or configuration; 3 refused to start (a journal that does not verify, a port in use, …) or stopped on a state mismatch with the primary; {ExitHalted} halted, then stopped.
            """)
        {
            data,
            listen,
            admin,
            config,
            durability,
            role,
            peer,
            replicationListen,
            allowSolo,
            witness,
            cluster,
            key,
            ledgerKey,
            logFormat,
            tlsCert,
            tlsKey,
            peerListen,
            allowDevOnNetwork,
        };
        command.SetAction((parse, cancel) =>
        {
            var flags = new Dictionary<string, string?>();
            void Flag(string key, string? value)
            {
                if (!string.IsNullOrEmpty(value))
                {
                    flags[key] = value;
                }
            }
            Flag("Data", parse.GetValue(data));
            Flag("Listen", parse.GetValue(listen));
            Flag("Admin", parse.GetValue(admin));
            Flag("Durability", parse.GetValue(durability)?.ToString());
            Flag("Gateway:TlsCertificateFile", parse.GetValue(tlsCert));
            Flag("Gateway:TlsKeyFile", parse.GetValue(tlsKey));
            Flag("Gateway:PeerListen", parse.GetValue(peerListen));
            Flag("Cluster", parse.GetValue(cluster));
            Flag("Key", parse.GetValue(key));
            Flag("LedgerKey", parse.GetValue(ledgerKey));
            Flag("Pair:Role", parse.GetValue(role));
            Flag("Pair:Peer", parse.GetValue(peer));
            Flag("Pair:ReplicationListen", parse.GetValue(replicationListen));
            Flag("Pair:Witness", parse.GetValue(witness));
            Flag("Pair:AllowSolo", parse.GetValue(allowSolo) ? "true" : null);
            return RunAsync(parse.GetValue(config)?.FullName, flags, parse.GetValue(logFormat)!, parse.GetValue(allowDevOnNetwork));
        });
        return command;
    }

    /// <summary>The pair's settings and what the node derives from them once.</summary>
    private sealed record PairOptions(PairSettings Settings)
    {
        public PairRole Role => Settings.Role;

        public string? Peer => Settings.Peer;

        public string? ReplicationListen => Settings.ReplicationListen;

        public string? Witness => Settings.Witness;

        public bool AllowSolo => Settings.AllowSolo;

        /// <summary>Who this node is in its cluster (from --cluster/--key, else the development cluster's node named after its
        /// replication endpoint): the replication link authenticates with it, the witness grants under its name, and the
        /// admin endpoint checks operators against its roster. Set once the settings are read.</summary>
        public ClusterCredentials Credentials { get; init; } = null!;

    }

    /// <summary>
    /// This node's credentials from the settings Cluster and Key (flags, ENGINE_CLUSTER/ENGINE_KEY or
    /// the config file), both or neither. Neither: the development cluster, named after the
    /// replication endpoint (as the witness tells nodes apart), with a warning naming the risk.
    /// </summary>
    private static ClusterCredentials LoadCredentials(IConfiguration configuration, PairOptions pair, Action<string> warn)
    {
        string? cluster = configuration["Cluster"], key = configuration["Key"];
        if (string.IsNullOrEmpty(cluster) != string.IsNullOrEmpty(key))
        {
            throw new ArgumentException("--cluster and --key go together (the cluster's cluster.json and this node's key file)");
        }
        if (string.IsNullOrEmpty(cluster))
        {
            if (pair.Role != PairRole.Standalone)
            {
                warn("WARNING: no --cluster/--key: the replication link uses the built-in DEVELOPMENT cluster, whose keys are in the source, so anyone who can reach "
                    + "--replication-listen or --peer can pose as this node's backup or primary and read every order. For loopback and tests only; `engine cluster init` makes a cluster.");
            }
            return ClusterCredentials.Development($"node@{pair.ReplicationListen ?? "standalone"}");
        }
        ClusterCredentials credentials = ClusterCredentials.Load(cluster, key!);
        if (credentials.Self.Role != PrincipalRole.Node)
        {
            throw new ArgumentException($"{key} is the key of '{credentials.Self.Name}', a {Principal.RoleName(credentials.Self.Role)}: a node runs with a node's key");
        }
        return credentials;
    }

    /// <summary>
    /// The ledger key the node signs heads with: the setting LedgerKey (checked against the roster), or
    /// the development cluster's built-in one; null (no heads, said once) for a cluster without it.
    /// Always set here, over anything the configuration bound to <see cref="EngineSettings.Signing"/>.
    /// </summary>
    private static HeadSigning? LoadLedgerKey(IConfiguration configuration, ClusterCredentials credentials, Action<string> warn)
    {
        string? path = configuration["LedgerKey"];
        LedgerKey key;
        if (!string.IsNullOrEmpty(path))
        {
            if (credentials.IsDevelopment)
            {
                throw new ArgumentException("--ledger-key needs --cluster and --key: the ledger key is checked against the cluster's roster");
            }
            key = LedgerKey.Load(configuration["Cluster"]!, path);
        }
        else if (credentials.IsDevelopment)
        {
            key = LedgerKey.Development();
        }
        else
        {
            warn("no --ledger-key: this node signs no ledger heads, so no inclusion proof can be made of what it journals (the blocks still carry their records roots)");
            return null;
        }
        // The key lives as long as the process: the node signs with it until it stops.
        return new HeadSigning(key.PublicKey.ToArray(), head => key.SignHead(head));
    }

    private static async Task<int> RunAsync(string? configFile, Dictionary<string, string?> flags, string logFormat, bool allowDevOnNetwork = false)
    {
        using ILoggerFactory logging = LoggerFactory.Create(builder =>
        {
            if (logFormat == "json")
            {
                builder.AddJsonConsole(o => { o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ"; o.UseUtcTimestamp = true; });
            }
            else
            {
                builder.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.fff "; o.UseUtcTimestamp = true; });
            }
            builder.AddFilter("Microsoft", LogLevel.Warning);
        });
        ILogger log = logging.CreateLogger("engine");

        EngineSettings settings;
        ReferenceData reference;
        PairOptions pair;
        try
        {
            var builder = new ConfigurationBuilder();
            if (configFile is not null)
            {
                builder.AddJsonFile(configFile, optional: false);
            }
            IConfiguration configuration = builder.AddEnvironmentVariables(EnvironmentPrefix).AddInMemoryCollection(flags).Build();
            settings = (configuration.Get<EngineSettings>() ?? new EngineSettings()).Validate();
            reference = ReferenceConfig.Load(configuration, configFile);
            GatewayTls.From(settings.Gateway); // a bad certificate or key is refused now, not at the first takeover
            pair = new PairOptions((configuration.GetSection("Pair").Get<PairSettings>() ?? new PairSettings()).Validate());
            pair = pair with { Credentials = LoadCredentials(configuration, pair, warning => Log.Info(log, warning)) };
            // The journal's genesis names the cluster: a node never appends one cluster's blocks to another's chain.
            settings = settings with { ClusterId = pair.Credentials.IsDevelopment ? ClusterId.Development : ClusterId.From(pair.Credentials.Roster.ClusterId) };
            settings = settings with { Signing = LoadLedgerKey(configuration, pair.Credentials, warning => Log.Info(log, warning)) };
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException or IOException or InvalidDataException)
        {
            Console.Error.WriteLine($"engine serve: {e.Message}");
            return 2;
        }
        if ((DevelopmentConfigOnNetwork(settings, reference, allowDevOnNetwork) ?? DevelopmentClusterOnNetwork(pair, allowDevOnNetwork)) is { } refusal)
        {
            Console.Error.WriteLine($"engine serve: {refusal}");
            return 2;
        }

        using ThreadPoolWatch poolWatch = ThreadPoolWatch.Start(line => Log.Info(log, line));
        Log.Info(log, $"settings: {settings}");
        Log.Info(log, $"cluster: {pair.Credentials}");
        Log.Info(log, $"reference data: {reference}");
        if (!reference.IsDevelopment && reference.ClientsWithPlaintextTokens is { Count: > 0 } plain)
        {
            Log.Info(log, $"WARNING: clients {string.Join(", ", plain)} have their token in clear in the configuration (Token): give TokenHash instead (`engine token hash`)");
        }

        using var stop = new CancellationTokenSource();
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });

        var board = new NodeBoard { Configured = reference };
        // Every pair event goes to the log (its kind, epoch and block fields of their own) and to /log.
        void Raise(PairEvent pairEvent)
        {
            if (pairEvent.Kind is PairEventKind.Halted or PairEventKind.StateMismatch or PairEventKind.JournalFailed)
            {
                Log.PairAlarm(log, pairEvent.Text, PairEvent.Name(pairEvent.Kind), pairEvent.Epoch, pairEvent.BlockNo);
            }
            else
            {
                Log.Pair(log, pairEvent.Text, PairEvent.Name(pairEvent.Kind), pairEvent.Epoch, pairEvent.BlockNo);
            }
            board.Log.Add(pairEvent);
        }
        void Say(string message) => Raise(PairEvent.Note(message));
        void Alarm(string message)
        {
            Log.Critical(log, message);
            board.Log.Add(PairEvent.Note(message));
        }
        // Up for the whole life of the process, whatever the node's role: an operator (or `engine
        // drill --attach`) follows a backup too.
        WebApplication? adminApp = null;
        if (!string.IsNullOrEmpty(settings.Admin))
        {
            try
            {
                adminApp = AdminEndpoint.Build(settings, board, pair.Peer, pair.ReplicationListen, pair.Witness, pair.Credentials.Roster, Raise);
            }
            catch (ArgumentException e)
            {
                Console.Error.WriteLine($"engine serve: {e.Message}");
                return 2;
            }
            await adminApp.StartAsync(CancellationToken.None).ConfigureAwait(false);
            Say($"admin endpoint on http://{settings.Admin}/status");
        }
        await using var stopAdmin = new AsyncDisposer(async () =>
        {
            if (adminApp is not null)
            {
                await adminApp.StopAsync(CancellationToken.None).ConfigureAwait(false);
                await adminApp.DisposeAsync().ConfigureAwait(false);
            }
        });
        if (pair.Role == PairRole.Standalone)
        {
            EngineNode standalone;
            try
            {
                standalone = EngineNode.Start(settings, reference, Say);
            }
            catch (Exception e) when (e is JournalCorruptException or InvalidOperationException or SocketException or IOException or InvalidDataException)
            {
                Alarm($"refusing to start: {e.Message}");
                return 3;
            }
            board.Standalone(standalone);
            Say($"listening for front-ends on {standalone.ListenEndPoint}");
            if (await UntilHaltedAsync(standalone.WhenHalted, stop.Token).ConfigureAwait(false) is { } halted)
            {
                return await StayHaltedAsync(halted, standalone.DisposeAsync).ConfigureAwait(false);
            }
            Say("stopping: draining the pipeline and committing the journal");
            await standalone.DisposeAsync().ConfigureAwait(false);
            return standalone.Halted ? ExitHalted : 0; // halted while stopping: its last commit failed
        }

        PairHost host;
        try
        {
            host = new PairHost(settings, reference, pair.Settings, pair.Credentials, Raise);
        }
        catch (Exception e) when (e is JournalCorruptException or InvalidOperationException or SocketException or IOException or InvalidDataException)
        {
            Alarm($"refusing to start: {e.Message}");
            return 3;
        }
        board.Pair(host);
        Say($"node {pair.Credentials.Self.Name} on the replication endpoint {pair.ReplicationListen}");
        PairExit exit;
        try
        {
            exit = await host.RunAsync(() => { }, stop.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is InvalidOperationException or SocketException or IOException or InvalidDataException)
        {
            Alarm($"refusing to start: {e.Message}");
            await host.DisposeAsync().ConfigureAwait(false);
            return 3;
        }
        switch (exit)
        {
            case PairExit.Halted:
                return await StayHaltedAsync(host.HaltReason ?? host.Serving?.HaltReason ?? "halted", host.DisposeAsync).ConfigureAwait(false);
            case PairExit.StateMismatch:
                Alarm("refusing to go on: the backup's state diverged from the primary's after the same blocks (see the log): stopped");
                await host.DisposeAsync().ConfigureAwait(false);
                return 3;
            default:
                Say("stopping: draining the pipeline and committing the journal");
                EngineNode? serving = host.Serving;
                await host.DisposeAsync().ConfigureAwait(false);
                return serving is { Halted: true } ? ExitHalted : 0; // halted while stopping: its last commit failed
        }

        // The node has already stopped acknowledging, closed its backup's link and sent its clients away
        // (EngineNode.Halt, PairNode.Halt), or, a backup, stopped following for good: it stays up, serving
        // nobody and never taking over, to say why, until it is stopped.
        async Task<int> StayHaltedAsync(string reason, Func<ValueTask> dispose)
        {
            board.Halted(reason);
            Raise(new PairEvent(PairEventKind.Halted, $"HALTED: {reason}. Staying up to say so (/status); SIGTERM or Ctrl-C exits {ExitHalted}"));
            await UntilHaltedAsync(new TaskCompletionSource<string>().Task, stop.Token).ConfigureAwait(false);
            Say("stopping the halted node");
            await dispose().ConfigureAwait(false);
            return ExitHalted;
        }
    }

    /// <summary>Waits until <paramref name="halted"/> completes or <paramref name="cancel"/> is cancelled (a task that never completes: until cancelled); returns the reason of the halt, or null if cancelled first.</summary>
    private static async Task<string?> UntilHaltedAsync(Task<string> halted, CancellationToken cancel)
    {
        var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using (cancel.Register(() => cancelled.TrySetResult()))
        {
            await Task.WhenAny(halted, cancelled.Task).ConfigureAwait(false);
        }
        return halted.IsCompletedSuccessfully ? halted.Result : null;
    }

    /// <summary>
    /// Why the node must not serve <paramref name="reference"/> on <see cref="EngineSettings.Listen"/>, or null:
    /// tokens everybody knows (the development set), or no client at all, on an address others can
    /// reach, without the operator's explicit <c>--allow-dev-config-on-network</c>.
    /// </summary>
    private static string? DevelopmentConfigOnNetwork(EngineSettings settings, ReferenceData reference, bool allowed)
    {
        System.Net.IPEndPoint listen = EngineSettings.ParseEndpoint(settings.Listen, "--listen");
        if (allowed || IPAddress.IsLoopback(listen.Address) || (!reference.IsDevelopment && reference.Clients.Any()))
        {
            return null;
        }
        string what = reference.IsDevelopment ? "the built-in development configuration (tokens dev-token-N, known to everyone)" : "a configuration with no clients";
        return $"refusing to serve {what} on {settings.Listen}, which is not a loopback address: give --config with Clients and their TokenHash " +
               "(`engine token hash`), listen on 127.0.0.1, or pass --allow-dev-config-on-network to accept the risk";
    }

    /// <summary>
    /// Why the node must not use the development cluster (keys in the source) on its peer endpoints, or
    /// null: anyone who can reach a non-loopback --replication-listen, --peer or --witness could pose as
    /// this node's backup, primary or witness, unless the operator passes --allow-dev-config-on-network.
    /// </summary>
    private static string? DevelopmentClusterOnNetwork(PairOptions pair, bool allowed)
    {
        if (allowed || !pair.Credentials.IsDevelopment || pair.Role == PairRole.Standalone)
        {
            return null;
        }
        foreach ((string? value, string flag) in new[] { (pair.ReplicationListen, "--replication-listen"), (pair.Peer, "--peer"), (pair.Witness, "--witness") })
        {
            if (value is not null && !IPAddress.IsLoopback(EngineSettings.ParseEndpoint(value, flag).Address))
            {
                return $"refusing to use the built-in development cluster (its keys are in the source) with {flag} {value}, which is not a loopback address: " +
                       "make a cluster with `engine cluster init DIR` and pass --cluster DIR/cluster.json --key DIR/NODE.key, or pass --allow-dev-config-on-network to accept the risk";
            }
        }
        return null;
    }

    /// <summary>Runs an async clean-up at the end of a scope.</summary>
    private sealed class AsyncDisposer(Func<Task> dispose) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync() => await dispose().ConfigureAwait(false);
    }
}
