using Engine.Core.Ledger;
using System.Net;
using Engine.Core.Journaling;

namespace Engine.Core.Server;

/// <summary>
/// Everything one engine node is configured by, with documented defaults; bound from flags,
/// environment (<c>ENGINE_…</c>) and a JSON file by <c>engine serve</c>, validated once, printed at start-up.
/// </summary>
public sealed record EngineSettings
{
    /// <summary>The node's data directory: the journal lives in <c>DATA/journal</c>.</summary>
    public string Data { get; init; } = "";

    /// <summary>Where trading front-ends connect (HOST:PORT).</summary>
    public string Listen { get; init; } = "127.0.0.1:7400";

    /// <summary>The admin HTTP endpoint (HOST:PORT) for /status; empty for none.</summary>
    public string Admin { get; init; } = "";

    /// <summary>When a block counts as journaled: memory (default) or disk.</summary>
    public Durability Durability { get; init; } = Durability.Memory;

    /// <summary>Inbound ring slots. Default 65,536.</summary>
    public int RingSize { get; init; } = 1 << 16;

    /// <summary>Outbound ring slots (replies and execution reports). Default 131,072: a transaction makes a reply and up to a few reports.</summary>
    public int OutboundRingSize { get; init; } = 1 << 17;

    /// <summary>How pipeline threads wait: adaptive (default), yielding, blocking or busy-spin.</summary>
    public string WaitStrategy { get; init; } = "adaptive";

    /// <summary>
    /// How the inbound handlers sit on threads: single (default: all on one thread, the fewest
    /// hand-overs, for a box with two cores), fused (validate+seal, journal+apply) or separate.
    /// </summary>
    public Ledger.StageTopology Topology { get; init; } = Ledger.StageTopology.Single;

    /// <summary>
    /// The apply thread hands each batch's answers to the sessions itself (a non-blocking send per
    /// client per batch) instead of through the outbound ring and its dispatch thread: one thread
    /// hand-over less per order. Default true (docs/benchmarks.md, "The order path's hand-overs and the CPU a quiet pair burnt").
    /// </summary>
    public bool DispatchOnApplyThread { get; init; } = true;

    /// <summary>
    /// In a pair, both nodes compute the state checksum after every block whose number is a multiple
    /// of this, and after the first block of each <see cref="ChecksumEverySeconds"/> window (by the
    /// blocks' timestamps, see <see cref="ChecksumCadence"/>), and the primary sends its own; a mismatch
    /// stops the backup. Default 1,000,000 blocks: at moderate rates a block holds about one order,
    /// and a count alone would walk the whole state every second or so; the time window bounds it.
    /// </summary>
    public int ChecksumEveryBlocks { get; init; } = 1_000_000;

    /// <summary>The state checksum's window of time (see <see cref="ChecksumEveryBlocks"/>). Default 5 s; 0: by block count only.</summary>
    public int ChecksumEverySeconds { get; init; } = 5;

    /// <summary>When the pair's state checksum is due.</summary>
    public ChecksumCadence Checksums() => new((ulong)ChecksumEveryBlocks, ChecksumEverySeconds * 1_000_000_000L);

    /// <summary>
    /// How often the records-root builder reads the newly committed blocks and hands the root of their
    /// records to the sealer (the Merkle roots inclusion proofs rest on, docs/ledger-format.md).
    /// Default 10 ms; 0: no roots (the blocks carry none).
    /// </summary>
    public int RecordsRootIntervalMs { get; init; } = 10;

    /// <summary>
    /// How often the primary signs the ledger's head (the root of the tree of every block hash) with
    /// the ledger key, when blocks arrived since the last. Default 1,000 ms; 0: no heads. Needs
    /// <see cref="Signing"/> (the ledger key): without it no heads are signed.
    /// </summary>
    public int SignedHeadIntervalMs { get; init; } = 1000;

    /// <summary>
    /// The cluster's ledger key, loaded by the command that starts the node (<c>--ledger-key</c>, or
    /// the development cluster's); null: the node signs no heads. Not a configuration value: the
    /// command sets it after reading the configuration, over anything bound to it.
    /// </summary>
    public Ledger.HeadSigning? Signing { get; init; }

    /// <summary>Transactions per block at most. Default 1,000 (64 KiB of records).</summary>
    public int MaxTransactionsPerBlock { get; init; } = 1000;

    /// <summary>Requests a client may have in the engine without an answer; more are answered "busy". Default 1,024 (at most the dedupe window).</summary>
    public int MaxInFlightPerClient { get; init; } = 1024;

    /// <summary>Bytes of replies a session may have waiting to be sent; a client that reads slower is disconnected. Default 4 MiB.</summary>
    public int MaxOutboundBytesPerSession { get; init; } = 4 << 20;

    /// <summary>Logged-on sessions at once; a logon past it is answered "unavailable". Default 1,024. (Connections that have not logged on yet are bounded by <see cref="GatewaySettings.MaxPendingLogons"/>.)</summary>
    public int MaxSessions { get; init; } = 1024;

    /// <summary>The client port's defences, TLS and the other node's endpoint (section <c>Gateway</c>).</summary>
    public GatewaySettings Gateway { get; init; } = new();

    /// <summary>How long a connection may take to log on. Default 5 s.</summary>
    public int LogonTimeoutMs { get; init; } = 5000;

    /// <summary>How long a shutdown lets the pipeline drain. Default 10 s.</summary>
    public int DrainTimeoutMs { get; init; } = 10_000;

    /// <summary>
    /// A snapshot of the state after every block whose number is a multiple of this (both nodes of
    /// a pair take theirs at the same blocks, so their checksums compare). Default 100,000 blocks
    /// (at moderate rates a block holds about one order); 0: not by blocks.
    /// </summary>
    public long SnapshotEveryBlocks { get; init; } = 100_000;

    /// <summary>A snapshot when this many seconds have passed since the last one and blocks came since. Default 60 (at high rates blocks are large: this bounds the replay by time); 0: not by time.</summary>
    public int SnapshotEverySeconds { get; init; } = 60;

    /// <summary>Snapshots kept (the newest); older ones are deleted. Default 3. Recovery falls back to an older one when the newest does not verify.</summary>
    public int SnapshotRetain { get; init; } = 3;

    /// <summary>
    /// What becomes of the journal's blocks before the oldest retained snapshot (once <see cref="SnapshotRetain"/>
    /// exist): <c>archive</c> (default: moved to our own verifiable block files in DATA/journal/archive, so
    /// the chain from genesis can still be verified and audited, and the journal's disk is bounded by
    /// retention plus one segment), <c>delete</c> (disk bounded by retention), <c>keep</c> (the journal grows).
    /// </summary>
    public JournalRetention JournalRetention { get; init; } = JournalRetention.Archive;

    public string JournalDirectory => Path.Combine(Data, "journal");

    /// <summary>The snapshots' directory, inside the journal's (so a journal set aside takes its snapshots with it).</summary>
    public string SnapshotDirectory => Path.Combine(JournalDirectory, "snapshots");

    /// <summary>The snapshot store and schedule these settings describe; null when snapshots are off (both intervals 0).</summary>
    public SnapshotSchedule? Snapshots() => SnapshotEveryBlocks == 0 && SnapshotEverySeconds == 0
        ? null
        : new SnapshotSchedule(new SnapshotStore(SnapshotDirectory, SnapshotRetain), (ulong)SnapshotEveryBlocks, TimeSpan.FromSeconds(SnapshotEverySeconds))
        {
            Retention = JournalRetention,
            Archive = JournalRetention == JournalRetention.Archive ? BlockArchive.Of(JournalDirectory) : null,
        };

    public EngineSettings Validate()
    {
        if (string.IsNullOrWhiteSpace(Data))
        {
            throw new ArgumentException("--data is required: the node's data directory");
        }
        ParseEndpoint(Listen, nameof(Listen));
        if (!string.IsNullOrEmpty(Admin))
        {
            ParseEndpoint(Admin, nameof(Admin));
        }
        Ring.WaitStrategy.Parse(WaitStrategy);
        Ring.RingSettings.CheckSize(RingSize);
        Ring.RingSettings.CheckSize(OutboundRingSize);
        // Every request makes one reply plus reports: the outbound ring must hold at least a full inbound ring's replies.
        if (OutboundRingSize < RingSize)
        {
            throw new ArgumentOutOfRangeException(nameof(OutboundRingSize), OutboundRingSize, $"must be at least the inbound ring ({RingSize})");
        }
        // A client's in-flight requests must fit the dedupe window: a client that reconnects resends
        // all of them, and each must still find its original outcome there.
        if (MaxInFlightPerClient < 1 || MaxInFlightPerClient > Book.Exchange.DedupeWindow)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxInFlightPerClient), MaxInFlightPerClient, $"1 to {Book.Exchange.DedupeWindow} (the dedupe window)");
        }
        if (MaxOutboundBytesPerSession < 64 * 1024)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxOutboundBytesPerSession), MaxOutboundBytesPerSession, "at least 64 KiB");
        }
        if (SignedHeadIntervalMs is < 0 or > 3_600_000)
        {
            throw new ArgumentOutOfRangeException(nameof(SignedHeadIntervalMs), SignedHeadIntervalMs, "0 (no heads) to 3,600,000 ms");
        }
        if (RecordsRootIntervalMs is < 0 or > 60_000)
        {
            throw new ArgumentOutOfRangeException(nameof(RecordsRootIntervalMs), RecordsRootIntervalMs, "0 (no roots) to 60,000 ms");
        }
        if (ChecksumEveryBlocks < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(ChecksumEveryBlocks), ChecksumEveryBlocks, "at least 1");
        }
        if (ChecksumEverySeconds is < 0 or > 86_400)
        {
            throw new ArgumentOutOfRangeException(nameof(ChecksumEverySeconds), ChecksumEverySeconds, "0 (by block count only) to 86,400");
        }
        if (SnapshotEveryBlocks < 0 || SnapshotEverySeconds < 0 || SnapshotRetain < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(SnapshotEveryBlocks), "snapshot intervals must be 0 (off) or positive, and at least one snapshot is retained");
        }
        if (MaxSessions < 1 || LogonTimeoutMs < 1 || DrainTimeoutMs < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxSessions), "sessions and timeouts must be positive");
        }
        Gateway.Validate();
        JournalSettings().Validate();
        return this;
    }

    /// <summary>
    /// The cluster this node belongs to, written into a new journal's genesis block and checked against
    /// an existing one's (a node never appends one cluster's blocks to another's chain). Not a setting of
    /// its own: <c>engine serve</c> takes it from the cluster credentials (<c>--cluster</c>); the default is
    /// the development cluster (all zeros).
    /// </summary>
    public Engine.Ledger.ClusterId ClusterId { get; init; } = Engine.Ledger.ClusterId.Development;

    public JournalSettings JournalSettings() => new()
    {
        Directory = JournalDirectory,
        ClusterId = ClusterId,
        Durability = Durability,
        MaxTransactionsPerBlock = MaxTransactionsPerBlock,
        SegmentSizeBits = JournalSegmentSizeBits,
        MemoryCommitIntervalUs = MemoryCommitIntervalUs,
    };

    /// <summary>Memory durability: the least time between two journal commits, in microseconds (see <see cref="Journaling.JournalSettings.MemoryCommitIntervalUs"/>).</summary>
    public int MemoryCommitIntervalUs { get; init; } = Journaling.JournalSettings.DefaultMemoryCommitIntervalUs;

    /// <summary>log2 of the journal's segment files, for a journal created from now on (an existing one keeps its own). Default 26 (64 MiB), at least 22 (a page).</summary>
    public int JournalSegmentSizeBits { get; init; } = 26;

    public static IPEndPoint ParseEndpoint(string value, string name)
    {
        if (!IPEndPoint.TryParse(value, out IPEndPoint? endpoint) || endpoint.Port == 0 && !value.EndsWith(":0", StringComparison.Ordinal))
        {
            if (value.StartsWith("localhost:", StringComparison.OrdinalIgnoreCase) && int.TryParse(value.AsSpan(10), out int port))
            {
                return new IPEndPoint(IPAddress.Loopback, port);
            }
            throw new ArgumentException($"{name}: '{value}' is not HOST:PORT (an IP address or localhost, and a port)");
        }
        return endpoint;
    }

    public override string ToString() =>
        $"data {Data}, listen {Listen}, admin {(string.IsNullOrEmpty(Admin) ? "off" : Admin)}, durability {Durability.ToString().ToLowerInvariant()}, " +
        $"ring {RingSize}/{OutboundRingSize} ({WaitStrategy}, {Topology.ToString().ToLowerInvariant()}{(DispatchOnApplyThread ? ", dispatch on the apply thread" : "")}), ≤ {MaxTransactionsPerBlock} tx/block, in-flight ≤ {MaxInFlightPerClient}/client, " +
        $"outbound ≤ {MaxOutboundBytesPerSession >> 10} KiB/session, ≤ {MaxSessions} sessions, snapshots {(Snapshots() is { } s ? s.ToString() : "off")}; client port: {Gateway}";
}
