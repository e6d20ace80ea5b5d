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
    long AllocatedBytes,
    bool Halted,
    string? HaltReason)
{
    /// <summary>The client port's counters: logons, refusals, throttled addresses, protocol violations (see <see cref="GatewayCounters"/>).</summary>
    public GatewayStats? Gateway { get; init; }

    /// <summary>Since the start: from a session reading a request to its answer handed to the socket (the server's share of a client's latency).</summary>
    public LatencySummary? ReceiveToAnswer { get; init; }

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
/// <para><b>Halting.</b> When the inbound or outbound pipeline halts (a handler threw) or the journal
/// fails (a commit or an append did not reach the device), the node halts, once, and stays up so it
/// can say why: the inbound pipeline stops (nothing more passes the ack gate, so nothing is answered
/// that was not journaled), its clients are sent away and every logon is answered "not primary"
/// (<see cref="RedirectClients"/>), and the <c>onHalt</c> callback given at start runs (a pair's
/// primary falls silent on its link there, so its backup takes over). <see cref="Status"/> and
/// <see cref="Role"/> say "halted" and why.</para>
/// </remarks>
public sealed class EngineNode : IAsyncDisposable
{
    private readonly Action<string> _log;
    private readonly IJournal _journal;
    private readonly LedgerPipeline _ledger;
    private readonly Pipeline<TxSlot> _inbound;
    private readonly Pipeline<OutboundSlot>? _outbound; // null when the apply thread dispatches (DispatchOnApplyThread)
    private readonly Gateway _gateway;
    private readonly Stopwatch _uptime = Stopwatch.StartNew();
    private readonly Timer _rateSampler;
    private long _lastApplied;
    private double _txPerSecond;
    private int _stopped;
    private readonly IBlockMirror? _mirror;
    private readonly string _role;
    private readonly Action<string>? _onHalt;
    private readonly RecordsRootBuilder? _roots;
    private readonly HeadSigner? _heads;
    private readonly ProofDesk? _proofs;

    /// <summary>The ledger's newest signed head (null: none yet, or the node signs none).</summary>
    public SignedHead? SignedHead => _heads?.Latest;
    private readonly TaskCompletionSource<string> _halted = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenRegistration _journalFault;
    private readonly ReferenceSource _referenceSource;

    // Set once, by the first halt; read by Status and the role from any thread.
    private string? _haltReason;

    private EngineNode(EngineSettings settings, ReferenceData reference, Action<string> log, IJournal? journal, Exchange? exchange,
        IBlockMirror? mirror, ChainHead? head, ulong? epoch, string role, System.Net.Sockets.Socket? listener = null, Action<string>? onHalt = null,
        SnapshotTaker? snapshots = null, RecoveryReport? recovery = null, NodeReserve? reserve = null)
    {
        Recovery = recovery;
        if (reserve is not null && !reserve.TryTake(settings))
        {
            reserve = null; // used already, or made for other ring settings: made anew below
        }
        Settings = settings;
        Reference = reference;
        _role = role;
        _onHalt = onHalt;
        _log = log;
        if (journal is null || exchange is null)
        {
            (journal, exchange, RecoveryReport recovered) = OpenAndRecover(settings, log);
            Recovery = recovered;
            if (settings.Snapshots() is { } schedule)
            {
                snapshots = new SnapshotTaker(journal, schedule, recovered, TimeProvider.System, log, settings.Checksums());
            }
        }
        _journal = journal;
        Snapshots = snapshots;
        Exchange = exchange;
        _referenceSource = new ReferenceSource(exchange);
        _mirror = mirror;

        long started = Stopwatch.GetTimestamp();
        var clientSeqs = new ClientSeqTable();
        clientSeqs.Seed(Exchange.ClientSeqs);
        var clients = new ClientRegistry(reference.Clients.Select(c => c.ClientId));

        // A fault callback runs on the failing stage's thread just before its pipeline halts; it may run
        // before this constructor has finished (Halt copes with the fields not yet set).
        if (!settings.DispatchOnApplyThread)
        {
            var outbound = new PipelineBuilder<OutboundSlot>(new RingSettings
            {
                Size = settings.OutboundRingSize,
                Wait = reserve?.Outbound?.Wait ?? WaitStrategy.Parse(settings.WaitStrategy),
                OnFault = f =>
                {
                    Halt($"the outbound pipeline halted: {f}", f);
                    log($"outbound fault: {f}");
                },
            }, reserve?.Outbound);
            outbound.AddStage("dispatch", new DispatchStage(new Dispatcher(clients, Counters)));
            _outbound = outbound.Start();
        }
        long outboundReady = Stopwatch.GetTimestamp();

        _ledger = new LedgerPipeline(
            new RingSettings
            {
                Size = settings.RingSize,
                Producers = ProducerKind.Multi,
                Wait = reserve?.Inbound.Wait ?? WaitStrategy.Parse(settings.WaitStrategy),
                OnFault = f =>
                {
                    Halt($"the pipeline halted: {f}", f);
                    log($"FAULT {f}");
                },
            },
            _journal, () => _referenceSource.Current, checkSessions: true, clientSeqs, clock: null, settings.Topology, mirror, epoch, head, reserve?.Inbound, reserve?.Blocks);
        if (settings.RecordsRootIntervalMs > 0)
        {
            _roots = new RecordsRootBuilder(_journal, TimeSpan.FromMilliseconds(settings.RecordsRootIntervalMs), log);
            _ledger.Sealer.Builder.RootSource = _roots;
        }
        if (settings.SignedHeadIntervalMs > 0 && settings.Signing is { } signing)
        {
            _heads = new HeadSigner(_journal, signing, TimeSpan.FromMilliseconds(settings.SignedHeadIntervalMs), log: log);
            _proofs = new ProofDesk(_journal, _heads, log, _roots is { } roots ? roots.WantRoot : null);
        }
        // The state checksum the backup compares: computed by the snapshot replica when there is one
        // (off the apply thread: a whole-state walk is ~0.3 s for 1 M resting orders here), else by
        // the apply stage.
        ChecksumCadence checksums = settings.Checksums();
        if (snapshots is not null && mirror is not null && snapshots.Checksums == checksums)
        {
            snapshots.StateChecksums = (blockNo, checksum) => mirror.SendStateChecksum(blockNo, checksum);
            checksums = ChecksumCadence.Never;
        }
        var replies = new ReplyOut(_outbound?.Ring, _outbound is null ? new Dispatcher(clients, Counters) : null);
        _ledger.AddAfterJournal("apply", new ApplyStage(new BlockApplier(Exchange), _ledger.Blocks, clients, replies, Counters, mirror, new ChecksumSchedule(checksums)));
        _inbound = _ledger.Builder.Start();
        if (_roots is not null)
        {
            _roots.RootWaiting = SealWaitingRoot;
        }
        long inboundReady = Stopwatch.GetTimestamp();
        Counters.LastLsn = Exchange.LastLsn;
        JournalReferenceDataIfNew();
        long referenceReady = Stopwatch.GetTimestamp();

        _gateway = new Gateway(settings, _inbound.Ring, clients, reference, () => _referenceSource.Current, clientSeqs, () => Volatile.Read(ref Counters.LastLsn), log, listener)
        {
            Mirror = mirror,
            Proofs = _proofs,
            Epoch = _ledger.Sealer.Builder.Epoch,
        };
        _gateway.Start();
        static double Ms(long from, long to) => Math.Round(Stopwatch.GetElapsedTime(from, to).TotalMilliseconds, 1);
        long serving = Stopwatch.GetTimestamp();
        StartTimings = $"started in {Ms(started, serving)} ms (outbound ring {Ms(started, outboundReady)}, inbound ring and stages {Ms(outboundReady, inboundReady)}, "
            + $"reference data {Ms(inboundReady, referenceReady)}, gateway {Ms(referenceReady, serving)})";
        _rateSampler = new Timer(_ => SampleRate(), null, 1000, 1000);
        // Last, so that everything Halt touches exists; runs at once if the journal has already failed.
        _journalFault = _journal.FaultToken.Register(() =>
        {
            Exception error = _journal.Fault!;
            Halt($"the journal failed: {error.Message}", new StageFault("journal (committer or append)", -1, error, FaultPolicy.Halt));
        });
        if (Volatile.Read(ref _haltReason) is { } early)
        {
            // Halted while starting (a stage failed before the gateway existed): send clients away now.
            _gateway.Redirect($"halted: {early}");
        }
    }

    public EngineSettings Settings { get; }

    /// <summary>How long each step of this node's start took (a takeover waits for all of them).</summary>
    public string StartTimings { get; } = "";

    public ReferenceData Reference { get; }

    /// <summary>What this node's start-up recovered (or the pair ledger's, for a pair's primary); null when not known.</summary>
    public RecoveryReport? Recovery { get; }

    /// <summary>The snapshots taken of this node's journal (stopped before the journal closes); null when snapshots are off.</summary>
    public SnapshotTaker? Snapshots { get; }

    /// <summary>The state: owned by the apply stage's thread while the node runs.</summary>
    internal Exchange Exchange { get; }

    public NodeCounters Counters { get; } = new();

    public IPEndPoint ListenEndPoint => _gateway.LocalEndPoint;

    /// <summary>Sends every client to the other node while <paramref name="reason"/> is set (see <see cref="Gateway.Redirect"/>); null takes them back.</summary>
    public void RedirectClients(string? reason) => _gateway.Redirect(reason);

    /// <summary>"standalone", "primary", or "primary (took over)"; "halted" once the node has halted.</summary>
    public string Role => Halted ? "halted" : _role;

    /// <summary>True once the node has halted (see the remarks on <see cref="EngineNode"/>); it never resumes.</summary>
    public bool Halted => Volatile.Read(ref _haltReason) is not null;

    /// <summary>Why the node halted, or null.</summary>
    public string? HaltReason => Volatile.Read(ref _haltReason);

    /// <summary>Completes, with the reason, when the node halts; never completes otherwise.</summary>
    public Task<string> WhenHalted => _halted.Task;

    /// <summary>
    /// Halts the node, once (later calls do nothing): stops the inbound pipeline with
    /// <paramref name="fault"/> (if a stage's own fault, the pipeline keeps that one), sends every
    /// client away, runs the <c>onHalt</c> callback. Runs on the thread that saw the failure: a stage's,
    /// or the journal's committer.
    /// </summary>
    private void Halt(string reason, StageFault fault)
    {
        if (Volatile.Read(ref _stopped) != 0)
        {
            // Stopping: the drain fails what waits at the ack gate on purpose (IBlockMirror.BeginStop), and
            // the journal's own state is looked at once it is closed (DisposeAsync).
            return;
        }
        if (Interlocked.CompareExchange(ref _haltReason, reason, null) is not null)
        {
            return;
        }
        // First, so that nothing more is acknowledged: from here on, claims answer Halted and every stage
        // stops at the end of its batch (the journal gate itself throws on a failed journal). Then the
        // link (the backup takes over) and the clients (they go to it); the log line last, as it may be slow.
        _inbound?.Halt(fault);
        string? callbackFailed = null;
        try
        {
            _onHalt?.Invoke(reason);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            callbackFailed = e.Message;
        }
        _gateway?.Redirect($"halted: {reason}");
        _log($"HALTED: {reason}. Acknowledging nothing more; clients are sent to the other node; this process stays up to say why until it is stopped");
        if (callbackFailed is not null)
        {
            _log($"the halt callback failed: {callbackFailed}");
        }
        _halted.TrySetResult(reason);
    }

    /// <summary>Opens the journal, replays it, starts the pipelines and the gateway: a node alone.</summary>
    public static EngineNode Start(EngineSettings settings, ReferenceData reference, Action<string>? log = null)
    {
        settings.Validate();
        return new EngineNode(settings, reference, log ?? (_ => { }), null, null, null, null, null, "standalone");
    }

    /// <summary>
    /// Starts a node on a journal and state already open and replayed (a primary of a pair, or a
    /// backup taking over), continuing the chain after <paramref name="head"/>, mirroring to
    /// <paramref name="mirror"/> and sealing in <paramref name="epoch"/>. <c>onHalt</c> is called once, with
    /// the reason, when the node halts (see the remarks on <see cref="EngineNode"/>), on the thread that
    /// saw the failure, before the clients are sent away: a pair's primary falls silent on its link
    /// there. It must be short. <paramref name="reserve"/>: its rings and block table, made ahead of time (a backup's, for its takeover).
    /// </summary>
    public static EngineNode StartWith(EngineSettings settings, ReferenceData reference, Action<string> log, IJournal journal, Exchange exchange,
        IBlockMirror? mirror, ChainHead head, ulong epoch, string role, System.Net.Sockets.Socket? listener = null, Action<string>? onHalt = null,
        SnapshotTaker? snapshots = null, RecoveryReport? recovery = null, NodeReserve? reserve = null)
    {
        settings.Validate();
        return new EngineNode(settings, reference, log, journal, exchange, mirror, head, epoch, role, listener, onHalt, snapshots, recovery, reserve);
    }

    /// <summary>
    /// Starts and stops a throwaway node (<see cref="TakeoverWarmUp"/>: temporary journal, loopback
    /// port 0, a mirror that acknowledges at once) and trades a few thousand orders through it over
    /// TCP, so that the code a takeover and the new primary's first orders run is already compiled: a
    /// backup calls this at start-up. Returns what it did, for the log. A warm-up that fails costs
    /// only its speed-up: the reason is returned, nothing is thrown.
    /// </summary>
    public static async Task<string> WarmUpAsync(EngineSettings settings, CancellationToken cancel = default)
    {
        long started = Stopwatch.GetTimestamp();
        long compiled = System.Runtime.JitInfo.GetCompiledMethodCount();
        TimeSpan jit = System.Runtime.JitInfo.GetCompilationTime();
        string directory = Path.Combine(Path.GetTempPath(), $"engine-warmup-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            EngineSettings scratch = settings with { Data = directory, Listen = "127.0.0.1:0", Admin = "", RingSize = 1024, OutboundRingSize = 2048, Durability = Journaling.Durability.Memory,
                SnapshotEveryBlocks = 0, SnapshotEverySeconds = 0, Gateway = settings.Gateway with { TlsCertificateFile = "", TlsKeyFile = "", PeerListen = "" } };
            ReferenceData reference = TakeoverWarmUp.Reference(out string token);
            int orders;
            await using (var node = new EngineNode(scratch, reference, _ => { }, null, null, new TakeoverWarmUp.InstantMirror(), null, null, "warm-up"))
            {
                await node.ProbeAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
                timeout.CancelAfter(TimeSpan.FromSeconds(10));
                orders = await TakeoverWarmUp.TradeAsync(node.ListenEndPoint, token, timeout.Token).ConfigureAwait(false);
                _ = node.LedgerReference.DifferencesFrom(reference).Count(); // what a takeover compares just after its start
            }
            return TakeoverWarmUp.Describe(orders, started, compiled, jit);
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            return "the take-over warm-up was stopped with the node";
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return $"the take-over warm-up failed ({e.GetType().Name}: {e.Message}): the first orders after a takeover wait for the JIT";
        }
        finally
        {
            try
            {
                Directory.Delete(directory, recursive: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Not there, or not removable now: a leftover in the temporary directory, never a failed start.
            }
        }
    }

    /// <summary>Binds the client listener ahead of time (a backup hands it to the node it becomes at takeover).</summary>
    public static System.Net.Sockets.Socket BindClientListener(EngineSettings settings) => Gateway.BindListener(settings);

    /// <summary>
    /// Opens the node's journal and recovers its state (<see cref="NodeRecovery"/>: the newest
    /// snapshot, the chain verified from its block, the blocks after it replayed).
    /// </summary>
    /// <param name="settings">The node's settings (its journal, its snapshots).</param>
    /// <param name="log">Where recovery is told.</param>
    public static (Journal Journal, Exchange Exchange, RecoveryReport Report) OpenAndRecover(EngineSettings settings, Action<string> log) =>
        NodeRecovery.Recover(anchor => Journal.Open(settings.JournalSettings(), anchor), settings.Snapshots()?.Store, settings.JournalDirectory, log);

    /// <summary>
    /// A new ledger (no reference data in it yet) gets this node's configured reference data as its
    /// first transactions, ahead of any client's request (the gateway is not listening yet). A ledger
    /// that has reference data keeps it: this node's configuration is only compared with it, and every
    /// difference logged (<see cref="ReferenceDivergence"/>), as the ledger rules.
    /// </summary>
    private void JournalReferenceDataIfNew()
    {
        if (!Exchange.HasReferenceData)
        {
            Transaction[] initial = [.. Reference.AdminTransactions()];
            _log($"a new ledger: journaling the reference data of the {Reference.Source} ({Reference.Instruments.All.Count} instruments, {Reference.Accounts.Count} accounts, "
                + $"{Reference.Clients.Count()} clients: {initial.Length} admin transactions)");
            // Chunks well inside the ring: a claim of more slots than the ring has would never succeed.
            int chunk = Math.Max(1, Math.Min(256, _inbound.Ring.Size / 2));
            AdminSubmission? last = null;
            for (int i = 0; i < initial.Length; i += chunk)
            {
                last = Publish(initial.AsSpan(i, Math.Min(chunk, initial.Length - i)), blocking: true)[^1];
            }
            _referenceSource.Journaling(Reference, last?.Outcome ?? Task.CompletedTask);
            return;
        }
        // Only told, never acted on: compared off the start (a takeover waits for the start, and this
        // comparison's first run cost ~20 ms of compilation there). The view is immutable.
        ReferenceView ledger = Exchange.Reference;
        _ = Task.Run(() =>
        {
            List<string> differences = [.. ledger.DifferencesFrom(Reference)];
            ReferenceDivergence = differences;
            if (differences.Count > 0)
            {
                _log($"this node's configuration ({Reference.Source}) differs from the ledger's reference data in {differences.Count} place(s); following the ledger: "
                    + string.Join("; ", differences.Take(10)) + (differences.Count > 10 ? "; …" : ""));
            }
        });
    }

    /// <summary>Where this node's configuration differed from the ledger's reference data when it started serving (empty: they agreed, or the ledger was new; compared just after the start).</summary>
    public IReadOnlyList<string> ReferenceDivergence { get; private set; } = [];

    /// <summary>The ledger's reference data as of the last admin transaction applied.</summary>
    public ReferenceView LedgerReference => Exchange.Reference;

    /// <summary>
    /// Seals <paramref name="transactions"/> (admin transactions: <see cref="AdminTransaction"/>) into
    /// the ledger in this order, next to each other, and completes with each one's outcome once it is
    /// journaled, (in a pair) acknowledged by the backup, and applied.
    /// </summary>
    /// <exception cref="ArgumentException">One of them is no admin transaction, or its fields are out of range (nothing is sealed).</exception>
    /// <exception cref="InvalidOperationException">The node cannot take them now: no backup in step (and no lease), busy, halted or stopping.</exception>
    public async Task<IReadOnlyList<AdminOutcome>> SubmitAdminAsync(IReadOnlyList<Transaction> transactions, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(transactions);
        foreach (Transaction tx in transactions)
        {
            if (!AdminTransaction.IsAdmin(tx.Kind) || AdminTransaction.Check(in tx) != RejectReason.None)
            {
                throw new ArgumentException($"not a valid admin transaction: {tx}");
            }
        }
        if (transactions.Count is 0 or > 256)
        {
            throw new ArgumentException($"{transactions.Count} admin transactions at once: 1 to 256");
        }
        if (_mirror is { MayAcknowledge: false })
        {
            throw new InvalidOperationException("no backup in step and no solo lease: this primary acknowledges nothing alone");
        }
        AdminSubmission[] submitted = Publish([.. transactions], blocking: false);
        AdminOutcome[] outcomes = await Task.WhenAll(submitted.Select(s => s.Outcome)).WaitAsync(timeout).ConfigureAwait(false);
        return outcomes;
    }

    /// <summary>Puts admin transactions into the inbound ring, in consecutive slots.</summary>
    private AdminSubmission[] Publish(ReadOnlySpan<Transaction> transactions, bool blocking)
    {
        RingBuffer<TxSlot> ring = _inbound.Ring;
        long high;
        if (blocking)
        {
            high = ring.Next(transactions.Length);
        }
        else if (ring.TryNext(transactions.Length, out high) != ClaimStatus.Claimed)
        {
            throw new InvalidOperationException("the engine is busy or stopping: no admin transaction now");
        }
        var submitted = new AdminSubmission[transactions.Length];
        long low = high - transactions.Length + 1;
        for (int i = 0; i < transactions.Length; i++)
        {
            ref TxSlot slot = ref ring[low + i];
            submitted[i] = new AdminSubmission(transactions[i]);
            slot.Admin = submitted[i];
            slot.Probe = null;
            slot.Tx = transactions[i];
            slot.FrameLength = 0;
            slot.Reject = RejectReason.None;
            slot.SessionClientId = 0;
            slot.ReceivedTicks = 0;
        }
        ring.Publish(low, high);
        return submitted;
    }

    /// <summary>
    /// Asks the sealer for a block that carries the records root waiting (<see cref="StateProbe.SealRoot"/>):
    /// a slot in the inbound ring, never a wait (a full ring has blocks being sealed, which take the root).
    /// </summary>
    private void SealWaitingRoot()
    {
        RingBuffer<TxSlot> ring = _inbound.Ring;
        if (ring.TryNext(out long sequence) != ClaimStatus.Claimed)
        {
            return;
        }
        ref TxSlot slot = ref ring[sequence];
        slot.Probe = StateProbe.SealRoot;
        slot.Admin = null;
        slot.FrameLength = 0;
        slot.Reject = RejectReason.None;
        slot.SessionClientId = 0;
        slot.ReceivedTicks = 0;
        ring.Publish(sequence);
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
        slot.Admin = null;
        slot.FrameLength = 0;
        slot.Reject = RejectReason.None;
        slot.SessionClientId = 0;
        slot.ReceivedTicks = 0;
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
            AllocatedBytes: GC.GetTotalAllocatedBytes(),
            Halted: Halted,
            HaltReason: HaltReason)
        {
            Gateway = _gateway.Stats(),
            ReceiveToAnswer = Counters.ReceiveToAnswer.Summary(),
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
        await _journalFault.DisposeAsync().ConfigureAwait(false);
        await _gateway.StopAcceptingAsync().ConfigureAwait(false);
        _mirror?.BeginStop();
        var drain = TimeSpan.FromMilliseconds(Settings.DrainTimeoutMs);
        bool inboundDrained = _inbound.Shutdown(drain);
        bool outboundDrained = _outbound?.Shutdown(drain) ?? true;
        _roots?.Dispose(); // before the journal closes
        _proofs?.Dispose(); // before the head signer: it reads its tree
        _heads?.Dispose();
        await _gateway.DisposeAsync().ConfigureAwait(false);
        if (_mirror is IAsyncDisposable mirror)
        {
            await mirror.DisposeAsync().ConfigureAwait(false);
        }
        Hash32 checksum = Exchange.ComputeChecksum();
        Snapshots?.Dispose();
        if (_journal.CloseReportingFault() is { } lastFault)
        {
            // Failed while stopping (the drain's commits, the last one): what was answered in memory
            // durability may not be on disk. Counted as a halt, so that the process says so with its exit code.
            Interlocked.CompareExchange(ref _haltReason, $"the journal failed while stopping: {lastFault.Message}", null);
        }
        string journal = _journal.Fault is { } failed
            ? $"journal FAILED ({failed.Message}): only what was committed before is on disk; sealed up to {_ledger.Sealer.Builder.Head}"
            : $"journal committed at {_ledger.Sealer.Builder.Head}";
        _log($"stopped{(Halted ? " (halted)" : "")}: inbound {(inboundDrained ? "drained" : "NOT drained")}, outbound {(outboundDrained ? "drained" : "NOT drained")}, " +
             $"{journal}, last lsn {Exchange.LastLsn}, state {checksum}");
        if (_inbound.Fault is { } fault)
        {
            _log($"the pipeline had halted: {fault}");
        }
    }
}
