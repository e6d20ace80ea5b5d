using System.Text.Json;
using Engine.Core.Ledger;
using Engine.Core.Server;
using Engine.Replication;
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
    private Phase _phase = new("starting", null, null, null);

    /// <summary>The node's recent log lines, numbered.</summary>
    public RecentLog Log { get; } = new(RecentLog.DefaultCapacity);

    public void Starting() => Volatile.Write(ref _phase, new Phase("starting", null, null, null));

    public void Following(BackupClient follower) => Volatile.Write(ref _phase, new Phase("backup", follower, null, null));

    public void Serving(EngineNode node, MirrorHub? hub) => Volatile.Write(ref _phase, new Phase(node.Role, null, node, hub));

    public Phase Current => Volatile.Read(ref _phase);

    private string? _haltReason;

    /// <summary>Why the node halted (its journal or pipeline failed), or null. It stays up to say so and serves nobody.</summary>
    public string? HaltReason => Volatile.Read(ref _haltReason);

    /// <summary>The node halted: its role reads "halted" from now on (a primary's node status stays, with the reason).</summary>
    public void Halted(string reason)
    {
        Volatile.Write(ref _haltReason, reason);
        Volatile.Write(ref _phase, Current with { Role = "halted" });
    }

    /// <summary>One phase of the process: a follower (backup) or a serving node (primary, standalone), never both.</summary>
    internal sealed record Phase(string Role, BackupClient? Follower, EngineNode? Node, MirrorHub? Hub);
}

/// <summary>
/// A bounded, numbered ring of log lines with their UTC times (milliseconds since the epoch). Written
/// only by pair events and start-up messages, never per order; read by <c>GET /log?after=N</c>.
/// </summary>
internal sealed class RecentLog(int capacity)
{
    public const int DefaultCapacity = 1024;

    private readonly (long Seq, long AtMs, string Text)[] _lines = new (long, long, string)[capacity];
    private long _next = 1;

    public void Add(string text)
    {
        long at = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        lock (_lines)
        {
            _lines[(int)(_next % _lines.Length)] = (_next, at, text);
            _next++;
        }
    }

    /// <summary>The lines numbered above <paramref name="after"/> still held (the oldest are overwritten), and the number the next line will get.</summary>
    public (List<(long Seq, long AtMs, string Text)> Lines, long Next) After(long after)
    {
        lock (_lines)
        {
            long from = Math.Max(after + 1, Math.Max(1, _next - _lines.Length));
            var lines = new List<(long, long, string)>((int)Math.Max(0, _next - from));
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
/// (also while the node is a backup): <c>GET /status</c>, <c>GET /log?after=N</c>,
/// <c>POST /admin/go-solo</c>.
/// </summary>
internal static class AdminEndpoint
{
    private static readonly JsonSerializerOptions s_json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = false };

    public static WebApplication Build(EngineSettings settings, NodeBoard board, string? peer, string? replicationListen, string? witness, OperatorLease operatorLease)
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls($"http://{settings.Admin}");
        WebApplication app = builder.Build();
        app.MapPost("/admin/go-solo", () =>
        {
            if (witness is not null)
            {
                return Results.Conflict("this node takes its solo lease from the witness");
            }
            operatorLease.Grant();
            return Results.Text("solo lease granted: this node acknowledges alone while no backup is in step\n");
        });
        // ?state=false leaves out the state checksum: it walks the whole book on the apply thread, too
        // much for a watcher that asks every few milliseconds (engine drill).
        app.MapGet("/status", async (bool? state) =>
        {
            NodeBoard.Phase phase = board.Current;
            NodeStatus? status = phase.Node?.Status();
            StateReport? report = null;
            if (phase.Node is { } node && state != false)
            {
                try
                {
                    report = await node.ProbeAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
                }
                catch (Exception e) when (e is TimeoutException or InvalidOperationException or ObjectDisposedException)
                {
                    // Busy or stopping: status without the state checksum.
                }
            }
            var head = phase.Follower?.Head;
            byte[] body = JsonSerializer.SerializeToUtf8Bytes(new
            {
                pid = Environment.ProcessId,
                role = phase.Role,
                halted = board.HaltReason is not null,
                halt_reason = board.HaltReason,
                epoch = phase.Hub?.Epoch ?? status?.Epoch ?? head?.Epoch, // a primary's: the one it seals in (above its head's right after a takeover)
                block = status?.Block ?? head?.BlockNo,
                lsn = status?.Lsn ?? head?.LastLsn,
                // Primary: a backup is following live; whose lease lets it acknowledge alone, and whether it
                // holds one (a witness's until given back, even if a renewal lapsed). Backup: following live.
                backup_in_step = phase.Hub?.IsConnected,
                lease = phase.Hub?.Lease switch { WitnessLease => "witness", OperatorLease => "operator", null => null, _ => "other" },
                solo_lease = phase.Hub?.Lease switch { WitnessLease w => w.Held || w.HolderAtWitness, { } other => other.Held, null => (bool?)null },
                in_step = phase.Follower?.InStep,
                listen = phase.Node?.ListenEndPoint.ToString() ?? settings.Listen,
                journal = Path.GetFullPath(settings.JournalDirectory),
                replication_listen = replicationListen,
                peer,
                witness,
                status,
                state = report is null ? null : new { lsn = report.LastLsn, checksum = report.Checksum.ToString(), open_orders = report.OpenOrders, trades = report.Trades },
            }, s_json);
            return Results.Bytes(body, "application/json");
        });
        app.MapGet("/log", (long? after) =>
        {
            (List<(long Seq, long AtMs, string Text)> lines, long next) = board.Log.After(after ?? 0);
            byte[] body = JsonSerializer.SerializeToUtf8Bytes(new
            {
                pid = Environment.ProcessId,
                next,
                lines = lines.Select(l => new { seq = l.Seq, at_ms = l.AtMs, text = l.Text }),
            }, s_json);
            return Results.Bytes(body, "application/json");
        });
        return app;
    }
}
