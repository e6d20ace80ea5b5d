using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Core.Server;
using Engine.Protocol;

namespace Engine.Replication.Pair;

/// <summary>What a pair node is now. Every transition is in <see cref="PairNode"/>.</summary>
public enum PairState : byte
{
    /// <summary>Started as primary, asking the other node whether it took over meanwhile; acknowledges nothing yet.</summary>
    Probing,

    /// <summary>Seals and acknowledges (with a backup in step, or alone under a solo lease).</summary>
    Primary,

    /// <summary>Backup: connecting to the primary, saying hello, catching up.</summary>
    Following,

    /// <summary>Backup: caught up, following live; the only state from which a takeover may start.</summary>
    InStep,

    /// <summary>Backup that lost its primary while in step: asking the witness for the next epoch (or taking over at once without one).</summary>
    TakingOver,

    /// <summary>Its journal failed or its state diverged: acknowledges nothing, follows nobody, never takes over.</summary>
    Halted,
}

/// <summary>Where a node's solo lease comes from.</summary>
public enum LeaseSource : byte
{
    /// <summary>The operator's: for good (<c>--allow-solo</c>), for a while (<c>engine admin go-solo</c>), or none.</summary>
    Operator,

    /// <summary>The witness's, asked for while no backup is in step.</summary>
    Witness,
}

/// <summary>Deliberate bugs, for showing that the simulator finds them. Never set outside its tests.</summary>
[Flags]
public enum PairMutation
{
    None = 0,

    /// <summary>The primary acknowledges a block before the backup's ack (while a backup is in step).</summary>
    AckBeforeBackup = 1,

    /// <summary>A backup takes over when it loses the primary while still catching up.</summary>
    TakeOverWhileCatchingUp = 2,

    /// <summary>The primary gives the witness's lease back once it has sent the catch-up, not once the backup acknowledged it.</summary>
    ReleaseLeaseOnCatchUpSent = 4,

    /// <summary>A primary tells a backup whose chain ends in a later epoch to discard it (instead of stepping down: it is the old primary).</summary>
    IgnoreHigherEpochHello = 8,

    /// <summary>A backup in step that loses its primary takes over without asking the witness it has.</summary>
    TakeOverWithoutWitness = 16,

    /// <summary>A backup with no primary takes over after a head probe whatever the peer's chain holds (not only when the peer's head is on its own chain).</summary>
    TakeOverOnAnyPeerHead = 32,
}

/// <summary>
/// One node of the process pair, as a single-threaded state machine: its role and every transition
/// (primary, backup following, in step, taking over, stepping down, halted), the replication
/// protocol on its side of the link (hello, catch-up, live blocks, acknowledgements that name a block
/// sent on that link, heartbeats, silence), and the solo lease (operator's or witness's, sticky).
/// It does no I/O and reads no clock of its own: time comes from the <see cref="TimeProvider"/>, the
/// link from <see cref="IPairTransport"/>, the witness from <see cref="IWitnessPort"/>, the chain from
/// <see cref="IPairLedger"/>; the host calls its <c>On…</c> methods as things happen and
/// <see cref="Tick"/> for the timers, always from one thread (or under one lock). The simulator hosts
/// it on simulated time and network; that is what makes a failing seed replay exactly.
/// </summary>
public sealed class PairNode
{
    private const int NoConnection = -1;

    /// <summary>Accepted connections waiting for their hello, at most; one past it is closed at once.</summary>
    public const int MaxAwaitingHello = 8;

    private readonly string _name;
    private readonly PairSettings _settings;
    private readonly LeaseSource _leaseSource;
    private readonly TimeProvider _time;
    private readonly IPairTransport _transport;
    private readonly IWitnessPort? _witness;
    private readonly IPairLedger _ledger;
    private readonly Action<PairEvent> _events;
    private readonly PairMutation _mutations;

    // Primary: the backup's link.
    private int _backup = NoConnection;
    private bool _backupLive;
    private ulong _catchUpTo;
    private bool _backupCaughtUp;

    // Primary: the catch-up of the attached backup, streamed a batch at a time (each read of the
    // journal is one short step, not the whole history under the host's lock), at most
    // CatchUpWindow batches unacknowledged; live mirroring starts when a read finds nothing more.
    private bool _catchingUp;
    private ulong _catchUpFrom;
    private ulong _catchUpSentThrough;
    private ulong _linkAckedBlockNo;
    private long _catchUpBlocks;
    // The catch-up's bytes: as framed on the link (LZ4 batches, snapshot chunks) and before compression.
    private long _catchUpWireBytes;
    private long _catchUpRawBytes;
    private byte[] _catchUpRaw = [];
    private byte[] _catchUpFrame = [];

    // Primary: the snapshot a joining backup installs before its blocks, sent a chunk at a time in the same window.
    private CatchUpSnapshot? _outgoing;
    private ulong? _installedAt;
    private long _outgoingSent;
    private long _outgoingAcked;
    private int _chunksUnacked;

    /// <summary>Catch-up batches sent and not yet acknowledged, at most: enough to keep the link busy while the backup applies one.</summary>
    public const int CatchUpWindow = 4;
    // The blocks sent and not yet acknowledged, with when a live one was sent (Untimed: catch-up).
    private const long Untimed = long.MinValue;
    private readonly Queue<(ulong BlockNo, Hash32 Hash, long SentAt)> _unacked = new();
    private ulong _ackedBlockNo;
    private ulong _lastSealedBlockNo;
    private readonly Dictionary<int, long> _awaitingHello = [];
    private long _backupHeardAt;
    private long _backupSentAt;

    // Primary: asking the peer whether it took over (at start, and while without a backup).
    private int _probe = NoConnection;
    private long _probeStartedAt;

    /// <summary>Backup with no primary, the lease free: the connection that asks the peer for its journal's head.</summary>
    private int _headProbe = NoConnection;
    private long _headProbeStartedAt;

    /// <summary>The epoch above the witness's highest, as its refusal of our RESUME named it: the least a takeover after a head probe asks.</summary>
    private ulong _headProbeFloor;
    private long _lastProbeAt;

    // Primary: the lease.
    private long _leaseUntil;
    private bool _holderAtWitness;
    private int _leaseRequest;
    private long _leaseAskedAt;
    private bool _leaseAskInFlight;
    private bool _leaseAskIsAcquire;
    private long _nextLeaseAskAt;
    private bool _inStepAtHalt;
    private bool _haltedAsPrimary;
    private string? _lastLeaseRefusal;
    private long _operatorUntil;

    // Primary with a witness: clients sent to the other node while cut off from backup and witness.
    private bool _couldAcknowledge;
    private long _unableSince;

    // Backup: the link to the primary.
    private int _primary = NoConnection;
    private bool _primaryConnected;
    private bool _helloAnswered;
    private long _connectStartedAt;
    private long _primaryHeardAt;
    private long _primarySentAt;
    private long _reconnectAt;
    private bool _lostInStep;
    private int _takeoverRequest;
    private bool _takeoverAskInFlight;
    private readonly Dictionary<ulong, Hash32> _primaryChecksums = [];
    private byte[] _unpacked = [];

    // Backup: the primary's snapshot arriving (after a HelloAck of status SnapshotFollows), installed when its anchor block comes.
    private bool _awaitingSnapshot;
    private byte[]? _incoming;
    private long _incomingReceived;

    private int _nextRequest;

    // Backup: resuming as the lease holder (see MaybeResume).
    private long _attachedAt;
    private int _resumeRequest;
    private bool _resumeAskInFlight;
    private long _nextResumeAt;
    private ulong _resumeFloor;
    private ulong _resumeEpochAsked;
    private ulong _takeoverEpochAsked;

    /// <summary>How long a backup with a witness goes without a primary before it asks to resume as the lease holder.</summary>
    private int ResumeAfterMs => 2 * _settings.SilenceMs;

    /// <param name="name">The node's name in its cluster (for events).</param>
    /// <param name="settings">Its pair settings: role at start, clocks.</param>
    /// <param name="time">Its clock.</param>
    /// <param name="transport">Its link to the other node.</param>
    /// <param name="witness">The witness, if the lease comes from one.</param>
    /// <param name="ledger">Its journal and state.</param>
    /// <param name="events">Where its pair events go.</param>
    /// <param name="mutations">Deliberate bugs (simulator tests only).</param>
    public PairNode(string name, PairSettings settings, TimeProvider time, IPairTransport transport, IWitnessPort? witness, IPairLedger ledger,
        Action<PairEvent> events, PairMutation mutations = PairMutation.None)
    {
        _name = name;
        _settings = settings.Validate();
        if (settings.Role == PairRole.Standalone)
        {
            throw new ArgumentException("a pair node is a primary or a backup");
        }
        _leaseSource = settings.Witness is not null || witness is not null ? LeaseSource.Witness : LeaseSource.Operator;
        if (_leaseSource == LeaseSource.Witness && witness is null)
        {
            throw new ArgumentException("a witness is configured but no port to it given", nameof(witness));
        }
        _time = time;
        _transport = transport;
        _witness = witness;
        _ledger = ledger;
        _events = events;
        _mutations = mutations;
        Epoch = ledger.Head.Epoch;
        _attachedAt = time.GetTimestamp();
        _lastSealedBlockNo = ledger.Head.BlockNo;
        _ackedBlockNo = ledger.Head.BlockNo;
        State = settings.Role == PairRole.Primary ? PairState.Probing : PairState.Following;
    }

    public string Name => _name;

    /// <summary>The node's state and links, for a person reading why a run got stuck.</summary>
    public string Describe() => State switch
    {
        PairState.Primary => $"{State} e{Epoch}: backup link {_backup} (live {_backupLive}, caught up {_backupCaughtUp}), acked {_ackedBlockNo}/{_lastSealedBlockNo}, lease until {_leaseUntil}, holder {_holderAtWitness}",
        PairState.Following or PairState.InStep or PairState.TakingOver =>
            $"{State} e{Epoch} head {_ledger.Head.BlockNo}: primary link {_primary} (connected {_primaryConnected}, answered {_helloAnswered}), lost in step {_lostInStep}, reconnect at {_reconnectAt}, resume asked {_resumeAskInFlight}",
        _ => $"{State} e{Epoch}{(HaltReason is null ? "" : $" ({HaltReason})")}",
    };

    public PairState State { get; private set; }

    /// <summary>The epoch this node seals in (a primary), or followed last (a backup).</summary>
    public ulong Epoch { get; private set; }

    /// <summary>Why the node halted, or null.</summary>
    public string? HaltReason { get; private set; }

    /// <summary>It halted because its state differed from the primary's after the same blocks (a bug, not a disk).</summary>
    public bool HaltedOnStateMismatch { get; private set; }

    /// <summary>Primary: a backup is attached and live (its catch-up sent).</summary>
    public bool BackupInStep => State == PairState.Primary && _backup != NoConnection && _backupLive;

    /// <summary>Primary: the backup in step has acknowledged the end of its catch-up, so it holds every block this node acknowledged.</summary>
    public bool BackupHoldsEverything => BackupInStep && _backupCaughtUp;

    /// <summary>Primary: its clients should go to the other node (cut off from backup and witness, see <see cref="Tick"/>).</summary>
    public bool ClientsAway { get; private set; }

    /// <summary>Where this node's solo lease comes from.</summary>
    public LeaseSource LeaseSource => _leaseSource;

    /// <summary>Whether the solo lease is held now.</summary>
    public bool SoloLeaseHeld => SoloLeaseUntil > _time.GetTimestamp();

    /// <summary>Until when (<see cref="TimeProvider.GetTimestamp"/>) the solo lease is held as things stand: <see cref="long.MaxValue"/> for the operator's for good, 0 for none.</summary>
    public long SoloLeaseUntil => _leaseSource == LeaseSource.Witness ? _leaseUntil : _settings.AllowSolo ? long.MaxValue : _operatorUntil;

    /// <summary>The witness's lease is held or still registered to this node there (it gives it back once a backup holds everything).</summary>
    public bool HolderAtWitness => _holderAtWitness;

    /// <summary>
    /// The operator's lease for a while (<c>engine admin go-solo</c>): this primary acknowledges alone
    /// while no backup is in step, until <paramref name="untilTimestamp"/>. Not where a witness gives the lease.
    /// </summary>
    public void GrantOperatorLease(long untilTimestamp)
    {
        if (_leaseSource == LeaseSource.Witness)
        {
            throw new InvalidOperationException("this node takes its solo lease from the witness");
        }
        _operatorUntil = untilTimestamp; // the operator's latest word: a shorter grant replaces a longer one
    }

    /// <summary>Primary: may acknowledge now (a backup in step, or the solo lease).</summary>
    public bool MayAcknowledge => State == PairState.Primary && (BackupInStep || SoloLeaseHeld);

    /// <summary>Primary: a snapshot is on its way to the backup, not yet acknowledged installed (the simulator counts faults that cut one).</summary>
    public bool SendingSnapshot => State == PairState.Primary && _catchingUp && _installedAt is { } anchor && _linkAckedBlockNo < anchor;

    /// <summary>The highest block the backup has acknowledged on any link (it only rises).</summary>
    public ulong AckedBlockNo => _ackedBlockNo;

    /// <summary>Primary: from sending a live block to the backup to its acknowledgement (covering acknowledgements time every block they cover).</summary>
    public LatencyRecorder BackupRoundTrip { get; } = new();

    /// <summary>
    /// Whether block <paramref name="blockNo"/> (sealed by this primary) may be acknowledged to its
    /// clients now: the backup holds it, or no backup is in step and the solo lease is held.
    /// </summary>
    public bool IsAcknowledged(ulong blockNo)
    {
        (ulong through, long soloUntil) = AckGate;
        return blockNo <= through || soloUntil > _time.GetTimestamp();
    }

    /// <summary>
    /// The ack gate as things stand, in a form another thread can check without the pair's lock: blocks
    /// up to <c>Through</c> are acknowledged, and until <c>SoloUntil</c> (a <see cref="TimeProvider.GetTimestamp"/>)
    /// every block is (the solo lease, while no backup is in step). Nothing passes unless primary.
    /// </summary>
    public (ulong Through, long SoloUntil) AckGate =>
        State != PairState.Primary ? (0, 0)
        : ((_mutations & PairMutation.AckBeforeBackup) != 0 && BackupInStep ? ulong.MaxValue : _ackedBlockNo, BackupInStep ? 0 : SoloLeaseUntil);

    /// <summary>
    /// True where this node takes connections on its replication endpoint: every node but a halted one
    /// (a primary for its backup and a starting primary's probe; any node for a backup's head probe).
    /// </summary>
    public bool IsListening => State is not PairState.Halted;

    /// <summary>Starts the node in its role: a primary first asks its peer whether it took over; a backup connects.</summary>
    public void Start()
    {
        if (State == PairState.Probing)
        {
            if (_settings.Peer is null)
            {
                BecomePrimary(Epoch, "primary: taking a backup", PairEventKind.PrimaryStarted);
                return;
            }
            StartProbe();
            return;
        }
        Say(PairEventKind.Following, $"backup: following the primary from block {_ledger.Head.BlockNo}");
        ConnectToPrimary();
    }

    /// <summary>Primary: block <paramref name="blockNo"/> was sealed and journaled here; it goes to the backup now.</summary>
    public void OnBlockSealed(ReadOnlySpan<byte> block, ulong blockNo, in Hash32 hash)
    {
        _lastSealedBlockNo = blockNo;
        if (_backup != NoConnection && _backupLive)
        {
            SendFrame(_backup, ReplicationType.Block, block, ref _backupSentAt);
            _unacked.Enqueue((blockNo, hash, _backupSentAt));
        }
    }

    /// <summary>Primary: the state checksum after <paramref name="blockNo"/>, for the backup to compare.</summary>
    public void OnStateChecksum(ulong blockNo, in Hash32 checksum)
    {
        if (_backup != NoConnection && _backupLive)
        {
            Span<byte> frame = stackalloc byte[ReplicationFrame.HeaderBytes + ReplicationFrame.AckBytes];
            ReplicationFrame.WriteAck(frame, ReplicationType.StateChecksum, blockNo, in checksum);
            _transport.Send(_backup, frame);
            _backupSentAt = _time.GetTimestamp();
        }
    }

    /// <summary>This node's journal failed, or its pipeline halted: it acknowledges nothing more and never takes over.</summary>
    public void Halt(string reason)
    {
        if (State == PairState.Halted)
        {
            return;
        }
        _inStepAtHalt = BackupInStep && _backupCaughtUp;
        _haltedAsPrimary = State == PairState.Primary;
        State = PairState.Halted;
        HaltReason = reason;
        CloseBackup(null);
        ClosePrimary();
        CloseHeadProbe();
        foreach (int connection in _awaitingHello.Keys)
        {
            _transport.Close(connection);
        }
        _awaitingHello.Clear();
        Say(PairEventKind.Halted, $"halted ({reason})");
    }

    /// <summary>An outbound connection (to the peer) is up.</summary>
    public void OnConnected(int connection)
    {
        if (connection == _headProbe)
        {
            _transport.Send(connection, ReplicationFrame.Hello(ReplicationType.Hello, ReplicationFrame.HeadProbe, _ledger.Head));
            return;
        }
        if (connection == _probe)
        {
            Span<byte> hello = ReplicationFrame.Hello(ReplicationType.Hello, ReplicationFrame.ProbeOnly, _ledger.Head);
            _transport.Send(connection, hello);
            return;
        }
        if (connection == _primary)
        {
            _primaryConnected = true;
            _primaryHeardAt = _time.GetTimestamp();
            SendFrame(_primary, ReplicationType.Hello, ReplicationFrame.Hello(ReplicationType.Hello, 0, _ledger.Head).AsSpan(ReplicationFrame.HeaderBytes), ref _primarySentAt);
        }
    }

    /// <summary>An inbound connection on the replication endpoint (already authenticated as a node of the cluster).</summary>
    public void OnAccepted(int connection)
    {
        if (!IsListening || _awaitingHello.Count >= MaxAwaitingHello)
        {
            _transport.Close(connection);
            return;
        }
        _awaitingHello[connection] = _time.GetTimestamp();
    }

    /// <summary>A connection ended (closed by the peer, failed, or never connected).</summary>
    public void OnClosed(int connection)
    {
        if (_awaitingHello.Remove(connection))
        {
            return;
        }
        if (connection == _probe)
        {
            EndProbe(null);
            return;
        }
        if (connection == _headProbe)
        {
            _headProbe = NoConnection;
            return;
        }
        if (connection == _backup)
        {
            _backup = NoConnection;
            BackupGone("the link closed");
            return;
        }
        if (connection == _primary)
        {
            _primary = NoConnection;
            PrimaryGone("the link closed");
        }
    }

    /// <summary>A whole frame arrived on <paramref name="connection"/> (its CRC checked by the host; a bad one is a closed link).</summary>
    public void OnFrame(int connection, ReplicationType type, ReadOnlySpan<byte> payload)
    {
        try
        {
            if (connection == _probe)
            {
                OnProbeAnswer(type, payload);
            }
            else if (connection == _headProbe)
            {
                OnHeadProbeAnswer(type, payload);
            }
            else if (_awaitingHello.ContainsKey(connection))
            {
                OnHello(connection, type, payload);
            }
            else if (connection == _backup)
            {
                OnFrameFromBackup(type, payload);
            }
            else if (connection == _primary)
            {
                OnFrameFromPrimary(type, payload);
            }
        }
        catch (InvalidDataException e)
        {
            Say(PairEventKind.LinkIncident, $"INCIDENT: {e.Message}: resetting the link");
            Drop(connection, e.Message);
        }
        catch (JournalFaultException e)
        {
            // A read of this node's journal (a joining backup's head, a catch-up) commits what the
            // pipeline appended first, and that commit can fail: the node's journal is gone.
            JournalFailed(e);
        }
    }

    /// <summary>This node's journal failed: it acknowledges, follows and takes over nothing any more.</summary>
    private void JournalFailed(JournalFaultException e)
    {
        Say(PairEventKind.JournalFailed, $"this node's journal failed ({e.Message}): no backup any more, and never a takeover");
        Halt($"this node's journal failed ({e.Message}): it is no backup any more and never takes over");
    }

    /// <summary>The witness answered request <paramref name="request"/> (or the host gave up on it: <see cref="WitnessAnswer.NoAnswer"/>).</summary>
    public void OnWitnessAnswer(int request, WitnessAnswer answer)
    {
        if (request == _leaseRequest && _leaseAskInFlight)
        {
            _leaseAskInFlight = false;
            OnLeaseAnswer(answer);
        }
        else if (request == _takeoverRequest && _takeoverAskInFlight)
        {
            _takeoverAskInFlight = false;
            OnTakeoverAnswer(answer);
        }
        else if (request == _resumeRequest && _resumeAskInFlight)
        {
            _resumeAskInFlight = false;
            OnResumeAnswer(answer);
        }
    }

    /// <summary>The timers: heartbeats, silence, hello waits, probes, lease renewals, reconnects, sending clients away.</summary>
    public void Tick()
    {
        long now = _time.GetTimestamp();
        foreach ((int connection, long since) in _awaitingHello.ToArray())
        {
            if (Elapsed(since, now) >= _settings.HelloWaitMs)
            {
                _awaitingHello.Remove(connection);
                _transport.Close(connection);
            }
        }
        if (_probe != NoConnection && Elapsed(_probeStartedAt, now) >= _settings.PeerProbeTimeoutMs)
        {
            _transport.Close(_probe);
            EndProbe(null);
        }
        if (_headProbe != NoConnection && Elapsed(_headProbeStartedAt, now) >= _settings.PeerProbeTimeoutMs)
        {
            CloseHeadProbe();
        }
        switch (State)
        {
            case PairState.Primary:
                TickPrimary(now);
                break;
            case PairState.Following:
            case PairState.InStep:
                TickBackup(now);
                break;
            case PairState.TakingOver:
                if (!_takeoverAskInFlight)
                {
                    AskToTakeOver(Math.Max(TakeoverEpoch, _takeoverEpochAsked));
                }
                break;
            case PairState.Halted when _haltedAsPrimary:
                TickLease(now); // a halted primary keeps (or gives back) the lease as it was at the halt; a halted backup never asks
                break;
        }
    }

    private void TickPrimary(long now)
    {
        if (_backup != NoConnection)
        {
            // While its catch-up streams, the backup is not in step (nothing waits on it) and answers a
            // batch only once it has applied it, which on a cold process can take longer than a heartbeat's
            // silence: it is dropped only after ten times as long.
            int silenceMs = _catchingUp ? 10 * _settings.SilenceMs : _settings.SilenceMs;
            if (Elapsed(_backupHeardAt, now) > silenceMs)
            {
                CloseBackup($"the backup has been silent for {silenceMs} ms{(_catchingUp ? " during its catch-up" : "")}");
            }
            else if (_backupLive && Elapsed(_backupSentAt, now) >= _settings.HeartbeatMs)
            {
                SendFrame(_backup, ReplicationType.Heartbeat, [], ref _backupSentAt);
            }
        }
        TickLease(now);
        if (!BackupInStep && !_catchingUp && _settings.Peer is not null && _probe == NoConnection && Elapsed(_lastProbeAt, now) >= _settings.PeerProbeMs)
        {
            StartProbe();
        }
        if (_leaseSource == LeaseSource.Witness)
        {
            if (MayAcknowledge)
            {
                _couldAcknowledge = true;
                _unableSince = 0;
                if (ClientsAway)
                {
                    ClientsAway = false;
                    Say(PairEventKind.ClientsTakenBack, "acknowledging again: taking clients back");
                }
            }
            else if (_couldAcknowledge && !ClientsAway)
            {
                _unableSince = _unableSince == 0 ? now : _unableSince;
                if (Elapsed(_unableSince, now) >= _settings.SilenceMs)
                {
                    ClientsAway = true;
                    Say(PairEventKind.ClientsSentAway, $"no backup in step and no solo lease for {_settings.SilenceMs} ms: sending clients to the other node");
                }
            }
        }
    }

    /// <summary>
    /// Whether the witness's lease is wanted: until a backup holds everything this node acknowledged
    /// alone (it has acknowledged the end of its catch-up: a catch-up sent is not a catch-up received,
    /// and a backup that lost it must not take over on a lease given back too early); once halted,
    /// what it was at the halt, for good.
    /// </summary>
    private bool WantsLease => State == PairState.Halted ? !_inStepAtHalt : !(BackupInStep && _backupCaughtUp);

    private void TickLease(long now)
    {
        if (_leaseSource != LeaseSource.Witness || _leaseAskInFlight || now < _nextLeaseAskAt)
        {
            return;
        }
        if (WantsLease)
        {
            _leaseAskIsAcquire = true;
            _leaseAskInFlight = true;
            _leaseAskedAt = now;
            _leaseRequest = ++_nextRequest;
            _witness!.Ask(_leaseRequest, new WitnessRequest(WitnessVerb.Acquire, Epoch));
        }
        else if (_holderAtWitness)
        {
            // A backup holds everything acknowledged alone: stop acknowledging alone first, then give
            // the lease back (were the backup lost before the answer, nothing acknowledged meanwhile
            // may be missing from it when it takes over on the lease given back).
            _leaseUntil = 0;
            _leaseAskIsAcquire = false;
            _leaseAskInFlight = true;
            _leaseAskedAt = now;
            _leaseRequest = ++_nextRequest;
            _witness!.Ask(_leaseRequest, new WitnessRequest(WitnessVerb.Release, Epoch));
        }
    }

    private void OnLeaseAnswer(WitnessAnswer answer)
    {
        long now = _time.GetTimestamp();
        int pause = 50;
        switch (answer)
        {
            case WitnessAnswer.Granted g:
                bool was = SoloLeaseHeld;
                _leaseUntil = g.LeaseMs > _settings.LeaseMarginMs ? _leaseAskedAt + Ticks(g.LeaseMs - _settings.LeaseMarginMs) : 0;
                _holderAtWitness = true;
                _lastLeaseRefusal = null;
                pause = Math.Max(20, g.LeaseMs / 3);
                if (!was)
                {
                    Say(PairEventKind.LeaseGranted, $"solo lease from the witness ({g.LeaseMs} ms)");
                }
                break;
            case WitnessAnswer.Released or WitnessAnswer.NotHolder:
                if (_holderAtWitness)
                {
                    Say(PairEventKind.LeaseReleased, "a backup is in step: solo lease given back to the witness");
                }
                _holderAtWitness = false;
                _leaseUntil = 0;
                break;
            case WitnessAnswer.Denied { Reason: WitnessRefusal.Fenced } d:
                _leaseUntil = 0;
                _holderAtWitness = false;
                if (State == PairState.Primary)
                {
                    StepDown($"the witness has granted epoch {d.Epoch}, above ours ({Epoch}): the other node took over", d.Epoch);
                }
                break;
            case WitnessAnswer.Denied d:
                // The witness says who holds it: after a refusal this node is holder only if the witness says so.
                _holderAtWitness = d.Holder == _name;
                string refusal = $"the witness refused the solo lease ({d.Reason}, holder {d.Holder ?? "-"})";
                if (refusal != _lastLeaseRefusal)
                {
                    Say(PairEventKind.LeaseRefused, refusal);
                }
                _lastLeaseRefusal = refusal;
                break;
            case WitnessAnswer.NoAnswer:
                // The request may still have reached the witness and been granted (the lease is sticky):
                // count ourselves its holder until a release is answered, or the other node could never take over.
                _holderAtWitness |= _leaseAskIsAcquire;
                break;
        }
        // What is wanted changed while the request was out (a backup came in step, or was lost): ask again at once.
        _nextLeaseAskAt = WantsLease != _leaseAskIsAcquire ? now : now + Ticks(pause);
    }

    /// <summary>The primary's state checksums kept until this node has its own for the same block (its replica may lag).</summary>
    private const int KeptPrimaryChecksums = 64;

    /// <summary>
    /// Compares each of the primary's state checksums kept with this node's for the same block, once
    /// it has it (at once when the ledger computes them as it applies; later when its snapshot
    /// replica does, off the apply thread); a mismatch halts this backup.
    /// </summary>
    private void CompareChecksums()
    {
        foreach ((ulong blockNo, Hash32 theirs) in _primaryChecksums)
        {
            if (_ledger.StateChecksumAfter(blockNo) is not { } ours)
            {
                continue;
            }
            _primaryChecksums.Remove(blockNo);
            if (ours != theirs)
            {
                Say(PairEventKind.StateMismatch, $"STATE MISMATCH after block {blockNo}: primary {theirs}, backup {ours}. The same blocks gave different books", blockNo);
                HaltedOnStateMismatch = true;
                Halt($"state mismatch after block {blockNo}");
                return;
            }
            Say(PairEventKind.ChecksumMatched, $"state checksum after block {blockNo} matches the primary's ({ours.ToShortString()})", blockNo);
        }
    }

    private void TickBackup(long now)
    {
        MaybeResume(now);
        if (_primaryChecksums.Count > 0)
        {
            CompareChecksums();
        }
        if (_primary == NoConnection)
        {
            if (now >= _reconnectAt)
            {
                ConnectToPrimary();
            }
            return;
        }
        if (!_primaryConnected)
        {
            // The host answers a connect within its own timeout; this one is for a host (or network)
            // that loses the answer: a connect never heard of again would hold the backup for good.
            if (Elapsed(_connectStartedAt, now) > Math.Max(_settings.SilenceMs, _settings.PeerProbeTimeoutMs) * 2)
            {
                ClosePrimary();
                PrimaryGone("no answer to the connect");
            }
            return;
        }
        // A primary that sends nothing (not even a heartbeat) for the silence is gone. Before it answers
        // our hello it may be busy for us (finding our head in its journal): it has longer then.
        int silenceMs = _helloAnswered ? _settings.SilenceMs : Math.Max(_settings.SilenceMs, _settings.HelloAnswerMs);
        if (Elapsed(_primaryHeardAt, now) > silenceMs)
        {
            Say(PairEventKind.PrimarySilent, $"the primary has been silent for {silenceMs} ms");
            ClosePrimary();
            PrimaryGone("silent");
        }
    }

    private void ConnectToPrimary()
    {
        _primaryConnected = false;
        _helloAnswered = false;
        _connectStartedAt = _time.GetTimestamp();
        _primary = _transport.Connect();
    }

    private void ClosePrimary()
    {
        if (_primary != NoConnection)
        {
            _transport.Close(_primary);
            _primary = NoConnection;
        }
        _primaryConnected = false;
        DropIncomingSnapshot();
    }

    /// <summary>A snapshot that was arriving on a link now gone is dropped (the next hello starts again).</summary>
    private void DropIncomingSnapshot()
    {
        _awaitingSnapshot = false;
        _incoming = null;
        _incomingReceived = 0;
    }

    /// <summary>
    /// Backup: the link carried something wrong (bytes that fail authentication, a bad frame, a block
    /// that does not chain): nothing of it was applied, and the primary is not known to be gone, so
    /// this is no takeover: the link is reset and the catch-up resumes from our head. Were we in step
    /// and the primary cannot be reached again, that is the primary lost in step (a takeover then).
    /// </summary>
    private void ResetPrimaryLink()
    {
        ClosePrimary();
        if (State == PairState.InStep)
        {
            State = PairState.Following;
            _lostInStep = true; // cleared by the primary's next hello answer
        }
        _reconnectAt = _time.GetTimestamp() + Ticks(100);
    }

    /// <summary>The host found the bytes of <paramref name="connection"/> corrupt (a record that fails authentication, a frame with a bad length or CRC): that link is reset.</summary>
    public void OnCorrupt(int connection, string why)
    {
        Say(PairEventKind.LinkIncident, $"INCIDENT: corrupt data on the replication link ({why}); nothing applied; resetting the link");
        Drop(connection, why);
    }

    /// <summary>Backup: the link to the primary is gone. In step: the primary is lost (take over, with the witness's leave); otherwise try again.</summary>
    private void PrimaryGone(string why)
    {
        _primaryConnected = false;
        DropIncomingSnapshot();
        bool wasInStep = State == PairState.InStep || ((_mutations & PairMutation.TakeOverWhileCatchingUp) != 0 && State == PairState.Following && _ledger.Head.BlockNo > 0);
        if (State == PairState.InStep)
        {
            State = PairState.Following;
        }
        if (State != PairState.Following)
        {
            return;
        }
        if (wasInStep || _lostInStep)
        {
            if (wasInStep)
            {
                Say(PairEventKind.PrimaryLost, $"lost the primary ({why}), in step up to block {_ledger.Head.BlockNo}");
            }
            _lostInStep = true;
            State = PairState.TakingOver;
            AskToTakeOver(TakeoverEpoch);
            return;
        }
        _reconnectAt = _time.GetTimestamp() + Ticks(100);
    }

    /// <summary>
    /// The epoch a takeover claims: one above both the last block's and the primary's (from its hello):
    /// a primary that sealed nothing in its epoch left no block of it, and a takeover from the head's
    /// epoch alone would claim that same epoch again (two primaries in one epoch, neither fenced).
    /// </summary>
    private ulong TakeoverEpoch => Math.Max(Epoch, _ledger.Head.Epoch) + 1;

    private void AskToTakeOver(ulong epoch)
    {
        if (_leaseSource != LeaseSource.Witness || (_mutations & PairMutation.TakeOverWithoutWitness) != 0)
        {
            TakeOver(epoch);
            return;
        }
        _takeoverAskInFlight = true;
        _takeoverRequest = ++_nextRequest;
        _leaseAskedAt = _time.GetTimestamp();
        _takeoverEpochAsked = epoch;
        _witness!.Ask(_takeoverRequest, new WitnessRequest(WitnessVerb.Acquire, _takeoverEpochAsked));
    }

    private void OnTakeoverAnswer(WitnessAnswer answer)
    {
        if (State != PairState.TakingOver)
        {
            return;
        }
        if (answer is WitnessAnswer.Granted g)
        {
            _leaseUntil = g.LeaseMs > _settings.LeaseMarginMs ? _leaseAskedAt + Ticks(g.LeaseMs - _settings.LeaseMarginMs) : 0;
            _holderAtWitness = true;
            TakeOver(_takeoverEpochAsked);
            return;
        }
        Say(PairEventKind.TakeoverRefused, $"the primary is lost, but the witness refuses the takeover ({WitnessClient.Describe(answer)}): still following");
        // Try the primary again meanwhile (it may be back); ask again after that attempt.
        State = PairState.Following;
        _reconnectAt = _time.GetTimestamp() + Ticks(100);
    }

    private void TakeOver(ulong epoch, string? why = null)
    {
        _lostInStep = false;
        CloseHeadProbe();
        ClosePrimary();
        _primaryChecksums.Clear();
        BecomePrimary(epoch, $"TAKEOVER: primary now, epoch {epoch}, after block {_ledger.Head.BlockNo}{why}", PairEventKind.TakeOver);
    }

    /// <summary>
    /// Backup with a witness, attached to no primary for <see cref="ResumeAfterMs"/> and not lost in
    /// step: asks the witness to RESUME, which it grants only if this node holds the lease already (a
    /// holder restarted as a backup never learns it otherwise, and the other node may not take over
    /// while it holds it: both would stay backups). The holder has every acknowledged block.
    /// </summary>
    private void MaybeResume(long now)
    {
        if (_leaseSource != LeaseSource.Witness || State != PairState.Following || _lostInStep || _resumeAskInFlight
            || now < _nextResumeAt || Elapsed(_attachedAt, now) < ResumeAfterMs)
        {
            return;
        }
        _resumeAskInFlight = true;
        _resumeRequest = ++_nextRequest;
        _leaseAskedAt = now;
        _resumeEpochAsked = Math.Max(TakeoverEpoch, _resumeFloor);
        _witness!.Ask(_resumeRequest, new WitnessRequest(WitnessVerb.Resume, _resumeEpochAsked));
    }

    private void OnResumeAnswer(WitnessAnswer answer)
    {
        long now = _time.GetTimestamp();
        _nextResumeAt = now + Ticks(_settings.PeerProbeMs);
        if (State is not (PairState.Following or PairState.InStep))
        {
            return;
        }
        switch (answer)
        {
            case WitnessAnswer.Granted g:
                // Also if it attached meanwhile: the witness has a new epoch for it now, so the primary it
                // follows is fenced; and that primary acknowledged nothing this node lacks (it holds the lease).
                _leaseUntil = g.LeaseMs > _settings.LeaseMarginMs ? _leaseAskedAt + Ticks(g.LeaseMs - _settings.LeaseMarginMs) : 0;
                _holderAtWitness = true;
                TakeOver(_resumeEpochAsked, ": resuming, as the witness names this node the lease holder (it has every acknowledged block) and no primary answers");
                break;
            case WitnessAnswer.Denied { Reason: WitnessRefusal.Fenced } d when d.Holder == _name:
                _resumeFloor = d.Epoch + 1; // the holder, but its last grant's epoch is above what its chain shows: the next one
                _nextResumeAt = now;
                break;
            case WitnessAnswer.Denied { Reason: WitnessRefusal.NotHolder, Holder: null } free when State == PairState.Following && _headProbe == NoConnection && _settings.Peer is not null:
                // Nobody holds the lease, so nobody acknowledges alone now, and this node follows nobody:
                // if the peer is a backup too, whichever holds the other's chain takes over.
                _headProbeFloor = free.Epoch + 1;
                _headProbeStartedAt = now;
                _headProbe = _transport.Connect();
                break;
        }
    }

    /// <summary>
    /// The peer's answer to our head probe. When it is a backup too and its journal's head is on our
    /// chain, this node asks the witness to take over, in an epoch above every one granted: it holds
    /// every block the peer holds. That is every acknowledged block: while nobody held the lease each
    /// acknowledgement needed the backup's, and the witness only lets go of a solo holder's lease once
    /// its backup holds everything; a chain set aside as diverged was behind the primary's, which holds
    /// what it lacked (and answers this probe, or is down, and then nothing is decided). When the
    /// peer's chain is the longer, it takes over by the same rule; chains that diverge, or a peer that
    /// does not answer, are the operator's. Both asking at once is settled by the witness (sticky).
    /// </summary>
    private void OnHeadProbeAnswer(ReplicationType type, ReadOnlySpan<byte> payload)
    {
        if (type != ReplicationType.HelloAck)
        {
            throw new InvalidDataException($"a {type} frame where a head probe's answer belongs");
        }
        ChainHead theirs = ReplicationFrame.ReadHello(payload, out byte status);
        CloseHeadProbe();
        long now = _time.GetTimestamp();
        if (status != ReplicationFrame.HeadProbe || State != PairState.Following || _lostInStep || Elapsed(_attachedAt, now) < ResumeAfterMs)
        {
            return; // it is primary (our connects reach it), or this node found a primary meanwhile
        }
        if (!_ledger.HasBlock(theirs.BlockNo, theirs.Hash) && (_mutations & PairMutation.TakeOverOnAnyPeerHead) == 0)
        {
            Say(PairEventKind.Note, $"no primary, the lease free, and the peer is a backup whose chain (ending at {theirs}) is not on ours: it takes over if ours is on its chain; else the operator decides");
            return;
        }
        Say(PairEventKind.Note, $"no primary, the lease free, and the peer is a backup whose chain (ending at {theirs}) is on ours: asking the witness to take over");
        State = PairState.TakingOver;
        AskToTakeOver(Math.Max(TakeoverEpoch, _headProbeFloor));
    }

    private void CloseHeadProbe()
    {
        if (_headProbe != NoConnection)
        {
            _transport.Close(_headProbe);
            _headProbe = NoConnection;
        }
    }

    private void BecomePrimary(ulong epoch, string text, PairEventKind kind)
    {
        State = PairState.Primary;
        Epoch = epoch;
        _lastSealedBlockNo = _ledger.Head.BlockNo;
        _ackedBlockNo = Math.Max(_ackedBlockNo, 0);
        _unacked.Clear();
        _backup = NoConnection;
        _backupLive = false;
        _catchingUp = false;
        _couldAcknowledge = false;
        ClientsAway = false;
        _lastProbeAt = _time.GetTimestamp();
        _events(new PairEvent(kind, text, epoch, _ledger.Head.BlockNo));
    }

    /// <summary>Primary: the other node took over (a higher epoch): become its backup. What was sealed here and never acknowledged is discarded when the chains are compared.</summary>
    /// <param name="why">What showed it.</param>
    /// <param name="theirEpoch">The epoch the other node is primary in (the event carries it).</param>
    private void StepDown(string why, ulong theirEpoch)
    {
        _events(new PairEvent(PairEventKind.SteppingDown, $"{_name}: {why}: stepping down to backup", theirEpoch, _lastSealedBlockNo));
        CloseBackup(null);
        foreach (int connection in _awaitingHello.Keys)
        {
            _transport.Close(connection);
        }
        _awaitingHello.Clear();
        if (_probe != NoConnection)
        {
            _transport.Close(_probe);
            _probe = NoConnection;
        }
        _leaseUntil = 0;
        _holderAtWitness = false;
        ClientsAway = false;
        State = PairState.Following;
        _attachedAt = _time.GetTimestamp(); // it was primary until now: no resume at once
        _lostInStep = false;
        ConnectToPrimary();
    }

    private void StartProbe()
    {
        _probeStartedAt = _time.GetTimestamp();
        _lastProbeAt = _probeStartedAt;
        _probe = _transport.Connect();
    }

    private void OnProbeAnswer(ReplicationType type, ReadOnlySpan<byte> payload)
    {
        if (type != ReplicationType.HelloAck)
        {
            throw new InvalidDataException($"a {type} frame where a probe's answer belongs");
        }
        ulong theirs = ReplicationFrame.ReadHello(payload, out _).Epoch;
        _transport.Close(_probe);
        EndProbe(theirs);
    }

    /// <summary>The probe ended with the peer's epoch as primary, or null (nobody answered).</summary>
    private void EndProbe(ulong? peerEpoch)
    {
        _probe = NoConnection;
        if (State == PairState.Probing)
        {
            if (peerEpoch > Epoch)
            {
                State = PairState.Following;
                _attachedAt = _time.GetTimestamp();
                _events(new PairEvent(PairEventKind.SteppingDown, $"{_name}: the peer is primary in epoch {peerEpoch}, above ours ({Epoch}): stepping down to backup", peerEpoch.Value, _ledger.Head.BlockNo));
                ConnectToPrimary();
                return;
            }
            BecomePrimary(Epoch, "primary: taking a backup", PairEventKind.PrimaryStarted);
            return;
        }
        if (State == PairState.Primary && peerEpoch > Epoch && !BackupInStep)
        {
            StepDown($"the peer is primary in epoch {peerEpoch}, above ours ({Epoch})", peerEpoch.Value);
        }
    }

    /// <summary>Primary: a node said hello (or asked who is primary).</summary>
    private void OnHello(int connection, ReplicationType type, ReadOnlySpan<byte> payload)
    {
        _awaitingHello.Remove(connection);
        if (type != ReplicationType.Hello)
        {
            throw new InvalidDataException($"a {type} frame where a hello belongs");
        }
        ChainHead theirs = ReplicationFrame.ReadHello(payload, out byte intent);
        ChainHead ours = new(Epoch, _lastSealedBlockNo, 0, default);
        if (intent == ReplicationFrame.HeadProbe)
        {
            // A backup with no primary asks what we hold: our journal's head, unless we are primary.
            bool primary = State == PairState.Primary;
            _transport.Send(connection, ReplicationFrame.Hello(ReplicationType.HelloAck, primary ? (byte)0 : ReplicationFrame.HeadProbe, primary ? ours : _ledger.Head));
            _transport.Close(connection);
            return;
        }
        if (intent == ReplicationFrame.ProbeOnly && State is not (PairState.Primary or PairState.Probing))
        {
            _transport.Close(connection); // as before backups took connections: the prober hears nobody
            return;
        }
        if (intent == ReplicationFrame.ProbeOnly)
        {
            _transport.Send(connection, ReplicationFrame.Hello(ReplicationType.HelloAck, 0, in ours));
            _transport.Close(connection);
            return;
        }
        if (intent != 0 || State != PairState.Primary)
        {
            _transport.Close(connection);
            return;
        }
        if (theirs.Epoch > Epoch && (_mutations & PairMutation.IgnoreHigherEpochHello) == 0)
        {
            // Its chain has blocks of a later epoch: another node took over since, and this one is an old
            // primary cut off until now. Telling it to discard would throw away what the new primary acknowledged.
            _transport.Close(connection);
            StepDown($"a backup's chain ends in epoch {theirs.Epoch}, above ours ({Epoch})", theirs.Epoch);
            return;
        }
        CatchUpSnapshot? snapshot = theirs.BlockNo <= _lastSealedBlockNo ? _ledger.SnapshotFor(theirs.BlockNo) : null;
        bool onOurChain = snapshot is not null || (theirs.BlockNo <= _lastSealedBlockNo && _ledger.HasBlock(theirs.BlockNo, theirs.Hash));
        _transport.Send(connection, ReplicationFrame.Hello(ReplicationType.HelloAck, snapshot is not null ? ReplicationFrame.SnapshotFollows : onOurChain ? (byte)0 : (byte)1, in ours));
        if (!onOurChain)
        {
            Say(PairEventKind.BackupDiverged, $"a backup's chain ends at {theirs}, which is not on ours: it must discard its journal and catch up from genesis");
            _transport.Close(connection);
            return;
        }
        CloseBackup("replaced by a new backup");
        // Its head is on our chain: it holds every block up to it (journaled in its durability, as an ack
        // says), so those are acknowledged now. A block that waited at the ack gate when the last link
        // broke, and that this backup got before it did, would otherwise wait for a later block's ack,
        // which never comes while its client only resends that request (found by the simulator).
        // (Not when it installs a snapshot: its head was not checked against our chain.)
        if (snapshot is null && theirs.BlockNo > _ackedBlockNo)
        {
            _ackedBlockNo = theirs.BlockNo;
        }
        _backup = connection;
        _backupLive = false;
        _unacked.Clear();
        long now = _time.GetTimestamp();
        _backupHeardAt = now;
        _backupSentAt = now;
        _backupCaughtUp = false;
        _catchingUp = true;
        _catchUpFrom = theirs.BlockNo;
        _catchUpSentThrough = theirs.BlockNo;
        _linkAckedBlockNo = theirs.BlockNo;
        _catchUpBlocks = 0;
        _catchUpWireBytes = 0;
        _catchUpRawBytes = 0;
        _outgoing = snapshot;
        _installedAt = snapshot?.BlockNo;
        _outgoingSent = 0;
        _outgoingAcked = 0;
        _chunksUnacked = 0;
        if (snapshot is not null)
        {
            Say(PairEventKind.CatchingUp, $"backup {_transport.PeerName(connection)} (its chain ends at block {theirs.BlockNo}) installs the snapshot of block {snapshot.BlockNo} ({snapshot.Content.Length:N0} bytes), then the blocks after it");
        }
        PumpCatchUp();
    }

    /// <summary>
    /// Sends catch-up batches until <see cref="CatchUpWindow"/> are unacknowledged (each ack sends
    /// more); once a read finds no block after the last one sent, the catch-up ends: the backup is
    /// told, and every block sealed from then on is mirrored live.
    /// </summary>
    private void PumpCatchUp()
    {
        while (_catchingUp && _unacked.Count + _chunksUnacked < CatchUpWindow)
        {
            if (_outgoing is { } snapshot)
            {
                SendSnapshotPart(snapshot);
            }
            else if (!SendCatchUpBatch())
            {
                if (_installedAt is { } installed && _linkAckedBlockNo < installed)
                {
                    // Everything is sent, but the backup is still installing the snapshot (loading it can take
                    // longer than a heartbeat's silence): it goes live once it has acknowledged it.
                    break;
                }
                FinishCatchUp();
            }
        }
    }

    /// <summary>The next chunk of the snapshot the backup installs; after the last, the block it stands after (acknowledged as a block).</summary>
    private void SendSnapshotPart(CatchUpSnapshot snapshot)
    {
        if (_outgoingSent < snapshot.Content.Length)
        {
            if (_catchUpFrame.Length < SnapshotTransfer.MaxFrameBytes)
            {
                _catchUpFrame = new byte[Math.Max(SnapshotTransfer.MaxFrameBytes, CatchUpBatch.MaxFrameBytes)];
            }
            int length = SnapshotTransfer.PackChunk(snapshot.Content, _outgoingSent, _catchUpFrame, out int chunk);
            _transport.Send(_backup, _catchUpFrame.AsSpan(0, length));
            _catchUpWireBytes += length;
            _catchUpRawBytes += chunk;
            _outgoingSent += chunk;
            _chunksUnacked++;
        }
        else
        {
            _transport.Send(_backup, ReplicationType.SnapshotAnchor, snapshot.AnchorBlock);
            _unacked.Enqueue((snapshot.BlockNo, snapshot.BlockHash, Untimed));
            _catchUpSentThrough = snapshot.BlockNo;
            _outgoing = null;
        }
        _backupSentAt = _time.GetTimestamp();
    }

    /// <summary>Sends the blocks after the last one sent, up to the last sealed, as one LZ4 batch (its last block is expected back as an ack); false when there were none.</summary>
    private bool SendCatchUpBatch()
    {
        if (_catchUpRaw.Length == 0)
        {
            _catchUpRaw = new byte[CatchUpBatch.MaxRawBytes];
        }
        if (_catchUpFrame.Length < CatchUpBatch.MaxFrameBytes)
        {
            _catchUpFrame = new byte[Math.Max(SnapshotTransfer.MaxFrameBytes, CatchUpBatch.MaxFrameBytes)];
        }
        int batched = 0;
        long blocks = 0;
        ulong lastNo = _catchUpSentThrough;
        Hash32 lastHash = default;
        byte[] raw = _catchUpRaw;
        // The visitor only copies: the frame is packed and sent after the journal's scan has ended.
        _ledger.ReadBlocks(_catchUpSentThrough, _lastSealedBlockNo, (entry, _) =>
        {
            if (batched + ReplicationFrame.HeaderBytes + entry.Length > raw.Length && batched > 0)
            {
                return false;
            }
            BlockFormat.TryReadHeader(entry, out BlockHeader header);
            batched += ReplicationFrame.Write(raw.AsSpan(batched), ReplicationType.Block, entry);
            lastNo = header.BlockNo;
            lastHash = BlockFormat.StoredHash(entry, in header);
            blocks++;
            return true;
        });
        if (blocks == 0)
        {
            return false;
        }
        int length = CatchUpBatch.Pack(raw.AsSpan(0, batched), _catchUpFrame);
        _transport.Send(_backup, _catchUpFrame.AsSpan(0, length));
        _catchUpWireBytes += length;
        _catchUpRawBytes += batched;
        _backupSentAt = _time.GetTimestamp();
        _unacked.Enqueue((lastNo, lastHash, Untimed));
        _catchUpSentThrough = lastNo;
        _catchUpBlocks += blocks;
        return true;
    }

    /// <summary>The backup has been sent every block sealed so far: it is told, and mirrored live from the next block on.</summary>
    private void FinishCatchUp()
    {
        _catchingUp = false;
        _catchUpTo = _catchUpSentThrough;
        // It holds everything already when it acknowledged the last block sent (or needed none).
        _backupCaughtUp = _linkAckedBlockNo >= _catchUpTo || (_mutations & PairMutation.ReleaseLeaseOnCatchUpSent) != 0;
        if (_backupCaughtUp)
        {
            _nextLeaseAskAt = 0; // it holds everything acknowledged alone: the lease goes back now
        }
        SendFrame(_backup, ReplicationType.CaughtUp, [], ref _backupSentAt);
        _backupLive = true;
        string sent = _installedAt is { } snapshot
            ? $"the snapshot of block {snapshot} and {_catchUpBlocks} blocks after it, to block {_catchUpTo}"
            : $"{_catchUpBlocks} blocks from block {_catchUpFrom + 1} to {_catchUpTo}";
        Say(PairEventKind.BackupInStep, $"backup {_transport.PeerName(_backup)} caught up: {sent} ({_catchUpWireBytes:N0} bytes sent, {_catchUpRawBytes:N0} before LZ4); mirroring live", _catchUpTo);
    }

    private void OnFrameFromBackup(ReplicationType type, ReadOnlySpan<byte> payload)
    {
        _backupHeardAt = _time.GetTimestamp();
        switch (type)
        {
            case ReplicationType.Ack:
                ulong blockNo = ReplicationFrame.ReadAck(payload, out Hash32 hash);
                if (!AcknowledgesSentBlock(blockNo, in hash))
                {
                    Say(PairEventKind.LinkIncident, $"INCIDENT: backup {_transport.PeerName(_backup)} acknowledged block {blockNo}, which this link never carried with that hash: resetting the link");
                    CloseBackup("a false acknowledgement");
                    return;
                }
                if (blockNo > _ackedBlockNo)
                {
                    _ackedBlockNo = blockNo;
                }
                _linkAckedBlockNo = blockNo;
                if (_catchingUp)
                {
                    PumpCatchUp();
                }
                else if (!_backupCaughtUp && blockNo >= _catchUpTo)
                {
                    _backupCaughtUp = true;
                    _nextLeaseAskAt = 0; // it holds everything acknowledged alone: the lease goes back now
                }
                break;
            case ReplicationType.SnapshotAck:
                long received = SnapshotTransfer.ReadAck(payload);
                if (_chunksUnacked == 0 || received <= _outgoingAcked || received > _outgoingSent)
                {
                    throw new InvalidDataException($"a snapshot acknowledgement of {received:N0} bytes, where {_outgoingAcked:N0} of {_outgoingSent:N0} sent were acknowledged");
                }
                _outgoingAcked = received;
                _chunksUnacked--;
                PumpCatchUp();
                break;
            case ReplicationType.Heartbeat:
                break;
            default:
                throw new InvalidDataException($"a {type} frame from the backup");
        }
    }

    /// <summary>Cumulative: an ack of block N covers every block sent before it; it must name one sent on this link, with its hash.</summary>
    private bool AcknowledgesSentBlock(ulong blockNo, in Hash32 hash)
    {
        long now = _time.GetTimestamp();
        while (_unacked.TryPeek(out (ulong BlockNo, Hash32 Hash, long SentAt) sent) && sent.BlockNo < blockNo)
        {
            _unacked.Dequeue();
            TimeRoundTrip(sent.SentAt, now);
        }
        if (_unacked.TryPeek(out (ulong BlockNo, Hash32 Hash, long SentAt) named) && named.BlockNo == blockNo && named.Hash == hash)
        {
            _unacked.Dequeue();
            TimeRoundTrip(named.SentAt, now);
            return true;
        }
        return false;
    }

    private void TimeRoundTrip(long sentAt, long now)
    {
        if (sentAt != Untimed)
        {
            BackupRoundTrip.Record(now - sentAt, _time.TimestampFrequency);
        }
    }

    private void CloseBackup(string? why)
    {
        if (_backup == NoConnection)
        {
            return;
        }
        _transport.Close(_backup);
        _backup = NoConnection;
        _catchingUp = false;
        _outgoing = null;
        if (why is not null)
        {
            BackupGone(why);
        }
        _backupLive = false;
    }

    private void BackupGone(string why)
    {
        bool wasLive = _backupLive;
        _backupLive = false;
        _backupCaughtUp = false;
        _catchingUp = false;
        _unacked.Clear();
        _nextLeaseAskAt = 0; // no backup in step: ask for the lease now
        if (State == PairState.Primary && wasLive)
        {
            Say(PairEventKind.BackupLost, $"lost the backup ({why}): {(SoloLeaseHeld ? "acknowledging alone (solo lease)" : "acknowledging nothing until a backup is back in step")}", _ackedBlockNo);
        }
    }

    private void OnFrameFromPrimary(ReplicationType type, ReadOnlySpan<byte> payload)
    {
        _primaryHeardAt = _time.GetTimestamp();
        _attachedAt = _primaryHeardAt;
        switch (type)
        {
            case ReplicationType.HelloAck:
                ChainHead theirs = ReplicationFrame.ReadHello(payload, out byte status);
                if (status != 0 && status != ReplicationFrame.SnapshotFollows)
                {
                    Say(PairEventKind.Diverged, $"our chain (ending at {_ledger.Head}) is not on the primary's (epoch {theirs.Epoch}): its suffix was never acknowledged; discarding it");
                    ClosePrimary();
                    _ledger.DiscardDivergedChain();
                    _lostInStep = false;
                    _reconnectAt = _time.GetTimestamp();
                    return;
                }
                Epoch = theirs.Epoch;
                _helloAnswered = true;
                _lostInStep = false; // attached to a primary again: whatever it acknowledged, we get
                _awaitingSnapshot = status == ReplicationFrame.SnapshotFollows;
                _incoming = null;
                _incomingReceived = 0;
                Say(PairEventKind.CatchingUp, _awaitingSnapshot
                    ? $"catching up from the primary (epoch {theirs.Epoch}): installing its snapshot, then the blocks after it (our chain ends at block {_ledger.Head.BlockNo})"
                    : $"catching up from the primary (epoch {theirs.Epoch}) after block {_ledger.Head.BlockNo}");
                break;
            case ReplicationType.SnapshotChunk:
                ReceiveSnapshotChunk(payload);
                break;
            case ReplicationType.SnapshotAnchor:
                if (!InstallSnapshot(payload))
                {
                    return;
                }
                _primaryHeardAt = _time.GetTimestamp(); // nor is installing a snapshot
                break;
            case ReplicationType.Block:
                if (!ApplyAndAck(payload))
                {
                    return;
                }
                break;
            case ReplicationType.CatchUpBatch:
                if (_awaitingSnapshot)
                {
                    throw new InvalidDataException("blocks before the snapshot announced");
                }
                if (_unpacked.Length < CatchUpBatch.MaxRawBytes)
                {
                    _unpacked = new byte[Math.Max(SnapshotTransfer.MaxChunkBytes, CatchUpBatch.MaxRawBytes)];
                }
                CatchUpBatch.Reader blocks = CatchUpBatch.Open(payload, _unpacked);
                bool any = false;
                while (blocks.TryNext(out ReadOnlySpan<byte> block))
                {
                    if (!Apply(block))
                    {
                        return;
                    }
                    any = true;
                }
                if (any)
                {
                    SendAck();
                }
                _primaryHeardAt = _time.GetTimestamp(); // applying a large batch is no silence of the primary's
                break;
            case ReplicationType.CaughtUp:
                State = PairState.InStep;
                Say(PairEventKind.InStep, $"in step with the primary {_transport.PeerName(_primary)}: caught up to block {_ledger.Head.BlockNo}, following live");
                break;
            case ReplicationType.Heartbeat:
                SendFrame(_primary, ReplicationType.Heartbeat, [], ref _primarySentAt);
                break;
            case ReplicationType.StateChecksum:
                ulong blockNo = ReplicationFrame.ReadAck(payload, out Hash32 checksum);
                _primaryChecksums[blockNo] = checksum;
                if (_primaryChecksums.Count > KeptPrimaryChecksums)
                {
                    _primaryChecksums.Remove(_primaryChecksums.Keys.Min());
                }
                CompareChecksums();
                break;
            default:
                throw new InvalidDataException($"a {type} frame from the primary");
        }
    }

    /// <summary>Backup: one chunk of the primary's snapshot, in order, acknowledged with the bytes received so far.</summary>
    private void ReceiveSnapshotChunk(ReadOnlySpan<byte> payload)
    {
        if (!_awaitingSnapshot)
        {
            throw new InvalidDataException("a snapshot chunk that no hello announced");
        }
        if (_unpacked.Length < SnapshotTransfer.MaxChunkBytes)
        {
            _unpacked = new byte[Math.Max(SnapshotTransfer.MaxChunkBytes, CatchUpBatch.MaxRawBytes)];
        }
        ReadOnlySpan<byte> chunk = SnapshotTransfer.OpenChunk(payload, _unpacked, out long offset, out long total);
        if (offset != _incomingReceived || (_incoming is not null && _incoming.LongLength != total))
        {
            throw new InvalidDataException($"a snapshot chunk at {offset:N0} of {total:N0} bytes, where {_incomingReceived:N0} of {_incoming?.LongLength ?? total:N0} came");
        }
        _incoming ??= new byte[total];
        chunk.CopyTo(_incoming.AsSpan((int)offset));
        _incomingReceived += chunk.Length;
        Span<byte> ack = stackalloc byte[SnapshotTransfer.AckBytes];
        SnapshotTransfer.WriteAck(ack, _incomingReceived);
        SendFrame(_primary, ReplicationType.SnapshotAck, ack, ref _primarySentAt);
    }

    /// <summary>Backup: the snapshot's block came after its last chunk: the snapshot and a journal that starts at that block replace ours; false (the link reset) if refused.</summary>
    private bool InstallSnapshot(ReadOnlySpan<byte> anchorBlock)
    {
        if (!_awaitingSnapshot || _incoming is null || _incomingReceived != _incoming.LongLength)
        {
            throw new InvalidDataException($"a snapshot's block before its last chunk ({_incomingReceived:N0} of {_incoming?.LongLength ?? 0:N0} bytes came)");
        }
        if (BlockFormat.TryReadHeader(anchorBlock, out BlockHeader header) is not null || header.Epoch > Epoch)
        {
            throw new InvalidDataException($"a snapshot's block that does not read as a block of epoch {Epoch} or before");
        }
        byte[] snapshot = _incoming;
        _incoming = null;
        _awaitingSnapshot = false;
        string? refused;
        try
        {
            refused = _ledger.InstallSnapshot(snapshot, anchorBlock);
        }
        catch (JournalFaultException e)
        {
            JournalFailed(e);
            return false;
        }
        if (refused is not null)
        {
            Say(PairEventKind.LinkIncident, $"INCIDENT: the primary's snapshot of block {header.BlockNo} is not installed: {refused}; resetting the link");
            ResetPrimaryLink();
            return false;
        }
        Say(PairEventKind.CatchingUp, $"installed the primary's snapshot of block {header.BlockNo} ({snapshot.Length:N0} bytes): this node's journal starts there now");
        SendAck();
        return true;
    }

    private bool ApplyAndAck(ReadOnlySpan<byte> block)
    {
        if (!Apply(block))
        {
            return false;
        }
        SendAck();
        return true;
    }

    /// <summary>Verifies, journals and applies one block from the primary; false (the link reset) if it does not chain.</summary>
    private bool Apply(ReadOnlySpan<byte> block)
    {
        // A primary of epoch E sends old blocks of any earlier epoch in its catch-up, but seals live
        // blocks only in E, and never anything above it.
        if (BlockFormat.TryReadHeader(block, out BlockHeader header) is null && (header.Epoch > Epoch || (State == PairState.InStep && header.Epoch != Epoch)))
        {
            Say(PairEventKind.LinkIncident, $"INCIDENT: a block of epoch {header.Epoch} from a primary of epoch {Epoch}: resetting the link");
            ResetPrimaryLink();
            return false;
        }
        string? refused;
        try
        {
            refused = _ledger.AppendReplicated(block);
        }
        catch (JournalFaultException e)
        {
            JournalFailed(e);
            return false;
        }
        if (refused is not null)
        {
            Say(PairEventKind.LinkIncident, $"INCIDENT: a block from the primary does not chain and is not applied: {refused}; resetting the link");
            ResetPrimaryLink();
            return false;
        }
        return true;
    }

    private void SendAck()
    {
        if (_primary == NoConnection)
        {
            return;
        }
        ChainHead head = _ledger.Head;
        Span<byte> frame = stackalloc byte[ReplicationFrame.HeaderBytes + ReplicationFrame.AckBytes];
        ReplicationFrame.WriteAck(frame, ReplicationType.Ack, head.BlockNo, head.Hash);
        _transport.Send(_primary, frame);
        _primarySentAt = _time.GetTimestamp();
    }

    private void SendFrame(int connection, ReplicationType type, ReadOnlySpan<byte> payload, ref long sentAt)
    {
        _transport.Send(connection, type, payload);
        sentAt = _time.GetTimestamp();
    }

    private void Drop(int connection, string why)
    {
        if (connection == _backup)
        {
            CloseBackup(why);
        }
        else if (connection == _primary)
        {
            ResetPrimaryLink();
        }
        else if (connection == _probe)
        {
            _transport.Close(_probe);
            EndProbe(null);
        }
        else
        {
            // Waiting for its hello, or just refused while reading it: closed either way.
            _awaitingHello.Remove(connection);
            _transport.Close(connection);
        }
    }

    private void Say(PairEventKind kind, string text, ulong? blockNo = null) =>
        _events(new PairEvent(kind, $"{_name}: {text}", Epoch, blockNo ?? (State == PairState.Primary ? _lastSealedBlockNo : _ledger.Head.BlockNo)));

    private long Ticks(int ms) => ms * _time.TimestampFrequency / 1000;

    private double Elapsed(long from, long to) => (to - from) * 1000.0 / _time.TimestampFrequency;
}
