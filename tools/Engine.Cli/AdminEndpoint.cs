using System.Text.Json;
using Engine.Core.Journaling;
using Engine.Core.Ledger;
using Engine.Protocol;
using Engine.Core.Server;
using Engine.Replication;
using Engine.Replication.Pair;
using Engine.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Engine.Cli;

/// <summary>
/// What a running <c>engine serve</c> is, kept current across its role changes (starting, backup,
/// primary, stepping down), and its recent log lines: what the admin endpoint shows, so an operator
/// or <c>engine drill --attach</c> can follow a node it did not start.
/// </summary>
internal sealed class NodeBoard
{
    private volatile EngineNode? _standalone;
    private volatile PairHost? _pair;
    private string? _haltReason;

    /// <summary>The node's recent pair events, numbered.</summary>
    public RecentLog Log { get; } = new(RecentLog.DefaultCapacity);

    /// <summary>A standalone node serves.</summary>
    public void Standalone(EngineNode node) => _standalone = node;

    /// <summary>A pair node runs (whatever its role, now and later).</summary>
    public void Pair(PairHost host) => _pair = host;

    /// <summary>The pair node, or null (standalone, or not started yet).</summary>
    public PairHost? PairHost => _pair;

    /// <summary>The node's snapshots now (standalone, or the pair's node in whatever role), or null (off, or not started).</summary>
    public SnapshotTaker? Snapshots => _standalone?.Snapshots ?? _pair?.Snapshots;

    /// <summary>What the node's start-up (or its last reopening of the journal) recovered.</summary>
    public RecoveryReport? Recovery => _standalone?.Recovery ?? _pair?.Recovery;

    /// <summary>This node's configuration (its reference data is compared with the ledger's).</summary>
    public Engine.Core.Book.ReferenceData? Configured { get; init; }

    /// <summary>The ledger's reference data as this node has applied it, or null (not started).</summary>
    public Engine.Core.Book.ReferenceView? LedgerReference => _standalone?.LedgerReference ?? _pair?.LedgerReference;

    /// <summary>The node serving clients (standalone, or the pair's primary), or null.</summary>
    public EngineNode? Node => _standalone ?? _pair?.Serving;

    /// <summary>What the node is now: standalone, primary, primary (took over), backup, starting or halted.</summary>
    public string Role => HaltReason is not null ? "halted" : _pair is { } pair ? pair.State switch
    {
        PairState.Probing => "starting",
        PairState.Primary => pair.Serving?.Role ?? "starting",
        PairState.Halted => "halted",
        _ => "backup",
    } : _standalone?.Role ?? "starting";

    /// <summary>Why the node halted (its journal or pipeline failed), or null. It stays up to say so and serves nobody.</summary>
    public string? HaltReason => Volatile.Read(ref _haltReason) ?? (_pair is { State: PairState.Halted } pair ? pair.HaltReason : null);

    /// <summary>The node halted: its role reads "halted" from now on (a primary's node status stays, with the reason).</summary>
    public void Halted(string reason) => Volatile.Write(ref _haltReason, reason);
}

/// <summary>
/// A bounded, numbered ring of pair events with their UTC times (milliseconds since the epoch). Written
/// only by pair events and start-up notes, never per order; read by <c>GET /log?after=N</c>.
/// </summary>
internal sealed class RecentLog(int capacity)
{
    public const int DefaultCapacity = 1024;

    private readonly (long Seq, long AtMs, PairEvent Event)[] _lines = new (long, long, PairEvent)[capacity];
    private long _next = 1;

    public void Add(PairEvent pairEvent)
    {
        long at = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        lock (_lines)
        {
            _lines[(int)(_next % _lines.Length)] = (_next, at, pairEvent);
            _next++;
        }
    }

    /// <summary>The events numbered above <paramref name="after"/> still held (the oldest are overwritten), and the number the next one will get.</summary>
    public (List<(long Seq, long AtMs, PairEvent Event)> Lines, long Next) After(long after)
    {
        lock (_lines)
        {
            long from = Math.Max(after + 1, Math.Max(1, _next - _lines.Length));
            var lines = new List<(long, long, PairEvent)>((int)Math.Max(0, _next - from));
            for (long seq = from; seq < _next; seq++)
            {
                lines.Add(_lines[(int)(seq % _lines.Length)]);
            }
            return (lines, _next);
        }
    }
}

/// <summary>
/// The admin HTTP endpoint of <c>engine serve --admin</c>, up for the whole life of the process
/// (also while the node is a backup): <c>GET /status</c>, <c>GET /log?after=N</c>, <c>GET /reference</c>,
/// <c>POST /admin/go-solo?minutes=N</c>, <c>POST /admin/snapshot</c>, <c>POST /admin/ledger/VERB?…</c>
/// (<see cref="LedgerVerbs"/>: the reference data and the market, as admin transactions in the ledger).
/// </summary>
/// <remarks>
/// Every verb that changes anything (today: go-solo) needs an operator's signature
/// (<see cref="AdminAuthorization"/>, checked by <see cref="AdminRequestVerifier"/> against the
/// cluster's roster): 401 without a valid one, 403 for a principal that is no operator. The GETs
/// stay open: they change nothing, the drill and an operator's dashboard poll them every few
/// milliseconds (a signature per poll would cost an Ed25519 verification each), and what they show
/// (role, epoch, counters, pair events) is what a peer of the pair sees anyway; they show no order,
/// key or token. Bounded like every listener: connections, request line, headers and body, and the
/// time a client may take to send its headers.
/// </remarks>
internal static class AdminEndpoint
{
    /// <summary>Connections at once: the drill and an operator need a handful.</summary>
    public const int MaxConnections = 32;

    /// <summary>The largest request body (go-solo and snapshot have none).</summary>
    public const int MaxBodyBytes = 4096;

    /// <summary>How long <c>POST /admin/snapshot</c> waits for the snapshot before answering 503.</summary>
    public const int SnapshotTimeoutSeconds = 120;

    /// <summary>How long <c>POST /admin/ledger/VERB</c> waits for its transactions to be applied (in a pair: the backup's acknowledgement included).</summary>
    public const int LedgerVerbTimeoutSeconds = 30;

    /// <summary>Default and bounds of a run-time go-solo lease (<c>?minutes=N</c>).</summary>
    public const int GoSoloDefaultMinutes = 10, GoSoloMaxMinutes = 24 * 60;

    /// <summary>
    /// How the endpoint writes JSON, and how its readers (<see cref="NodeStatusReport.Parse"/>) read it: snake_case names;
    /// every constructor parameter present and non-nullable ones not null, so a reader finds out at once when
    /// something that is no engine node (or a node of an incompatible version) answered.
    /// </summary>
    internal static JsonSerializerOptions Json { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = false,
        RespectNullableAnnotations = true,
        RespectRequiredConstructorParameters = true,
    };

    /// <param name="settings">The node's settings (its --admin endpoint, journal, client port).</param>
    /// <param name="board">What the node is now, and its recent log lines.</param>
    /// <param name="peer">The node's --peer, shown in /status.</param>
    /// <param name="replicationListen">The node's --replication-listen, shown in /status.</param>
    /// <param name="witness">The node's --witness: go-solo is refused where a witness gives the lease.</param>
    /// <param name="roster">The cluster whose operators may change anything here.</param>
    /// <param name="say">Where grants and refusals are told (the node's log); null: only the board's recent events.</param>
    /// <param name="allowDevelopmentOnNetwork">Serve with the development cluster (whose operator key everyone knows) on a non-loopback address.</param>
    /// <exception cref="ArgumentException">The endpoint is not HOST:PORT, or the development cluster would serve off loopback without <paramref name="allowDevelopmentOnNetwork"/>.</exception>
    public static WebApplication Build(EngineSettings settings, NodeBoard board, string? peer, string? replicationListen, string? witness,
        ClusterRoster roster, Action<PairEvent>? say = null, bool allowDevelopmentOnNetwork = false)
    {
        say ??= board.Log.Add;
        System.Net.IPEndPoint at = EngineSettings.ParseEndpoint(settings.Admin!, "--admin");
        if (roster.IsDevelopment && !allowDevelopmentOnNetwork && !System.Net.IPAddress.IsLoopback(at.Address))
        {
            throw new ArgumentException($"--admin {settings.Admin}: with the development cluster (no --cluster/--key) anyone could sign its admin verbs (the operator's key is in the source): "
                + "loopback only. Make a cluster with `engine cluster init DIR`, or allow it explicitly for a test network");
        }
        // No configuration file is read, and none is watched: by default the host watches its content root
        // (the working directory, where an operator's --data often is) recursively for appsettings changes,
        // and every journal commit then costs a file-watcher wake-up (measured: a third of a core at 1k orders/s).
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            Args = ["--hostBuilder:reloadConfigOnChange=false"],
            ContentRootPath = AppContext.BaseDirectory,
        });
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls($"http://{settings.Admin}");
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxConcurrentConnections = MaxConnections;
            kestrel.Limits.MaxConcurrentUpgradedConnections = 0;
            kestrel.Limits.MaxRequestBodySize = MaxBodyBytes;
            kestrel.Limits.MaxRequestLineSize = 2048;
            kestrel.Limits.MaxRequestHeaderCount = 32;
            kestrel.Limits.MaxRequestHeadersTotalSize = 8192;
            kestrel.Limits.RequestHeadersTimeout = TimeSpan.FromSeconds(5);
            kestrel.Limits.KeepAliveTimeout = TimeSpan.FromSeconds(30);
        });
        WebApplication app = builder.Build();
        var verifier = new AdminRequestVerifier(roster, settings.Admin!);
        ulong phaseEpoch() => board.PairHost?.Epoch ?? 0;
        var refusals = new RefusalLog(line => say(new PairEvent(PairEventKind.Refused, line)), "admin endpoint");
        app.MapPost("/admin/go-solo", async (HttpContext http) =>
        {
            (IResult? refused, string? signer) = await CheckOperatorAsync(http, verifier, refusals).ConfigureAwait(false);
            if (refused is not null)
            {
                return refused;
            }
            if (witness is not null)
            {
                return Results.Conflict("this node takes its solo lease from the witness\n");
            }
            if (board.PairHost is not { } pair)
            {
                return Results.Conflict("this node is no pair's node: it needs no solo lease\n");
            }
            string? asked = http.Request.Query["minutes"];
            int minutes = GoSoloDefaultMinutes;
            if (asked is not null && (!int.TryParse(asked, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out minutes)
                || minutes is < 1 or > GoSoloMaxMinutes))
            {
                return Results.BadRequest($"minutes must be 1 to {GoSoloMaxMinutes}\n");
            }
            pair.GrantOperatorLease(TimeProvider.System.GetTimestamp() + (minutes * 60 * TimeProvider.System.TimestampFrequency));
            DateTime until = DateTime.UtcNow.AddMinutes(minutes);
            say(new PairEvent(PairEventKind.LeaseGranted, $"solo lease granted by the operator {signer} for {minutes} min (until {until:HH:mm:ss} UTC)", phaseEpoch()));
            return Results.Text($"solo lease granted for {minutes} min, until {until:yyyy-MM-ddTHH:mm:ss}Z: this node acknowledges alone while no backup is in step; "
                + "after that it answers \"no backup\" again unless the operator repeats go-solo\n");
        });
        app.MapPost("/admin/snapshot", async (HttpContext http) =>
        {
            (IResult? refused, string? signer) = await CheckOperatorAsync(http, verifier, refusals).ConfigureAwait(false);
            if (refused is not null)
            {
                return refused;
            }
            if (board.Snapshots is not { } snapshots)
            {
                return Results.Conflict("snapshots are off on this node (SnapshotEveryBlocks and SnapshotEverySeconds are 0), or it is not started yet\n");
            }
            try
            {
                ulong block = await snapshots.RequestAsync().WaitAsync(TimeSpan.FromSeconds(SnapshotTimeoutSeconds), http.RequestAborted).ConfigureAwait(false);
                say(PairEvent.Note($"snapshot after block {block} asked by the operator {signer}"));
                return Results.Text($"snapshot after block {block}: {snapshots.Status.LastBytes:N0} bytes\n");
            }
            catch (Exception e) when (e is TimeoutException or InvalidOperationException or IOException or UnauthorizedAccessException)
            {
                return Results.Text($"no snapshot: {e.Message}\n", statusCode: StatusCodes.Status503ServiceUnavailable);
            }
        });
        app.MapPost("/admin/ledger/{verb}", async (HttpContext http, string verb) =>
        {
            (IResult? refused, string? signer) = await CheckOperatorAsync(http, verifier, refusals).ConfigureAwait(false);
            if (refused is not null)
            {
                return refused;
            }
            if (http.Request.Query.FirstOrDefault(q => q.Value.Count != 1) is { Key: { } twice })
            {
                return Results.BadRequest($"{twice} is given {http.Request.Query[twice].Count} times\n");
            }
            (Transaction[]? transactions, string? error) = LedgerVerbs.Parse(verb, http.Request.Query.ToDictionary(q => q.Key, q => q.Value[0]!));
            if (transactions is null)
            {
                return Results.BadRequest($"{error}\n");
            }
            if (board.Node is not { } node)
            {
                return Results.Conflict("this node serves no clients now (a backup, starting or halted): send it to the primary's admin endpoint\n");
            }
            try
            {
                IReadOnlyList<AdminOutcome> outcomes = await node.SubmitAdminAsync(transactions, TimeSpan.FromSeconds(LedgerVerbTimeoutSeconds)).ConfigureAwait(false);
                say(PairEvent.Note($"the operator {signer}: {string.Join("; ", outcomes)}"));
                string text = string.Join("\n", outcomes) + "\n";
                return outcomes.All(o => o.Accepted) ? Results.Text(text) : Results.Text(text, statusCode: StatusCodes.Status409Conflict);
            }
            catch (InvalidOperationException e)
            {
                return Results.Text($"not taken: {e.Message}\n", statusCode: StatusCodes.Status503ServiceUnavailable);
            }
            catch (TimeoutException)
            {
                return Results.Text($"sealed, and not confirmed applied within {LedgerVerbTimeoutSeconds} s: see GET /reference before repeating it\n", statusCode: StatusCodes.Status503ServiceUnavailable);
            }
        });
        app.MapGet("/reference", () => board.LedgerReference is { } ledger
            ? Results.Bytes(ReferenceReport.Of(ledger, board.Configured).ToJsonUtf8(), "application/json")
            : Results.Text("not started yet\n", statusCode: StatusCodes.Status503ServiceUnavailable));
        // ?state=false leaves out the state checksum: it walks the whole book on the apply thread, too
        // much for a watcher that asks every few milliseconds (engine drill).
        app.MapGet("/status", async (bool? state) =>
        {
            EngineNode? serving = board.Node;
            PairHost? pair = board.PairHost;
            NodeStatus? status = serving?.Status();
            StateReport? probed = null;
            if (serving is not null && state != false)
            {
                try
                {
                    probed = await serving.ProbeAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
                }
                catch (Exception e) when (e is TimeoutException or InvalidOperationException or ObjectDisposedException)
                {
                    // Busy or stopping: status without the state checksum.
                }
            }
            PairHost? primary = serving is null ? null : pair; // a pair's node that serves is its primary
            PairHost? follower = serving is null ? pair : null;
            Engine.Core.Chain.ChainHead? head = follower?.Head;
            var report = new NodeStatusReport(
                Pid: Environment.ProcessId,
                Role: board.Role,
                Halted: board.HaltReason is not null,
                HaltReason: board.HaltReason,
                Epoch: pair?.Epoch ?? status?.Epoch, // a primary's: the one it seals in (above its head's right after a takeover); a backup's: its primary's
                Block: status?.Block ?? head?.BlockNo,
                Lsn: status?.Lsn ?? head?.LastLsn,
                // Primary: a backup is following live; whose lease lets it acknowledge alone, and whether it
                // holds one (a witness's until given back, even if a renewal lapsed). Backup: following live.
                BackupInStep: primary?.BackupInStep,
                Lease: primary?.LeaseSource switch { LeaseSource.Witness => "witness", LeaseSource.Operator => "operator", _ => null },
                SoloLease: primary?.SoloLease,
                // A run-time go-solo's remaining time (ms); null when there is none or --allow-solo holds for good.
                SoloLeaseMsLeft: primary?.SoloLeaseLeft is { } left ? (long)left.TotalMilliseconds : null,
                InStep: follower?.InStep,
                Listen: serving?.ListenEndPoint.ToString() ?? settings.Listen,
                Journal: Path.GetFullPath(settings.JournalDirectory),
                ReplicationListen: replicationListen,
                Peer: peer,
                Witness: witness,
                Status: status,
                State: probed is null ? null : new NodeStateSummary(probed.LastLsn, probed.Checksum.ToString(), probed.OpenOrders, probed.Trades),
                Snapshots: board.Snapshots?.Status,
                Recovery: board.Recovery,
                BackupRoundTrip: primary?.BackupRoundTrip,
                Ledger: settings.Signing is { } signing ? new LedgerSigningStatus(Convert.ToHexStringLower(signing.PublicKey), serving?.SignedHead?.TreeSize,
                    serving?.SignedHead?.Root.ToString(), serving?.SignedHead?.TimestampNs, serving?.SignedHead is { } signed ? Convert.ToHexStringLower(signed.Signature) : null,
                    serving?.SignedHead is { } whole ? Convert.ToHexStringLower(whole.ToBytes()) : null) : null);
            return Results.Bytes(report.ToJsonUtf8(), "application/json");
        });
        app.MapGet("/log", (long? after) =>
        {
            (List<(long Seq, long AtMs, PairEvent Event)> lines, long next) = board.Log.After(after ?? 0);
            var page = new PairLogPage(Environment.ProcessId, next,
                [.. lines.Select(l => new PairLogLine(l.Seq, l.AtMs, PairEvent.Name(l.Event.Kind), l.Event.Epoch, l.Event.BlockNo, l.Event.Text))]);
            return Results.Bytes(page.ToJsonUtf8(), "application/json");
        });
        return app;
    }

    /// <summary>
    /// No refusal (and the operator's name) when the request carries a fresh operator's signature over exactly this request; else the
    /// refusal to send (401, 403 or 503 with the reason), logged at most once a second per source.
    /// </summary>
    private static async Task<(IResult? Refused, string? Operator)> CheckOperatorAsync(HttpContext http, AdminRequestVerifier verifier, RefusalLog refusals)
    {
        byte[] body;
        try
        {
            // Bounded by Kestrel's MaxRequestBodySize: a larger body fails the read.
            using var buffer = new MemoryStream();
            await http.Request.Body.CopyToAsync(buffer, http.RequestAborted).ConfigureAwait(false);
            body = buffer.ToArray();
        }
        catch (BadHttpRequestException e)
        {
            refusals.Refused(Remote(http), e.Message);
            return (Results.StatusCode(e.StatusCode), null);
        }
        string pathAndQuery = http.Request.Path.Value + http.Request.QueryString.Value;
        string? host = http.Request.Headers.Host.Count == 1 ? http.Request.Headers.Host[0] : null;
        string? authorization = http.Request.Headers.Authorization.Count == 1 ? http.Request.Headers.Authorization[0] : null;
        AdminCheck check = verifier.Check(authorization, http.Request.Method, host, pathAndQuery, body, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        if (check is AdminCheck.Allowed allowed)
        {
            return (null, allowed.Operator.Name);
        }
        (int status, string reason) = check switch
        {
            AdminCheck.Unauthenticated u => (StatusCodes.Status401Unauthorized, u.Reason),
            AdminCheck.Forbidden f => (StatusCodes.Status403Forbidden, f.Reason),
            AdminCheck.Busy b => (StatusCodes.Status503ServiceUnavailable, b.Reason),
            _ => (StatusCodes.Status401Unauthorized, "refused"),
        };
        refusals.Refused(Remote(http), $"{http.Request.Method} {http.Request.Path}: {reason}");
        if (status == StatusCodes.Status401Unauthorized)
        {
            http.Response.Headers.WWWAuthenticate = AdminAuthorization.Scheme;
        }
        return (Results.Text($"{reason}\n", statusCode: status), null);
    }

    private static System.Net.IPEndPoint? Remote(HttpContext http) =>
        http.Connection.RemoteIpAddress is { } address ? new System.Net.IPEndPoint(address, http.Connection.RemotePort) : null;
}
