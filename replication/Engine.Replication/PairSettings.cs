using Engine.Core.Server;

namespace Engine.Replication;

/// <summary>What a node is in its pair when it starts.</summary>
public enum PairRole
{
    /// <summary>No pair: the node acknowledges what its own journal holds.</summary>
    Standalone,

    /// <summary>Waits for a backup, mirrors every block to it, acknowledges only what both hold.</summary>
    Primary,

    /// <summary>Follows the primary at <see cref="PairSettings.Peer"/> and takes over when it is gone.</summary>
    Backup,
}

/// <summary>
/// The pair's settings, section <c>Pair</c> of the configuration (<c>--role</c>, <c>--peer</c>,
/// <c>--replication-listen</c>, <c>--witness</c>, <c>--allow-solo</c> set the same keys), and its
/// clocks in one place, checked against each other by <see cref="Validate"/>:
/// a side that has sent nothing for <see cref="HeartbeatMs"/> sends a heartbeat; a side that has heard
/// nothing for <see cref="SilenceMs"/> drops the link (the backup then takes over; the primary stops
/// acknowledging). Silence must be several heartbeats long, so that one late packet is not a failover,
/// and short enough that a stalled primary (a long GC pause, a SIGSTOP) is replaced within a second.
/// </summary>
public sealed record PairSettings
{
    public PairRole Role { get; init; } = PairRole.Standalone;

    /// <summary>Backup: HOST:PORT of the primary's replication endpoint. Primary: the other node's, asked whether it took over.</summary>
    public string? Peer { get; init; }

    /// <summary>HOST:PORT where this node, as primary, takes its backup.</summary>
    public string? ReplicationListen { get; init; }

    /// <summary>HOST:PORT of an <c>engine witness</c>: the solo lease comes from it.</summary>
    public string? Witness { get; init; }

    /// <summary>The operator's solo lease from the start: acknowledge while no backup is in step.</summary>
    public bool AllowSolo { get; init; }

    /// <summary>A side that has sent nothing for this long sends a heartbeat.</summary>
    public int HeartbeatMs { get; init; } = 50;

    /// <summary>A side that has heard nothing for this long drops the link (the backup takes over).</summary>
    public int SilenceMs { get; init; } = 500;

    /// <summary>How long a backup waits for the primary's answer to its hello: generous, as the primary
    /// looks for the backup's head in its journal first (a scan from genesis on a long journal).</summary>
    public int HelloAnswerMs { get; init; } = 5_000;

    /// <summary>A witness's lease is acted on for its length less this much (the ask's own travel time
    /// and clock drift between node and witness): a grant no longer than this is worth nothing.</summary>
    public int LeaseMarginMs { get; init; } = 150;

    /// <summary>A primary without a backup in step asks its peer this often whether it took over.</summary>
    public int PeerProbeMs { get; init; } = 500;

    /// <summary>How long such a probe waits for the peer's answer.</summary>
    public int PeerProbeTimeoutMs { get; init; } = 1_000;

    /// <summary>A backup whose socket accepts nothing for this long is dropped (it holds the single slot).</summary>
    public int MaxSendBlockedMs => 4 * SilenceMs;

    /// <summary>A connection that has not said hello within this long is closed.</summary>
    public int HelloWaitMs => 4 * SilenceMs;

    /// <summary>The settings, or an exception that names what is wrong and why.</summary>
    public PairSettings Validate()
    {
        if (!Enum.IsDefined(Role))
        {
            throw new ArgumentException($"--role: '{Role}' is not standalone, primary or backup");
        }
        if (HeartbeatMs < 1)
        {
            throw Refused(nameof(HeartbeatMs), HeartbeatMs, "at least 1 ms");
        }
        if (SilenceMs < 3 * HeartbeatMs)
        {
            throw Refused(nameof(SilenceMs), SilenceMs, $"at least three heartbeats ({3 * HeartbeatMs} ms), or one late packet is a failover");
        }
        if (HelloAnswerMs < SilenceMs)
        {
            throw Refused(nameof(HelloAnswerMs), HelloAnswerMs, $"at least the silence ({SilenceMs} ms)");
        }
        if (LeaseMarginMs < 0 || LeaseMarginMs >= SilenceMs)
        {
            throw Refused(nameof(LeaseMarginMs), LeaseMarginMs, $"0 to less than the silence ({SilenceMs} ms): the lease is the primary's licence to acknowledge alone, its margin cannot outlast a failover");
        }
        if (PeerProbeMs < 1 || PeerProbeTimeoutMs < 1)
        {
            throw Refused(PeerProbeMs < 1 ? nameof(PeerProbeMs) : nameof(PeerProbeTimeoutMs), Math.Min(PeerProbeMs, PeerProbeTimeoutMs), "at least 1 ms");
        }
        if (Role == PairRole.Standalone)
        {
            if (Peer is not null || Witness is not null || AllowSolo)
            {
                throw new ArgumentException("--peer, --witness and --allow-solo belong to a pair: give --role primary or backup");
            }
            return this;
        }
        if (ReplicationListen is null || (Role == PairRole.Backup && Peer is null))
        {
            throw new ArgumentException("--role primary needs --replication-listen; --role backup needs --peer and --replication-listen");
        }
        if (Witness is not null && AllowSolo)
        {
            throw new ArgumentException("--witness and --allow-solo are two sources of the solo lease: give one");
        }
        EngineSettings.ParseEndpoint(ReplicationListen, "--replication-listen");
        if (Peer is not null)
        {
            EngineSettings.ParseEndpoint(Peer, "--peer");
        }
        if (Witness is not null)
        {
            EngineSettings.ParseEndpoint(Witness, "--witness");
        }
        return this;
    }

    private static ArgumentException Refused(string name, int value, string why) => new($"Pair:{name} = {value}: {why}");
}
