using Engine.Core.Ledger;
using Engine.Core.Journaling;
using Engine.Protocol;
using Engine.Replication;
using Engine.Replication.Pair;

namespace Engine.Sim;

/// <summary>
/// One simulated node process: the real <see cref="PairNode"/> over the real
/// <see cref="JournalPairLedger"/>, whose journal is a <see cref="SimulatedJournal"/> on this node's
/// <see cref="SimulatedJournalDevice"/> (the disk: it outlives the process); as primary, the real
/// pipeline's handlers inline (<see cref="SimPipeline"/>); its timer; and what a process can suffer: a
/// crash (memory gone, the device keeps what was committed, perhaps a torn last write), a stall (no step
/// for a while: everything it would have handled waits) and a journal write that fails.
/// </summary>
/// <remarks>
/// What <c>PairHost</c> does around the pair node, done here the same way after every step
/// (<see cref="AfterStep"/>): serve when the node becomes primary (on the ledger's journal and book),
/// drain and reopen the journal when it stops being primary, halt it when its journal has failed.
/// The primary's commits complete a seeded disk latency after each append (FasterLog's committer), so
/// a crash can lose the blocks appended since; the backup's complete when it waits for them (its
/// <see cref="JournalPairLedger.AppendReplicated"/>).
/// </remarks>
public sealed class SimNode
{
    private const long TickNs = 10 * SimClock.NanosPerMs;

    /// <summary>Compare state checksums every this many blocks.</summary>
    /// <summary>
    /// Every 16 blocks. Not by time: each checksum is a frame on the simulated link, whose latencies
    /// come from the seed's randomness, so more of them move every later fault (and the seeds the
    /// mutation tests find their bugs at); the time rule is pinned by its own tests.
    /// </summary>
    public static readonly ChecksumCadence Checksums = new(16, 0);

    /// <summary>A snapshot after every block whose number is a multiple of this; two are kept.</summary>
    public const int SnapshotEvery = 24;

    private readonly SimWorld _world;
    private readonly SimChainView _chain;
    private SimPipeline? _serving;
    private int _generation;
    private int _discarded;
    private long _ticks;
    private int _installsSeen;
    private ulong _baseSeen;

    public SimNode(SimWorld world, string name)
    {
        _world = world;
        Name = name;
        Device = new SimulatedJournalDevice(name);
        SnapshotDisk = new SimSnapshotDisk(name);
        _chain = new SimChainView(world.Blocks);
    }

    /// <summary>The node's snapshot files (they outlive crashes; cleared when a diverged journal is set aside, as they live in its directory).</summary>
    public SimSnapshotDisk SnapshotDisk { get; }

    public string Name { get; }

    /// <summary>The node's disk: survives crashes; replaced when a diverged chain is set aside.</summary>
    public SimulatedJournalDevice Device { get; private set; }

    /// <summary>The ledger of the running process; null while it is down.</summary>
    public JournalPairLedger? Ledger { get; private set; }

    public PairNode? Pair { get; private set; }

    public bool Up => Pair is not null;

    public long StalledUntil { get; set; }

    /// <summary>The chain this node's process holds now (committed or still in memory), as the invariant checker reads it.</summary>
    public SimChainView Chain => _chain.Refresh(Device);

    /// <summary>Starts the process in <paramref name="role"/>: opens the journal on the device (recovering it after a crash) and replays it.</summary>
    public void Start(PairRole role)
    {
        _generation++;
        var snapshots = new SnapshotSchedule(new SnapshotStore(SnapshotDisk, retain: 2), SnapshotEvery, TimeSpan.Zero) { Retention = JournalRetention.Delete };
        _installsSeen = 0;
        Ledger = new JournalPairLedger((anchor, startBlock) => SimulatedJournal.Open(Device, _world.JournalSettings, anchor, startBlock), SetAside, Name, Checksums,
            _ => { }, snapshots, _world.Clock, snapshotsOnOwnThread: false); // its lines carry wall-clock times: not in a trace that must replay byte for byte
        CheckRecovery(Ledger);
        var settings = _world.Settings with { Role = role, Peer = "127.0.0.1:1", ReplicationListen = "127.0.0.1:2" };
        Pair = new PairNode(Name, settings, _world.Clock, new SimTransport(_world.Network, this, () => _world.PeerOf(this)),
            _world.HasWitness ? new SimWitnessPort(_world.Witness, this) : null, Ledger, pairEvent => _world.OnEvent(this, pairEvent), _world.Mutations);
        Pair.Start();
        AfterStep();
        int generation = _generation;
        _world.Clock.After(TickNs, () => TickLoop(generation));
    }

    /// <summary>
    /// A state recovered from a snapshot must be the state a replay of the whole journal reaches: the
    /// snapshot, its anchor in the journal and the replay after it, checked against the chain itself.
    /// </summary>
    private void CheckRecovery(JournalPairLedger ledger)
    {
        if (ledger.Recovery.SnapshotBlock is not { } anchor)
        {
            return;
        }
        _world.Count("recovered-from-snapshot");
        var replayed = new Core.Book.Exchange();
        long from = SimulatedJournalDevice.BeginAddress;
        ulong? after = null;
        if (ledger.Journal.Base is { } journalBase)
        {
            // A journal installed from a snapshot holds no genesis to replay from: the oldest snapshot of a
            // block it holds, and the blocks after it, must reach the state recovery reached from the newest.
            LoadedSnapshot? oldest = new SnapshotStore(SnapshotDisk, retain: 2).LoadNewestFirst(_ => { }).LastOrDefault(s => s.Header.BlockNo >= journalBase.BlockNo);
            if (oldest is null || oldest.Header.BlockNo == anchor
                || ledger.Journal.FindBlock(new JournalAnchor(oldest.Header.BlockNo, oldest.Header.BlockHash)) is not { } address)
            {
                _world.Count("recovered-from-snapshot-unchecked");
                return;
            }
            replayed = oldest.Exchange;
            from = address;
            after = oldest.Header.BlockNo;
        }
        Core.Server.NodeRecovery.Replay(ledger.Journal, replayed, from, after);
        Hash32 recovered = ledger.Exchange.ComputeChecksum(), expected = replayed.ComputeChecksum();
        if (recovered != expected)
        {
            _world.StateViolation($"{Name} recovered from the snapshot of block {anchor} a state ({recovered.ToShortString()}) that a replay of its journal does not reach ({expected.ToShortString()})");
        }
    }

    /// <summary>A diverged chain is set aside: a new, empty device (the old one is dropped; a real node keeps the directory for forensics), and its snapshots with it.</summary>
    private string SetAside()
    {
        _discarded++;
        SnapshotDisk.Clear();
        Device = new SimulatedJournalDevice($"{Name}.{_discarded}");
        _world.Trace($"{Name}: the diverged journal is set aside; a new device {Device.Name}");
        return Device.Name;
    }

    /// <summary>SIGKILL: memory and connections gone; the device keeps what was committed, and with <paramref name="tear"/> part of the write in flight.</summary>
    public void Crash(bool tear)
    {
        Pair = null;
        Ledger = null;
        _serving = null;
        _generation++;
        if (Device.HasPending)
        {
            // What FasterLog had not committed yet: lost, or with a tear, partly written past the commit record.
            _world.Count(tear ? "crash-tears-uncommitted" : "crash-loses-uncommitted");
        }
        Device.Crash(_world.Random, tear);
        _world.Network.Crashed(this);
    }

    /// <summary>
    /// What the host does between the pair node's steps: serve as primary, stop serving (the drain
    /// refuses what waited at the gate; the journal is committed, closed and reopened for the backup),
    /// halt on a failed journal, and answer what the gate lets go.
    /// </summary>
    private void AfterStep()
    {
        PairNode pair = Pair!;
        JournalPairLedger ledger = Ledger!;
        // Every block a node's device holds is read by the checker's view at once (incrementally), so the
        // archive of blocks has it when another node installs a snapshot whose history it is.
        _ = Chain;
        if (ledger.SnapshotsInstalled != _installsSeen)
        {
            _installsSeen = ledger.SnapshotsInstalled;
            _world.Count("snapshot-installed");
        }
        if (Device.Base is { } journalBase && journalBase.BlockNo != _baseSeen)
        {
            _baseSeen = journalBase.BlockNo;
            _world.Count("base-moved");
        }
        if (ledger.Journal.Fault is { } fault && pair.State != PairState.Halted)
        {
            pair.Halt($"this node's journal failed ({fault.Message})");
        }
        if (_serving is { } serving && pair.State != PairState.Primary)
        {
            _serving = null;
            foreach ((SimClient client, int connection, ulong seq) in serving.Drain())
            {
                _world.Clock.After(_world.ClientLatency(), () => client.OnRefused(this, connection, seq));
            }
            if (pair.State != PairState.Halted)
            {
                // As EngineNode's stop: its snapshot taker (lent with the journal) stops first; the last
                // commit may fail, and then the node halts instead of following.
                ledger.LendSnapshots()?.Dispose();
                if (ledger.Journal.CloseReportingFault() is { } lastFault)
                {
                    pair.Halt($"the journal failed while stopping: {lastFault.Message}");
                }
                else
                {
                    ledger.Reopen();
                    CheckRecovery(ledger);
                }
            }
        }
        if (_serving is null && pair.State == PairState.Primary)
        {
            _serving = new SimPipeline(pair, ledger, Name == "B" ? _world.ReferenceOfB : _world.Reference, _world.Clock, Checksums);
        }
        _serving?.Pump((client, connection, seq, receipt) =>
        {
            _world.Acknowledged(this, client, seq, receipt);
            _world.Clock.After(_world.ClientLatency(), () => client.OnAccepted(this, connection, seq, receipt));
        });
    }

    private void TickLoop(int generation)
    {
        if (generation != _generation)
        {
            return;
        }
        Run(() =>
        {
            Pair!.Tick();
            // The snapshot replica's round every 50 ms, as its own thread polls in a real node: follows the journal, snapshots, checksums.
            if (++_ticks % 5 == 0)
            {
                Ledger!.Snapshots?.Step();
            }
        });
        _world.Clock.After(TickNs, () => TickLoop(generation));
    }

    /// <summary>Runs <paramref name="step"/> now, or when a stall ends; never on a crashed process.</summary>
    private void Run(Action step)
    {
        int generation = _generation;
        if (_world.Clock.Now < StalledUntil)
        {
            _world.Clock.At(StalledUntil, () =>
            {
                if (generation == _generation)
                {
                    Run(step);
                }
            });
            return;
        }
        if (Pair is null)
        {
            return;
        }
        step();
        if (Pair is not null)
        {
            AfterStep();
        }
    }

    public void OnAccepted(int connection) => Run(() => Pair!.OnAccepted(connection));

    public void OnConnected(int connection) => Run(() => Pair!.OnConnected(connection));

    public void OnClosed(int connection) => Run(() => Pair!.OnClosed(connection));

    public void OnFrame(int connection, ReplicationType type, ReadOnlySpan<byte> payload)
    {
        byte[] copy = payload.ToArray();
        Run(() => Pair!.OnFrame(connection, type, copy));
    }

    public void OnCorruptFrame(int connection, string why) => Run(() =>
    {
        _world.Trace($"{Name}: corrupt frame on connection {connection} ({why}): link reset");
        _world.Network.Close(this, connection);
        Pair!.OnCorrupt(connection, why);
    });

    public void OnWitnessAnswer(int request, WitnessAnswer answer, int generation) => Run(() =>
    {
        if (generation == _generation)
        {
            Pair!.OnWitnessAnswer(request, answer);
        }
    });

    public int Generation => _generation;

    /// <summary>A client's request arrives: sealed by the serving pipeline and answered once its gate allows; refused when this node does not serve.</summary>
    public void OnRequest(SimClient client, int connection, Transaction tx) => Run(() =>
    {
        PairNode pair = Pair!;
        if (_serving is not { } serving || !pair.MayAcknowledge || pair.ClientsAway)
        {
            _world.Clock.After(_world.ClientLatency(), () => client.OnRefused(this, connection, tx.ClientSeq));
            return;
        }
        long? address;
        try
        {
            address = serving.Submit(client, connection, in tx);
        }
        catch (JournalFaultException e)
        {
            pair.Halt($"the pipeline halted: the journal failed ({e.Message})");
            return;
        }
        if (address is { } appended)
        {
            // FasterLog's committer commits what was appended a disk latency later (a crash before loses it).
            int generation = _generation;
            SimulatedJournalDevice device = Device;
            long commitIn = _world.DiskLatency();
            _world.MaybeCrashBeforeCommit(this, commitIn);
            _world.Clock.After(commitIn, () => Run(() =>
            {
                if (generation == _generation && device == Device && device.CommittedUntil <= appended)
                {
                    device.CommitPending();
                }
            }));
        }
    });
}

/// <summary>The witness as one node sees it: requests in order on its own channel.</summary>
public sealed class SimWitnessPort(SimWitness witness, SimNode node) : IWitnessPort
{
    public void Ask(int request, WitnessRequest what) => witness.Ask(node, request, what);
}
