using System.Text.Json;
using System.Text.Json.Serialization;
using Engine.Core.Server;

namespace Engine.Cli;

/// <summary>
/// What a node's <c>GET /status</c> answers: the admin endpoint writes it, and the drill
/// (<c>engine drill --attach</c>) and the tests read it, so no reader names a field by hand. The JSON
/// names are the properties' in snake_case (<see cref="AdminEndpoint.Json"/>), and tools outside the
/// project read them: renaming a property renames a field.
/// </summary>
/// <param name="Pid">The node's process id (a restarted node has another).</param>
/// <param name="Role"><c>starting</c>, <c>backup</c>, <c>primary</c>, <c>primary (took over)</c>, <c>standalone</c> or <c>halted</c>.</param>
/// <param name="Halted">The node halted (its journal or pipeline failed): it serves nobody and never takes over.</param>
/// <param name="HaltReason">Why it halted, or null.</param>
/// <param name="Epoch">A primary's epoch (the one it seals in: above its head's right after a takeover), a backup's head's; null while starting.</param>
/// <param name="Block">The last block in the journal (a backup's head).</param>
/// <param name="Lsn">The last transaction in the journal (a backup's head).</param>
/// <param name="BackupInStep">Primary: a backup is following live; null on a backup.</param>
/// <param name="Lease">Primary: whose solo lease lets it acknowledge alone (<c>witness</c>, <c>operator</c>); null on a backup.</param>
/// <param name="SoloLease">Primary: it holds the solo lease (a witness's until given back, even if a renewal lapsed).</param>
/// <param name="SoloLeaseMsLeft">A run-time go-solo's remaining time (ms); null when there is none or --allow-solo holds for good.</param>
/// <param name="InStep">Backup: following live; null on a primary.</param>
/// <param name="Listen">The client port.</param>
/// <param name="Journal">The journal's directory, absolute.</param>
/// <param name="ReplicationListen">The node's --replication-listen.</param>
/// <param name="Peer">The node's --peer.</param>
/// <param name="Witness">The node's --witness.</param>
/// <param name="Status">While the node serves (primary, standalone, halted primary): its counters.</param>
/// <param name="State">The state checksum, probed through the ring; null with <c>?state=false</c>, while not serving, or when the probe timed out.</param>
/// <param name="Snapshots">The node's snapshots (<c>snapshot_block</c>: the newest one's block), in any role; null when off or not started.</param>
/// <param name="Recovery">What the node's start-up (or its last reopening of the journal, after a step-down) recovered: from which snapshot, what was replayed, how long it took.</param>
/// <param name="Ledger">The ledger key's public key this node signs heads with, and (while it serves) the newest signed head; null when it signs none.</param>
/// <param name="BackupRoundTrip">A pair's primary, since its start: from sending a live block to the backup to the backup's acknowledgement; null otherwise. (The server's whole share of a client's latency is <c>status.receive_to_answer</c>.)</param>
internal sealed record NodeStatusReport(
    int Pid,
    string Role,
    bool Halted,
    string? HaltReason,
    ulong? Epoch,
    ulong? Block,
    ulong? Lsn,
    bool? BackupInStep,
    string? Lease,
    bool? SoloLease,
    long? SoloLeaseMsLeft,
    bool? InStep,
    string Listen,
    string Journal,
    string? ReplicationListen,
    string? Peer,
    string? Witness,
    NodeStatus? Status,
    NodeStateSummary? State,
    Engine.Core.Journaling.SnapshotStatus? Snapshots,
    RecoveryReport? Recovery,
    LatencySummary? BackupRoundTrip,
    LedgerSigningStatus? Ledger)
{
    /// <summary>Primary, from the start or after a takeover.</summary>
    [JsonIgnore]
    public bool IsPrimary => Role.StartsWith("primary", StringComparison.Ordinal);

    /// <summary>A primary with a backup in step and no witness's lease still held (the backup could not take over); the operator's lease does not count.</summary>
    [JsonIgnore]
    public bool Whole => IsPrimary && BackupInStep == true && !(Lease == "witness" && SoloLease == true);

    /// <summary>Where clients reach it: a wildcard listen address is reached on the loopback.</summary>
    [JsonIgnore]
    public string ClientEndpoint => Listen.StartsWith("0.0.0.0:", StringComparison.Ordinal) ? $"127.0.0.1:{Listen[8..]}"
        : Listen.StartsWith("[::]:", StringComparison.Ordinal) ? $"[::1]:{Listen[5..]}" : Listen;

    /// <summary>The body of <c>GET /status</c>.</summary>
    public byte[] ToJsonUtf8() => JsonSerializer.SerializeToUtf8Bytes(this, AdminEndpoint.Json);

    /// <summary>Reads a body of <c>GET /status</c>; every field must be there (null where it does not apply).</summary>
    /// <exception cref="JsonException">It is not one.</exception>
    public static NodeStatusReport Parse(string json) =>
        JsonSerializer.Deserialize<NodeStatusReport>(json, AdminEndpoint.Json) ?? throw new JsonException("null instead of a node's status");

    /// <summary>GET /status of the node whose admin endpoint is <paramref name="admin"/> (HOST:PORT), with the state checksum if <paramref name="state"/>.</summary>
    /// <exception cref="HttpRequestException">No answer.</exception>
    /// <exception cref="InvalidOperationException">An answer, but not an engine node's status.</exception>
    public static async Task<NodeStatusReport> GetAsync(HttpClient http, string admin, bool state, CancellationToken cancel)
    {
        string body = await http.GetStringAsync(new Uri($"http://{admin}/status{(state ? "" : "?state=false")}"), cancel).ConfigureAwait(false);
        try
        {
            return Parse(body);
        }
        catch (JsonException e)
        {
            throw new InvalidOperationException($"{admin} did not answer like an engine node's admin endpoint ({e.Message})", e);
        }
    }
}

/// <summary>The state checksum in <c>/status</c>: after which transaction, the book's checksum, its open orders and trades so far.</summary>
internal sealed record NodeStateSummary(ulong Lsn, string Checksum, int OpenOrders, ulong Trades);

/// <summary>
/// The ledger's signing in <c>/status</c>: the public key that checks this cluster's inclusion proofs
/// (<c>engine proof verify --key</c>), and the newest head the node signed (null before the first, or
/// while it does not serve); <c>head</c> is that head whole, in hex, as an auditor keeps it for
/// <c>engine log consistency --old-head</c>.
/// </summary>
internal sealed record LedgerSigningStatus(string PublicKey, long? HeadTreeSize, string? HeadRoot, long? HeadTimestampNs, string? HeadSignature, string? Head = null);
