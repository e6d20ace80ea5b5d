using System.Net;
using System.Net.Sockets;
using Engine.Core.Book;
using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Core.Ledger;
using Engine.Core.Server;
using Engine.Protocol;
using Engine.Security;

namespace Engine.Replication.Pair;

/// <summary>How <see cref="PairHost.RunAsync"/> ended.</summary>
public enum PairExit
{
    /// <summary>Stopped by the operator (SIGTERM, Ctrl-C).</summary>
    Stopped,

    /// <summary>Halted (its journal or pipeline failed): it serves nobody and never takes over; it stays up to say why until stopped.</summary>
    Halted,

    /// <summary>A backup whose state differed from the primary's after the same blocks: a bug, not a disk.</summary>
    StateMismatch,
}

/// <summary>
/// Hosts one node of the pair in a real process: its <see cref="PairNode"/> (every decision) on the
/// real clock, TCP (<see cref="TcpPairTransport"/>), the witness (<see cref="WitnessClient"/>) and the
/// FASTER journal (<see cref="JournalPairLedger"/>), and the <see cref="EngineNode"/> that serves
/// clients while the pair node is primary. The node is called under one lock (<c>_gate</c>) from the
/// transport's readers, the witness's answers, the ticker and the pipeline (the block mirror); the host
/// only carries out what its state says: start serving when it becomes primary, drain and hand the
/// journal back when it steps down, send clients away or take them back, stay halted.
/// </summary>
public sealed class PairHost : IPairLinkEvents, IAsyncDisposable
{
    private readonly object _gate = new();
    private readonly EngineSettings _settings;
    private readonly ReferenceData _reference;
    private readonly PairSettings _pair;
    private readonly ClusterCredentials _credentials;
    private readonly Action<PairEvent> _say;
    private readonly JournalPairLedger _ledger;
    private readonly TcpPairTransport _transport;
    private readonly WitnessClient? _witness;
    private readonly ObserverFeed _observers;
    private readonly PairNode _node;
    private readonly CancellationTokenSource _stop = new();
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource _ledgerReady = Completed();
    private bool _journalLent;
    private PairState _lastState;
    private bool _lastAway;
    private Task? _ticker;
    private CancellationTokenRegistration _journalFault;

    // What readers outside the lock see (the gateway's admission check per read, /status): written under the lock after every call.
    private volatile PairState _state;
    private volatile bool _backupInStep;
    private long _soloLeaseUntil;
    private ulong _epoch;
    private volatile Mirror? _mirror;
    private ulong _ackedThrough; // PairNode.AckGate as of the last call, for the pipeline's ack gate (Volatile)
    private long _soloAckUntil;
    private volatile EngineNode? _serving;
    private Task<NodeReserve>? _reserve; // RunAsync's: the next serving node's rings, made while following

    /// <param name="settings">The node's settings.</param>
    /// <param name="reference">Its reference data.</param>
    /// <param name="pair">Its pair settings (role primary or backup).</param>
    /// <param name="credentials">Its principal in the cluster.</param>
    /// <param name="say">Where pair events go.</param>
    /// <exception cref="JournalCorruptException">The journal does not verify.</exception>
    /// <exception cref="SocketException">The replication endpoint is in use.</exception>
    public PairHost(EngineSettings settings, ReferenceData reference, PairSettings pair, ClusterCredentials credentials, Action<PairEvent> say)
    {
        _settings = settings;
        _reference = reference;
        _pair = pair.Validate();
        _credentials = credentials;
        _say = say;
        _ledger = JournalPairLedger.OnDisk(settings, text => say(PairEvent.Note(text)));
        try
        {
            IPEndPoint listen = EngineSettings.ParseEndpoint(pair.ReplicationListen!, "--replication-listen");
            IPEndPoint? peer = pair.Peer is null ? null : EngineSettings.ParseEndpoint(pair.Peer, "--peer");
            _observers = new ObserverFeed(text => say(PairEvent.Note(text)), pair.Peer);
            _transport = new TcpPairTransport(listen, peer, credentials, pair, this, say, LedgerReady, _observers.Serve);
            _witness = pair.Witness is null ? null : new WitnessClient(EngineSettings.ParseEndpoint(pair.Witness, "--witness"), credentials, WitnessAnswered);
        }
        catch
        {
            _ledger.Dispose();
            throw;
        }
        _node = new PairNode(credentials.Self.Name, pair, TimeProvider.System, _transport, _witness, _ledger, say);
        _lastState = _node.State;
        lock (_gate)
        {
            Observe();
        }
    }

    /// <summary>The pair node's state now.</summary>
    public PairState State => _state;

    /// <summary>The epoch it seals in (primary) or followed last (backup).</summary>
    public ulong Epoch => Volatile.Read(ref _epoch);

    /// <summary>The node serving clients (primary, or halted as one), or null.</summary>
    public EngineNode? Serving => _serving;

    /// <summary>This node's snapshots, whichever role it has (the serving node's while primary); null when off. Read without the pair's lock (/status must answer while a long step holds it).</summary>
    public SnapshotTaker? Snapshots => _serving?.Snapshots ?? _ledger.Snapshots;

    /// <summary>What this node's last opening of its journal recovered (read without the pair's lock, as <see cref="Snapshots"/>).</summary>
    public RecoveryReport Recovery => _ledger.Recovery;

    /// <summary>The ledger's reference data as this node has applied it (primary or backup).</summary>
    public Engine.Core.Book.ReferenceView LedgerReference => _serving?.LedgerReference ?? _ledger.Exchange.Reference;

    /// <summary>Primary: a backup is in step.</summary>
    public bool BackupInStep => _backupInStep;

    /// <summary>As primary, since the start: from sending a live block to the backup to its acknowledgement.</summary>
    public LatencySummary BackupRoundTrip => _node.BackupRoundTrip.Summary();

    /// <summary>Backup: in step with the primary, following live.</summary>
    public bool InStep => _state == PairState.InStep;

    /// <summary>Where the solo lease comes from.</summary>
    public LeaseSource LeaseSource => _node.LeaseSource;

    /// <summary>The solo lease is held, or the witness still names this node its holder.</summary>
    public bool SoloLease
    {
        get
        {
            lock (_gate)
            {
                return _node.SoloLeaseHeld || _node.HolderAtWitness;
            }
        }
    }

    /// <summary>A run-time go-solo's time left, or null (none, or --allow-solo for good).</summary>
    public TimeSpan? SoloLeaseLeft
    {
        get
        {
            long until = Interlocked.Read(ref _soloLeaseUntil);
            long now = TimeProvider.System.GetTimestamp();
            return _node.LeaseSource == LeaseSource.Operator && !_pair.AllowSolo && until > now ? TimeProvider.System.GetElapsedTime(now, until) : null;
        }
    }

    /// <summary>Where this node's chain ends (backup: what it has journaled and applied).</summary>
    public ChainHead Head
    {
        get
        {
            lock (_gate)
            {
                return _ledger.Head;
            }
        }
    }

    /// <summary>Why it halted, or null.</summary>
    public string? HaltReason
    {
        get
        {
            lock (_gate)
            {
                return _node.HaltReason;
            }
        }
    }

    /// <summary>Connections refused on the replication endpoint so far.</summary>
    public long Refusals => _transport.Refusals;

    /// <summary>The operator's run-time solo lease (<c>engine admin go-solo</c>) until <paramref name="untilTimestamp"/>.</summary>
    /// <exception cref="InvalidOperationException">The lease comes from a witness here.</exception>
    public void GrantOperatorLease(long untilTimestamp) => Call(() => _node.GrantOperatorLease(untilTimestamp));

    /// <summary>
    /// Runs the node in its role until it is stopped (<paramref name="stop"/>) or halts: serving clients
    /// whenever the pair node is primary, following otherwise. <paramref name="phaseChanged"/> is told
    /// whenever what it does changes (for the admin endpoint).
    /// </summary>
    public async Task<PairExit> RunAsync(Action phaseChanged, CancellationToken stop)
    {
        ThreadPoolFloor.Apply(); // this host blocks pool threads on its lock, at times behind a journal flush: see there
        if (_pair.Role == PairRole.Backup)
        {
            // The takeover's first handshake and node are not its first ones: the code they run is compiled now.
            _say(PairEvent.Note(await EngineNode.WarmUpAsync(_settings, stop).ConfigureAwait(false)));
            if (_pair.Witness is not null)
            {
                await WitnessClient.WarmUpAsync(_credentials).ConfigureAwait(false);
            }
        }
        _transport.Start();
        WatchBackupJournal();
        Call(_node.Start);
        _ticker = Task.Run(TickLoop, CancellationToken.None);
        Socket? clientListener = null;
        LogonResponder? responder = null;
        bool tookOver = false;
        try
        {
            while (true)
            {
                Task changed = WhenChanged();
                if (stop.IsCancellationRequested)
                {
                    return PairExit.Stopped;
                }
                switch (_state)
                {
                    case PairState.Halted:
                        return HaltExit();
                    case PairState.Primary:
                        EngineNode node = StartServing(tookOver ? "primary (took over)" : "primary", clientListener);
                        clientListener = null;
                        if (responder is not null)
                        {
                            await responder.DisposeAsync().ConfigureAwait(false); // handed over: the gateway answers now
                            responder = null;
                        }
                        phaseChanged();
                        PairExit? exit = await ServeAsync(node, stop).ConfigureAwait(false);
                        if (exit is not null)
                        {
                            return exit.Value;
                        }
                        phaseChanged();
                        continue;
                    case PairState.Following or PairState.InStep or PairState.TakingOver:
                        if (clientListener is null)
                        {
                            // Bound now, accepted from at takeover: failing-over clients connect meanwhile and wait in
                            // the backlog instead of backing off. Until then logons are answered "not primary" (held a
                            // moment while the primary is lost: we may serve them).
                            clientListener = EngineNode.BindClientListener(_settings);
                            responder = LogonResponder.Start(clientListener, _settings, text => _say(PairEvent.Note(text)), mayServeSoon: () => _state != PairState.InStep,
                                credentials: _reference);
                            // The serving node's rings too: made now, off the takeover's path.
                            _reserve ??= Task.Run(() => NodeReserve.Allocate(_settings));
                            phaseChanged();
                        }
                        tookOver = true; // whatever makes it primary from here is a takeover
                        break;
                }
                await WaitAsync(changed, stop).ConfigureAwait(false);
            }
        }
        finally
        {
            if (responder is not null)
            {
                await responder.DisposeAsync().ConfigureAwait(false);
            }
            clientListener?.Dispose();
        }
    }

    /// <summary>Starts the node that serves clients as primary, on the ledger's journal and state, in the pair node's epoch.</summary>
    private EngineNode StartServing(string role, Socket? clientListener)
    {
        _journalFault.Dispose(); // the serving node watches the journal from now on (and halts the pair node through onHalt)
        var mirror = new Mirror(this);
        _mirror = mirror;
        ChainHead head;
        ulong epoch;
        SnapshotTaker? snapshots;
        lock (_gate)
        {
            head = _ledger.Head;
            epoch = _node.Epoch;
            _journalLent = true;
            snapshots = _ledger.LendSnapshots();
        }
        // Made while following, if it is ready (never waited for: the node makes its own otherwise).
        NodeReserve? reserve = _reserve is { IsCompletedSuccessfully: true } made ? made.Result : null;
        _reserve = null;
        EngineNode node = EngineNode.StartWith(_settings, _reference, text => _say(PairEvent.Note(text)), _ledger.Journal, _ledger.Exchange, mirror, head, epoch, role, clientListener,
            onHalt: reason => Task.Run(() => Call(() => _node.Halt(reason))), snapshots: snapshots, recovery: _ledger.Recovery, reserve: reserve);
        _serving = node;
        _observers.Open(_ledger.Journal, IsAcknowledged, () => node.SignedHead);
        _say(PairEvent.Note($"listening for front-ends on {node.ListenEndPoint}: {node.StartTimings}"));
        return node;
    }

    /// <summary>Serves until stopped (then drains), halted (stays), or stepped down (drains, then reopens the journal to follow). Null: stepped down.</summary>
    private async Task<PairExit?> ServeAsync(EngineNode node, CancellationToken stop)
    {
        bool sentAway = false;
        while (true)
        {
            Task changed = WhenChanged();
            if (stop.IsCancellationRequested)
            {
                return PairExit.Stopped; // DisposeAsync drains it
            }
            if (node.Halted || _state == PairState.Halted)
            {
                return HaltExit();
            }
            bool away;
            lock (_gate)
            {
                away = _node.ClientsAway;
            }
            if (away != sentAway)
            {
                sentAway = away;
                node.RedirectClients(away ? "no backup and no solo lease: the other node may have taken over" : null);
            }
            if (_state != PairState.Primary)
            {
                break;
            }
            await Task.WhenAny(WaitAsync(changed, stop), node.WhenHalted).ConfigureAwait(false);
        }
        // Stepped down: the drain answers what waits at the ack gate (never acknowledged: the new primary
        // answers it), commits and closes the journal; connects wait until it is open again.
        _say(PairEvent.Note("stepping down to backup: draining the pipeline and committing the journal; what was never acknowledged is answered by the new primary"));
        _serving = null;
        _mirror = null;
        await _observers.CloseAsync().ConfigureAwait(false); // their cursors let go of the journal before it closes
        await node.DisposeAsync().ConfigureAwait(false);
        if (node.Halted)
        {
            _serving = node;
            Call(() => _node.Halt(node.HaltReason!));
            return HaltExit();
        }
        lock (_gate)
        {
            _ledger.Reopen();
            _journalLent = false;
            _ledgerReady.TrySetResult();
        }
        WatchBackupJournal();
        return null;
    }

    /// <summary>
    /// What a connect waits for (asked by the transport within the node's call, under the lock): while
    /// the serving node still owns the journal and this node is no primary any more (it stepped down and
    /// drains), until the journal is open again for the backup; a probe from a primary goes at once.
    /// </summary>
    private Task LedgerReady()
    {
        if (_journalLent && _node.State != PairState.Primary && _ledgerReady.Task.IsCompleted)
        {
            _ledgerReady = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        return _ledgerReady.Task;
    }

    private PairExit HaltExit()
    {
        lock (_gate)
        {
            return _node.HaltedOnStateMismatch ? PairExit.StateMismatch : PairExit.Halted;
        }
    }

    /// <summary>A backup's journal that fails in the background (a commit while the link is quiet) halts it at once: it is no backup any more and never takes over.</summary>
    private void WatchBackupJournal()
    {
        IJournal journal = _ledger.Journal;
        _journalFault = journal.FaultToken.Register(() =>
            // Not on the committer's thread: a call under the lock may wait for that thread.
            Task.Run(() => Call(() =>
            {
                if (_node.State != PairState.Primary && _node.State != PairState.Halted)
                {
                    _say(new PairEvent(PairEventKind.JournalFailed, $"this node's journal failed ({journal.Fault?.Message}): no backup any more, and never a takeover", _node.Epoch, _ledger.Head.BlockNo));
                    _node.Halt($"this node's journal failed ({journal.Fault?.Message}): it is no backup any more and never takes over");
                }
            })));
    }

    private async Task TickLoop()
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(Math.Clamp(_pair.HeartbeatMs / 5, 1, 20)));
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
            {
                Call(_node.Tick);
            }
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
    }

    /// <summary>Runs <paramref name="action"/> on the node under the lock, then publishes what changed.</summary>
    private void Call(Action action)
    {
        lock (_gate)
        {
            action();
            Observe();
        }
    }

    /// <summary>Under the lock, after every call: publishes the state to readers outside the lock, and wakes the ack gate when its answer may have changed.</summary>
    private void Observe()
    {
        (ulong through, long soloUntil) = _node.AckGate;
        bool gateMoved = through != _ackedThrough || soloUntil != _soloAckUntil || _node.State != _state || _node.BackupInStep != _backupInStep;
        Volatile.Write(ref _ackedThrough, through);
        Interlocked.Exchange(ref _soloAckUntil, soloUntil);
        _state = _node.State;
        _backupInStep = _node.BackupInStep;
        if (gateMoved)
        {
            _mirror?.Wake();
        }
        Interlocked.Exchange(ref _soloLeaseUntil, _node.SoloLeaseUntil);
        Volatile.Write(ref _epoch, _node.Epoch);
        if (_node.State != _lastState || _node.ClientsAway != _lastAway)
        {
            _lastState = _node.State;
            _lastAway = _node.ClientsAway;
            _changed.TrySetResult();
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
    }

    /// <summary>
    /// Block <paramref name="blockNo"/> is acknowledged: the backup holds it (or the primary acknowledges
    /// alone under the solo lease), so no takeover can lose it. What the ack gate and the observers ask.
    /// </summary>
    private bool IsAcknowledged(ulong blockNo) =>
        blockNo <= Volatile.Read(ref _ackedThrough) || Interlocked.Read(ref _soloAckUntil) > TimeProvider.System.GetTimestamp();

    private Task WhenChanged()
    {
        lock (_gate)
        {
            return _changed.Task;
        }
    }

    /// <summary>Until the node's state changes or <paramref name="stop"/> (a stop is looked at by the caller).</summary>
    private static async Task WaitAsync(Task changed, CancellationToken stop)
    {
        try
        {
            await changed.WaitAsync(stop).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // Stopping.
        }
    }

    private static TaskCompletionSource Completed()
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        done.SetResult();
        return done;
    }

    void IPairLinkEvents.Connected(int connection) => Call(() => _node.OnConnected(connection));

    void IPairLinkEvents.Accepted(int connection) => Call(() => _node.OnAccepted(connection));

    void IPairLinkEvents.Closed(int connection) => Call(() => _node.OnClosed(connection));

    void IPairLinkEvents.Corrupt(int connection, string why) => Call(() => _node.OnCorrupt(connection, why));

    void IPairLinkEvents.Frame(int connection, ReplicationType type, ReadOnlySpan<byte> payload)
    {
        // The reader's own thread, every frame: no closure, nothing allocated.
        lock (_gate)
        {
            _node.OnFrame(connection, type, payload);
            Observe();
        }
    }

    private void WitnessAnswered(int request, WitnessAnswer answer) => Call(() => _node.OnWitnessAnswer(request, answer));

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        if (_ticker is not null)
        {
            await _ticker.ConfigureAwait(false);
        }
        EngineNode? serving = _serving;
        _serving = null;
        await _observers.CloseAsync().ConfigureAwait(false);
        if (serving is not null)
        {
            await serving.DisposeAsync().ConfigureAwait(false); // drains and closes the journal
        }
        await _transport.DisposeAsync().ConfigureAwait(false);
        if (_witness is not null)
        {
            await _witness.DisposeAsync().ConfigureAwait(false);
        }
        _journalFault.Dispose();
        if (serving is null)
        {
            lock (_gate)
            {
                try
                {
                    _ledger.Dispose();
                }
                catch (JournalFaultException)
                {
                    // A halted backup's journal: its failure was told when it happened.
                }
            }
        }
        _stop.Dispose();
    }

    /// <summary>The pipeline's side of the pair: one per serving node (its stop is that node's).</summary>
    private sealed class Mirror(PairHost host) : IBlockMirror
    {
        private bool _stopping;
        private Action? _wake;

        public bool IsConnected => host._backupInStep;

        public bool MayAcknowledge => host._state == PairState.Primary
            && (host._backupInStep || TimeProvider.System.GetTimestamp() < Interlocked.Read(ref host._soloLeaseUntil));

        public void Send(ReadOnlySpan<byte> block, in ChainHead sealedHead)
        {
            lock (host._gate)
            {
                host._node.OnBlockSealed(block, sealedHead.BlockNo, sealedHead.Hash);
                host.Observe();
            }
        }

        public void SendStateChecksum(ulong blockNo, Hash32 checksum)
        {
            lock (host._gate)
            {
                host._node.OnStateChecksum(blockNo, in checksum);
            }
        }

        public bool IsAcknowledged(ulong blockNo, out string? never)
        {
            never = null;
            if (host.IsAcknowledged(blockNo))
            {
                return true;
            }
            if (host._state == PairState.Halted)
            {
                never = $"halted: block {blockNo} was never acknowledged by a backup";
            }
            else if (Volatile.Read(ref _stopping) && !host._backupInStep)
            {
                // Stepped down, or no backup in step: only the stop (the drain) ends the wait.
                never = $"stopping: block {blockNo} was never acknowledged by a backup";
            }
            return false;
        }

        public void OnAckProgress(Action wake) => _wake = wake;

        /// <summary>The ack gate's answer may have changed: wake it if it waits.</summary>
        public void Wake() => _wake?.Invoke();

        public void BeginStop()
        {
            Volatile.Write(ref _stopping, true);
            Wake();
        }
    }
}
