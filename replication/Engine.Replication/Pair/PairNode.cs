using Engine.Core.Chain;
using Engine.Core.Journaling;
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
    /// <summary>No lease: a primary acknowledges only with a backup in step.</summary>
    None,

    /// <summary>The operator's, for good (<c>--allow-solo</c>).</summary>
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
    private readonly Queue<(ulong BlockNo, Hash32 Hash)> _unacked = new();
    private ulong _ackedBlockNo;
    private ulong _lastSealedBlockNo;
    private readonly Dictionary<int, long> _awaitingHello = [];
    private long _backupHeardAt;
    private long _backupSentAt;

    // Primary: asking the peer whether it took over (at start, and while without a backup).
    private int _probe = NoConnection;
    private long _probeStartedAt;
    private long _lastProbeAt;

    // Primary: the lease.
    private long _leaseUntil;
    private bool _holderAtWitness;
    private int _leaseRequest;
    private long _leaseAskedAt;
    private bool _leaseAskInFlight;
    private long _nextLeaseAskAt;
    private bool _inStepAtHalt;
    private bool _haltedAsPrimary;
    private string? _lastLeaseRefusal;

    // Primary with a witness: clients sent to the other node while cut off from backup and witness.
    private bool _couldAcknowledge;
    private long _unableSince;

    // Backup: the link to the primary.
    private int _primary = NoConnection;
    private bool _primaryConnected;
    private long _primaryHeardAt;
    private long _primarySentAt;
    private long _reconnectAt;
    private bool _lostInStep;
    private int _takeoverRequest;
    private bool _takeoverAskInFlight;
    private readonly Dictionary<ulong, Hash32> _primaryChecksums = [];
    private byte[] _unpacked = [];

    private int _nextRequest;

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
        _leaseSource = settings.Witness is not null || witness is not null ? LeaseSource.Witness : settings.AllowSolo ? LeaseSource.Operator : LeaseSource.None;
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
        _lastSealedBlockNo = ledger.Head.BlockNo;
        _ackedBlockNo = ledger.Head.BlockNo;
        State = settings.Role == PairRole.Primary ? PairState.Probing : PairState.Following;
    }

    public string Name => _name;

    public PairState State { get; private set; }

    /// <summary>The epoch this node seals in (a primary), or followed last (a backup).</summary>
    public ulong Epoch { get; private set; }

    /// <summary>Why the node halted, or null.</summary>
    public string? HaltReason { get; private set; }

    /// <summary>Primary: a backup is attached and live (its catch-up sent).</summary>
    public bool BackupInStep => State == PairState.Primary && _backup != NoConnection && _backupLive;

    /// <summary>Primary: the backup in step has acknowledged the end of its catch-up, so it holds every block this node acknowledged.</summary>
    public bool BackupHoldsEverything => BackupInStep && _backupCaughtUp;

    /// <summary>Primary: its clients should go to the other node (cut off from backup and witness, see <see cref="Tick"/>).</summary>
    public bool ClientsAway { get; private set; }

    /// <summary>Whether the solo lease is held now.</summary>
    public bool SoloLeaseHeld => _leaseSource switch
    {
        LeaseSource.Operator => true,
        LeaseSource.Witness => _leaseUntil > _time.GetTimestamp(),
        _ => false,
    };

    /// <summary>Primary: may acknowledge now (a backup in step, or the solo lease).</summary>
    public bool MayAcknowledge => State == PairState.Primary && (BackupInStep || SoloLeaseHeld);

    /// <summary>The highest block the backup has acknowledged on any link (it only rises).</summary>
    public ulong AckedBlockNo => _ackedBlockNo;

    /// <summary>
    /// Whether block <paramref name="blockNo"/> (sealed by this primary) may be acknowledged to its
    /// clients now: the backup holds it, or no backup is in step and the solo lease is held.
    /// </summary>
    public bool IsAcknowledged(ulong blockNo)
    {
        if (State != PairState.Primary)
        {
            return false;
        }
        if ((_mutations & PairMutation.AckBeforeBackup) != 0 && BackupInStep)
        {
            return true;
        }
        return _ackedBlockNo >= blockNo || (!BackupInStep && SoloLeaseHeld);
    }

    /// <summary>True where this node takes connections on its replication endpoint (a primary; a halted one closes it).</summary>
    public bool IsListening => State is PairState.Primary or PairState.Probing;

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
            _unacked.Enqueue((blockNo, hash));
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
        if (!IsListening || _awaitingHello.Count >= MirrorHub.MaxHandshakes)
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
                    AskToTakeOver();
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
            if (Elapsed(_backupHeardAt, now) > _settings.SilenceMs)
            {
                CloseBackup($"the backup has been silent for {_settings.SilenceMs} ms");
            }
            else if (_backupLive && Elapsed(_backupSentAt, now) >= _settings.HeartbeatMs)
            {
                SendFrame(_backup, ReplicationType.Heartbeat, [], ref _backupSentAt);
            }
        }
        TickLease(now);
        if (!BackupInStep && _settings.Peer is not null && _probe == NoConnection && Elapsed(_lastProbeAt, now) >= _settings.PeerProbeMs)
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
            _leaseAskInFlight = true;
            _leaseAskedAt = now;
            _leaseRequest = ++_nextRequest;
            _witness!.Ask(_leaseRequest, new WitnessRequest(WitnessVerb.Acquire, Epoch));
        }
        else if (_holderAtWitness)
        {
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
                    StepDown($"the witness has granted epoch {d.Epoch}, above ours ({Epoch}): the other node took over");
                }
                break;
            case WitnessAnswer.Denied d:
                string refusal = $"the witness refused the solo lease ({d.Reason}, holder {d.Holder ?? "-"})";
                if (refusal != _lastLeaseRefusal)
                {
                    Say(PairEventKind.LeaseRefused, refusal);
                }
                _lastLeaseRefusal = refusal;
                break;
            case WitnessAnswer.NoAnswer:
                break;
        }
        _nextLeaseAskAt = now + Ticks(pause);
    }

    private void TickBackup(long now)
    {
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
            return; // the host answers a connect within its timeout
        }
        if (Elapsed(_primaryHeardAt, now) > _settings.SilenceMs)
        {
            Say(PairEventKind.PrimarySilent, $"the primary has been silent for {_settings.SilenceMs} ms");
            ClosePrimary();
            PrimaryGone("silent");
        }
    }

    private void ConnectToPrimary()
    {
        _primaryConnected = false;
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
    }

    /// <summary>Backup: the link to the primary is gone. In step: the primary is lost (take over, with the witness's leave); otherwise try again.</summary>
    private void PrimaryGone(string why)
    {
        _primaryConnected = false;
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
            AskToTakeOver();
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

    private void AskToTakeOver()
    {
        if (_leaseSource != LeaseSource.Witness)
        {
            TakeOver();
            return;
        }
        _takeoverAskInFlight = true;
        _takeoverRequest = ++_nextRequest;
        _leaseAskedAt = _time.GetTimestamp();
        _witness!.Ask(_takeoverRequest, new WitnessRequest(WitnessVerb.Acquire, TakeoverEpoch));
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
            TakeOver();
            return;
        }
        Say(PairEventKind.TakeoverRefused, $"the primary is lost, but the witness refuses the takeover ({WitnessLease.Describe(answer)}): still following");
        // Try the primary again meanwhile (it may be back); ask again after that attempt.
        State = PairState.Following;
        _reconnectAt = _time.GetTimestamp() + Ticks(100);
    }

    private void TakeOver()
    {
        ulong epoch = TakeoverEpoch;
        _lostInStep = false;
        ClosePrimary();
        _primaryChecksums.Clear();
        BecomePrimary(epoch, $"TAKEOVER: primary now, epoch {epoch}, after block {_ledger.Head.BlockNo}", PairEventKind.TakeOver);
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
        _couldAcknowledge = false;
        ClientsAway = false;
        _lastProbeAt = _time.GetTimestamp();
        _events(new PairEvent(kind, text, epoch, _ledger.Head.BlockNo));
    }

    /// <summary>Primary: the other node took over (a higher epoch): become its backup. What was sealed here and never acknowledged is discarded when the chains are compared.</summary>
    private void StepDown(string why)
    {
        Say(PairEventKind.SteppingDown, $"{why}: stepping down to backup");
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
                Say(PairEventKind.SteppingDown, $"the peer is primary in epoch {peerEpoch}, above ours ({Epoch}): stepping down to backup");
                ConnectToPrimary();
                return;
            }
            BecomePrimary(Epoch, "primary: taking a backup", PairEventKind.PrimaryStarted);
            return;
        }
        if (State == PairState.Primary && peerEpoch > Epoch && !BackupInStep)
        {
            StepDown($"the peer is primary in epoch {peerEpoch}, above ours ({Epoch})");
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
            StepDown($"a backup's chain ends in epoch {theirs.Epoch}, above ours ({Epoch})");
            return;
        }
        bool onOurChain = theirs.BlockNo <= _lastSealedBlockNo && _ledger.HasBlock(theirs.BlockNo, theirs.Hash);
        _transport.Send(connection, ReplicationFrame.Hello(ReplicationType.HelloAck, onOurChain ? (byte)0 : (byte)1, in ours));
        if (!onOurChain)
        {
            Say(PairEventKind.BackupDiverged, $"a backup's chain ends at {theirs}, which is not on ours: it must discard its journal and catch up from genesis");
            _transport.Close(connection);
            return;
        }
        CloseBackup("replaced by a new backup");
        _backup = connection;
        _backupLive = false;
        _unacked.Clear();
        long now = _time.GetTimestamp();
        _backupHeardAt = now;
        _backupSentAt = now;
        ulong catchUpTo = _lastSealedBlockNo;
        _catchUpTo = catchUpTo;
        _backupCaughtUp = catchUpTo <= theirs.BlockNo || (_mutations & PairMutation.ReleaseLeaseOnCatchUpSent) != 0; // it holds everything already
        CatchUp(theirs.BlockNo, catchUpTo, out long sent);
        SendFrame(_backup, ReplicationType.CaughtUp, [], ref _backupSentAt);
        _backupLive = true;
        Say(PairEventKind.BackupInStep, $"backup caught up: {sent} blocks from block {theirs.BlockNo + 1} to {catchUpTo}; mirroring live", catchUpTo);
    }

    /// <summary>Sends the journal's blocks after <paramref name="theirs"/> up to <paramref name="catchUpTo"/> as LZ4 batches; each batch's last block is expected back as an ack.</summary>
    private void CatchUp(ulong theirs, ulong catchUpTo, out long sent)
    {
        var batch = new byte[CatchUpBatch.MaxRawBytes];
        var compressed = new byte[CatchUpBatch.MaxFrameBytes];
        int batched = 0;
        long blocks = 0;
        ulong lastNo = 0;
        Hash32 lastHash = default;
        void Flush()
        {
            if (batched == 0)
            {
                return;
            }
            int length = CatchUpBatch.Pack(batch.AsSpan(0, batched), compressed);
            _transport.Send(_backup, compressed.AsSpan(0, length));
            _unacked.Enqueue((lastNo, lastHash));
            batched = 0;
        }
        _ledger.ReadBlocks(theirs, catchUpTo, (entry, _) =>
        {
            BlockFormat.TryReadHeader(entry, out BlockHeader header);
            if (batched + ReplicationFrame.HeaderBytes + entry.Length > batch.Length)
            {
                Flush();
            }
            batched += ReplicationFrame.Write(batch.AsSpan(batched), ReplicationType.Block, entry);
            lastNo = header.BlockNo;
            lastHash = BlockFormat.StoredHash(entry, in header);
            blocks++;
            return true;
        });
        Flush();
        _backupSentAt = _time.GetTimestamp();
        sent = blocks;
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
                    Say(PairEventKind.LinkIncident, $"INCIDENT: the backup acknowledged block {blockNo}, which this link never carried with that hash: resetting the link");
                    CloseBackup("a false acknowledgement");
                    return;
                }
                if (blockNo > _ackedBlockNo)
                {
                    _ackedBlockNo = blockNo;
                }
                if (!_backupCaughtUp && blockNo >= _catchUpTo)
                {
                    _backupCaughtUp = true;
                    _nextLeaseAskAt = 0; // it holds everything acknowledged alone: the lease goes back now
                }
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
        while (_unacked.TryPeek(out (ulong BlockNo, Hash32 Hash) sent) && sent.BlockNo < blockNo)
        {
            _unacked.Dequeue();
        }
        if (_unacked.TryPeek(out (ulong BlockNo, Hash32 Hash) named) && named.BlockNo == blockNo && named.Hash == hash)
        {
            _unacked.Dequeue();
            return true;
        }
        return false;
    }

    private void CloseBackup(string? why)
    {
        if (_backup == NoConnection)
        {
            return;
        }
        _transport.Close(_backup);
        _backup = NoConnection;
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
        switch (type)
        {
            case ReplicationType.HelloAck:
                ChainHead theirs = ReplicationFrame.ReadHello(payload, out byte status);
                if (status != 0)
                {
                    Say(PairEventKind.Diverged, $"our chain (ending at {_ledger.Head}) is not on the primary's (epoch {theirs.Epoch}): its suffix was never acknowledged; discarding it");
                    ClosePrimary();
                    _ledger.DiscardDivergedChain();
                    _lostInStep = false;
                    _reconnectAt = _time.GetTimestamp();
                    return;
                }
                Epoch = theirs.Epoch;
                _lostInStep = false; // attached to a primary again: whatever it acknowledged, we get
                Say(PairEventKind.CatchingUp, $"catching up from the primary (epoch {theirs.Epoch}) after block {_ledger.Head.BlockNo}");
                break;
            case ReplicationType.Block:
                if (!ApplyAndAck(payload))
                {
                    return;
                }
                break;
            case ReplicationType.CatchUpBatch:
                if (_unpacked.Length == 0)
                {
                    _unpacked = new byte[CatchUpBatch.MaxRawBytes];
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
                break;
            case ReplicationType.CaughtUp:
                State = PairState.InStep;
                Say(PairEventKind.InStep, $"in step with the primary: caught up to block {_ledger.Head.BlockNo}, following live");
                break;
            case ReplicationType.Heartbeat:
                SendFrame(_primary, ReplicationType.Heartbeat, [], ref _primarySentAt);
                break;
            case ReplicationType.StateChecksum:
                ulong blockNo = ReplicationFrame.ReadAck(payload, out Hash32 checksum);
                if (_ledger.StateChecksumAfter(blockNo) is { } ours && ours != checksum)
                {
                    Say(PairEventKind.StateMismatch, $"STATE MISMATCH after block {blockNo}: primary {checksum}, backup {ours}");
                    Halt($"state mismatch after block {blockNo}");
                }
                break;
            default:
                throw new InvalidDataException($"a {type} frame from the primary");
        }
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
            ClosePrimary();
            PrimaryGone("a block of an old epoch");
            return false;
        }
        string? refused;
        try
        {
            refused = _ledger.AppendReplicated(block);
        }
        catch (JournalFaultException e)
        {
            Say(PairEventKind.JournalFailed, $"this node's journal failed ({e.Message}): no backup any more, and never a takeover");
            Halt($"journal failed: {e.Message}");
            return false;
        }
        if (refused is not null)
        {
            Say(PairEventKind.LinkIncident, $"INCIDENT: a block from the primary does not chain and is not applied: {refused}; resetting the link");
            ClosePrimary();
            PrimaryGone("a block that does not chain");
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
        byte[] frame = new byte[ReplicationFrame.HeaderBytes + payload.Length];
        ReplicationFrame.Write(frame, type, payload);
        _transport.Send(connection, frame);
        sentAt = _time.GetTimestamp();
    }

    private void Drop(int connection, string why)
    {
        if (_awaitingHello.Remove(connection))
        {
            _transport.Close(connection);
        }
        else if (connection == _backup)
        {
            CloseBackup(why);
        }
        else if (connection == _primary)
        {
            ClosePrimary();
            PrimaryGone(why);
        }
        else if (connection == _probe)
        {
            _transport.Close(_probe);
            EndProbe(null);
        }
    }

    private void Say(PairEventKind kind, string text, ulong? blockNo = null) =>
        _events(new PairEvent(kind, $"{_name}: {text}", Epoch, blockNo ?? _ledger.Head.BlockNo));

    private long Ticks(int ms) => ms * _time.TimestampFrequency / 1000;

    private double Elapsed(long from, long to) => (to - from) * 1000.0 / _time.TimestampFrequency;
}
