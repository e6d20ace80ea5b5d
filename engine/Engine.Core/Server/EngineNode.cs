using System.Diagnostics;
using System.Net;
using Engine.Core.Book;
using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Core.Ledger;
using Engine.Core.Ring;
using Engine.Protocol;

namespace Engine.Core.Server;

/// <summary>What /status shows.</summary>
public sealed record NodeStatus(
    string Role,
    ulong Epoch,
    ulong Lsn,
    ulong Block,
    string HeadHash,
    int Sessions,
    int ClientsLoggedOn,
    long Applied,
    long Rejected,
    long Duplicates,
    long BusyReplies,
    long DroppedReplies,
    double TxPerSecond,
    long Commits,
    long CommitStalls,
    long Backlog,
    string Durability,
    double UptimeSeconds,
    int Gen0Collections,
    int Gen1Collections,
    int Gen2Collections,
    long AllocatedBytes)
{
    /// <summary>The client port's counters: logons, refusals, throttled addresses, protocol violations (see <see cref="GatewayCounters"/>).</summary>
    public GatewayStats? Gateway { get; init; }
}

/// <summary>
/// One engine process: the journal (replayed into the order book at start), the inbound pipeline
/// validate → seal → journal → apply, the outbound ring to the sessions, and the TCP gateway.
/// </summary>
/// <remarks>
/// <code>
///  sessions ─▶ [inbound ring, multi-producer] validate ─▶ seal ─▶ journal ─▶ apply ─┐
///  sessions ◀─ dispatch ◀─ [outbound ring, single producer: apply] ◀────────────────┘
/// </code>
/// The journal stage is the seam where the backup's acknowledgement will join (mirror).
/// </remarks>
public sealed class EngineNode : IAsyncDisposable
{
    private readonly Action<string> _log;
    private readonly Journal _journal;
    private readonly LedgerPipeline _ledger;
    private readonly Pipeline<TxSlot> _inbound;
    private readonly Pipeline<OutboundSlot> _outbound;
    private readonly Gateway _gateway;
    private readonly Stopwatch _uptime = Stopwatch.StartNew();
    private readonly Timer _rateSampler;
    private long _lastApplied;
    private double _txPerSecond;
    private int _stopped;
    private readonly IBlockMirror? _mirror;

    private EngineNode(EngineSettings settings, ReferenceData reference, Action<string> log, Journal? journal, Exchange? exchange,
        IBlockMirror? mirror, ChainHead? head, ulong? epoch, string role, System.Net.Sockets.Socket? listener = null)
    {
        Settings = settings;
        Reference = reference;
        Role = role;
        _log = log;
        if (journal is null || exchange is null)
        {
            (journal, exchange) = OpenAndReplay(settings, reference, log);
        }
        _journal = journal;
        Exchange = exchange;
        _mirror = mirror;

        var clientSeqs = new ClientSeqTable();
        clientSeqs.Seed(Exchange.ClientSeqs);
        var clients = new ClientRegistry(reference.Clients.Select(c => c.ClientId));

        var outbound = new PipelineBuilder<OutboundSlot>(new RingSettings { Size = settings.OutboundRingSize, Wait = WaitStrategy.Parse(settings.WaitStrategy), OnFault = f => log($"outbound fault: {f}") });
        outbound.AddStage("dispatch", new DispatchStage(new Dispatcher(clients, Counters)));
        _outbound = outbound.Start();

        _ledger = new LedgerPipeline(
            new RingSettings { Size = settings.RingSize, Producers = ProducerKind.Multi, Wait = WaitStrategy.Parse(settings.WaitStrategy), OnFault = f => log($"FAULT {f}") },
            _journal, reference.Instruments, reference, clientSeqs, topology: settings.Topology, mirror: mirror, epoch: epoch, head: head);
        _ledger.AddAfterJournal("apply", new ApplyStage(Exchange, _ledger.Blocks, clients, _outbound.Ring, Counters, mirror, (ulong)settings.ChecksumEveryBlocks));
        _inbound = _ledger.Builder.Start();
        Counters.LastLsn = Exchange.LastLsn;

        _gateway = new Gateway(settings, _inbound.Ring, clients, reference, clientSeqs, () => Volatile.Read(ref Counters.LastLsn), log, listener)
        {
            Mirror = mirror,
            Epoch = _ledger.Sealer.Builder.Epoch,
        };
        _gateway.Start();
        _rateSampler = new Timer(_ => SampleRate(), null, 1000, 1000);
    }

    public EngineSettings Settings { get; }

    public ReferenceData Reference { get; }

    /// <summary>The state: owned by the apply stage's thread while the node runs.</summary>
    internal Exchange Exchange { get; }

    public NodeCounters Counters { get; } = new();

    public IPEndPoint ListenEndPoint => _gateway.LocalEndPoint;

    /// <summary>Sends every client to the other node while <paramref name="reason"/> is set (see <see cref="Gateway.Redirect"/>); null takes them back.</summary>
    public void RedirectClients(string? reason) => _gateway.Redirect(reason);

    /// <summary>"standalone", "primary", or "primary (took over)".</summary>
    public string Role { get; }

    /// <summary>Opens the journal, replays it, starts the pipelines and the gateway: a node alone.</summary>
    public static EngineNode Start(EngineSettings settings, ReferenceData reference, Action<string>? log = null)
    {
        settings.Validate();
        return new EngineNode(settings, reference, log ?? (_ => { }), null, null, null, null, null, "standalone");
    }

    /// <summary>
    /// Starts a node on a journal and state already open and replayed (a primary of a pair, or a
    /// backup taking over), continuing the chain after <paramref name="head"/>, mirroring to
    /// <paramref name="mirror"/> and sealing in <paramref name="epoch"/>.
    /// </summary>
    public static EngineNode StartWith(EngineSettings settings, ReferenceData reference, Action<string> log, Journal journal, Exchange exchange,
        IBlockMirror? mirror, ChainHead head, ulong epoch, string role, System.Net.Sockets.Socket? listener = null)
    {
        settings.Validate();
        return new EngineNode(settings, reference, log, journal, exchange, mirror, head, epoch, role, listener);
    }

    /// <summary>
    /// Starts and stops a throwaway node (temporary journal, loopback port 0, one state probe
    /// through the pipeline) so that the code a takeover runs is already compiled: a backup calls
    /// this at start-up, and its takeover does not wait for the JIT.
    /// </summary>
    public static async Task WarmUpAsync(EngineSettings settings, ReferenceData reference)
    {
        string directory = Path.Combine(Path.GetTempPath(), $"engine-warmup-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            EngineSettings scratch = settings with { Data = directory, Listen = "127.0.0.1:0", Admin = "", RingSize = 1024, OutboundRingSize = 2048, Durability = Journaling.Durability.Memory };
            await using (EngineNode node = Start(scratch, reference))
            {
                await node.ProbeAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
            }
        }
        finally
        {
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
        }
    }

    /// <summary>Binds the client listener ahead of time (a backup hands it to the node it becomes at takeover).</summary>
    public static System.Net.Sockets.Socket BindClientListener(EngineSettings settings) => Gateway.BindListener(settings);

    /// <summary>Opens the node's journal (verifying the chain) and replays it into a new order book.</summary>
    public static (Journal Journal, Exchange Exchange) OpenAndReplay(EngineSettings settings, ReferenceData reference, Action<string> log)
    {
        Journal journal = Journal.Open(settings.JournalSettings());
        var exchange = new Exchange(reference);
        var replay = Stopwatch.StartNew();
        long replayed = Replay(journal, exchange);
        log($"journal {settings.JournalDirectory}: head {journal.Head}; replayed {replayed:N0} transactions in {replay.ElapsedMilliseconds} ms, state {exchange.ComputeChecksum().ToShortString()}");
        return (journal, exchange);
    }

    /// <summary>Applies every committed block of <paramref name="journal"/> to <paramref name="exchange"/>, in order, answering nobody.</summary>
    public static long Replay(Journal journal, Exchange exchange)
    {
        long count = 0;
        var sink = new NullSink();
        journal.Scan((entry, _) =>
        {
            BlockFormat.TryReadHeader(entry, out BlockHeader header);
            Hash32 hash = BlockFormat.StoredHash(entry, in header);
            ReadOnlySpan<byte> body = BlockFormat.Body(entry, in header);
            for (int i = 0; i < header.Count; i++)
            {
                ulong lsn = LedgerRecord.Read(body.Slice(i * LedgerRecord.Bytes, LedgerRecord.Bytes), out Transaction tx);
                exchange.Apply(in tx, lsn, header.BlockNo, in hash, ref sink);
                count++;
            }
            return true;
        });
        return count;
    }

    /// <summary>The state at a point between two transactions: sent through the inbound ring, so it is consistent.</summary>
    public async Task<StateReport> ProbeAsync(TimeSpan timeout)
    {
        var probe = new StateProbe();
        RingBuffer<TxSlot> ring = _inbound.Ring;
        // Probes are rare; a blocking claim is fine, but never from a stopped pipeline.
        if (ring.TryNext(out long sequence) != ClaimStatus.Claimed)
        {
            throw new InvalidOperationException("the engine is busy or stopping: no state probe now");
        }
        ref TxSlot slot = ref ring[sequence];
        slot.Probe = probe;
        slot.FrameLength = 0;
        slot.Reject = RejectReason.None;
        slot.SessionClientId = 0;
        ring.Publish(sequence);
        return await probe.Report.WaitAsync(timeout).ConfigureAwait(false);
    }

    public NodeStatus Status()
    {
        ChainHead head = _ledger.Sealer.Builder.Head;
        return new NodeStatus(
            Role: Role,
            Epoch: head.Epoch,
            Lsn: Volatile.Read(ref Counters.LastLsn),
            Block: head.BlockNo,
            HeadHash: head.Hash.ToString(),
            Sessions: _gateway.SessionCount,
            ClientsLoggedOn: _gateway.Clients.LoggedOn,
            Applied: Interlocked.Read(ref Counters.Applied),
            Rejected: Interlocked.Read(ref Counters.Rejected),
            Duplicates: Interlocked.Read(ref Counters.Duplicates),
            BusyReplies: _gateway.BusyReplies,
            DroppedReplies: Interlocked.Read(ref Counters.Dropped),
            TxPerSecond: Math.Round(Volatile.Read(ref _txPerSecond)),
            Commits: _journal.Commits,
            CommitStalls: _journal.CommitStalls,
            Backlog: _inbound.Backlog,
            Durability: Settings.Durability.ToString().ToLowerInvariant(),
            UptimeSeconds: Math.Round(_uptime.Elapsed.TotalSeconds, 1),
            Gen0Collections: GC.CollectionCount(0),
            Gen1Collections: GC.CollectionCount(1),
            Gen2Collections: GC.CollectionCount(2),
            AllocatedBytes: GC.GetTotalAllocatedBytes())
        {
            Gateway = _gateway.Stats(),
        };
    }

    private void SampleRate()
    {
        long applied = Interlocked.Read(ref Counters.Applied);
        Volatile.Write(ref _txPerSecond, applied - _lastApplied);
        _lastApplied = applied;
    }

    /// <summary>
    /// Stops accepting and reading, drains the inbound pipeline (everything taken is journaled,
    /// applied and answered), drains the outbound ring to the sessions, lets them send, commits the
    /// journal and closes it.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0)
        {
            return;
        }
        await _rateSampler.DisposeAsync().ConfigureAwait(false);
        await _gateway.StopAcceptingAsync().ConfigureAwait(false);
        _mirror?.BeginStop();
        var drain = TimeSpan.FromMilliseconds(Settings.DrainTimeoutMs);
        bool inboundDrained = _inbound.Shutdown(drain);
        bool outboundDrained = _outbound.Shutdown(drain);
        await _gateway.DisposeAsync().ConfigureAwait(false);
        if (_mirror is IAsyncDisposable mirror)
        {
            await mirror.DisposeAsync().ConfigureAwait(false);
        }
        Hash32 checksum = Exchange.ComputeChecksum();
        _journal.Dispose();
        _log($"stopped: inbound {(inboundDrained ? "drained" : "NOT drained")}, outbound {(outboundDrained ? "drained" : "NOT drained")}, " +
             $"journal committed at {_ledger.Sealer.Builder.Head}, last lsn {Exchange.LastLsn}, state {checksum}");
        if (_inbound.Fault is { } fault)
        {
            _log($"the pipeline had halted: {fault}");
        }
    }
}
