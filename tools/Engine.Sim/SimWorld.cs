using System.Globalization;
using Engine.Core.Book;
using Engine.Core.Journaling;
using Engine.Protocol;
using Engine.Replication;
using Engine.Replication.Pair;

namespace Engine.Sim;

/// <summary>What one seed's run found.</summary>
public sealed record SimResult(int Seed, string? Violation, IReadOnlyList<string> Trace, long Steps, double SimulatedSeconds, IReadOnlyDictionary<string, int> Faults, long Acknowledged,
    bool NeededOperator, bool Liveness);

/// <summary>
/// One seed: two nodes (A starts primary, B backup), a witness and three clients on simulated time.
/// The seed decides every latency, every fault and its moment: crashes and restarts (losing or tearing
/// what the journal had not committed), stalls, link cuts, partitions (also from the witness), delays,
/// corrupted frames, failed journal appends and commits, and client disconnects, for
/// <see cref="FaultSeconds"/>; then everything heals and the pair has <see cref="QuietSeconds"/> to
/// become whole and answer every request. The invariants are checked after every step that changed a
/// role, and at the end.
/// </summary>
public sealed class SimWorld
{
    public const int FaultSeconds = 20;
    public const int QuietSeconds = 15;
    private const int TraceLines = 60;

    private readonly Random _random;
    private readonly Queue<string> _trace = new();
    private readonly List<string> _fullTrace;
    private readonly Dictionary<ulong, Hash32> _acknowledgedBlocks = [];
    private readonly List<(ulong BlockNo, Hash32 Hash, string What)> _acknowledged = [];
    private readonly Dictionary<string, int> _faults = [];
    private readonly Dictionary<string, (SimChainView Chain, int Version, int Verified)> _verified = [];
    private ulong _highestAcknowledged;
    private string? _violation;

    public SimWorld(int seed, PairMutation mutations = PairMutation.None, WitnessMutation witnessMutations = WitnessMutation.None, bool keepFullTrace = false)
    {
        Seed = seed;
        _random = new Random(seed);
        _fullTrace = keepFullTrace ? [] : null!;
        Mutations = mutations;
        Clock = new SimClock();
        Network = new SimNetwork(Clock, _random, Trace);
        HasWitness = true;
        Witness = new SimWitness(this, leaseMs: 2_000) { Mutations = witnessMutations };
        Settings = new PairSettings { Role = PairRole.Primary, Witness = "127.0.0.1:3" };
        Reference = ReferenceData.Development();
        ReferenceOfB = DifferentFrom(Reference);
        // Disk durability: a block counts as journaled once committed, so a crash of one node never loses
        // an acknowledged block (in memory durability, only the backup's copy would cover it).
        JournalSettings = new JournalSettings
        {
            Directory = "simulated",
            ClusterId = ClusterId.Parse("5eed000000000000000000000000000000000000000000000000000000000001"[..32]),
            Durability = Durability.Disk,
            MaxTransactionsPerBlock = 64,
        }.Validate();
        Blocks = new SimBlockArchive(() =>
        {
            foreach (SimNode node in Nodes!)
            {
                _ = node.Chain;
            }
        });
        Nodes = [new SimNode(this, "A"), new SimNode(this, "B")];
        Clients = [.. Enumerable.Range(1, 3).Select(i => new SimClient(this, (uint)i, 10_000))];
    }

    public int Seed { get; }

    public SimClock Clock { get; }

    public SimNetwork Network { get; }

    public SimWitness Witness { get; }

    public bool HasWitness { get; }

    public PairSettings Settings { get; }

    /// <summary>Both nodes' journals are opened with these (on each node's own simulated device).</summary>
    public JournalSettings JournalSettings { get; }

    /// <summary>Node A's configuration.</summary>
    public ReferenceData Reference { get; }

    /// <summary>
    /// Node B's configuration: it differs from A's in what the book decides (account limits, a price
    /// band, a reference price), never in what is checked before the ledger (the clients and the tick),
    /// so the clients' requests pass either way. Whichever node starts a ledger journals its own; the
    /// state checksums the backup compares show that both follow the ledger, whatever their file says.
    /// </summary>
    public ReferenceData ReferenceOfB { get; }

    private static ReferenceData DifferentFrom(ReferenceData reference) => new(
        new Core.Ledger.InstrumentTable(reference.Instruments.All.Select(i => i with { ReferencePrice = i.ReferencePrice + i.TickSize, PriceBandBps = 40 })),
        reference.Accounts.ToDictionary(a => a.Key, a => a.Value with { MaxOrderQuantity = 3 }),
        reference.Clients,
        "node B's configuration");

    /// <summary>The seed's randomness, for the faults the parts themselves carry out (where a crash tears the last write).</summary>
    public Random Random => _random;

    public PairMutation Mutations { get; }

    public List<SimNode> Nodes { get; }

    /// <summary>Every block a node's journal held at some point (see <see cref="SimChainView"/>).</summary>
    public SimBlockArchive Blocks { get; }

    public List<SimClient> Clients { get; }

    /// <summary>The full trace, when asked for (the determinism test compares two runs').</summary>
    public IReadOnlyList<string> FullTrace => _fullTrace;

    /// <summary>Clients send no new request from then on (the quiet period's second half is for answering).</summary>
    public long StopSendingAt => ((long)FaultSeconds + (QuietSeconds / 2)) * 1_000 * SimClock.NanosPerMs;

    public SimNode PeerOf(SimNode node) => node == Nodes[0] ? Nodes[1] : Nodes[0];

    public long ClientLatency() => 20_000 + _random.Next(0, 200_000);

    /// <summary>From an append to the commit that covers it (FasterLog's committer and an SSD's flush).</summary>
    public long DiskLatency() => 30_000 + _random.Next(0, 500_000);

    public long WitnessLatency() => 50_000 + _random.Next(0, 400_000);

    /// <summary>A client's pause between an answer and its next request.</summary>
    public long ThinkTime() => _random.Next(1, 80) * SimClock.NanosPerMs;

    public SimResult Run()
    {
        Nodes[0].Start(PairRole.Primary);
        Nodes[1].Start(PairRole.Backup);
        Clock.After(200 * SimClock.NanosPerMs, () => Clients.ForEach(c => c.Start()));
        long faultsEnd = (long)FaultSeconds * 1_000 * SimClock.NanosPerMs;
        ScheduleFault(faultsEnd);
        Clock.RunUntil(faultsEnd);
        Heal();
        Clock.After(OperatorAfterNs, OperatorStartsAPrimary);
        long end = faultsEnd + ((long)QuietSeconds * 1_000 * SimClock.NanosPerMs);
        Clock.RunUntil(end);
        if (_violation is null)
        {
            CheckFinal();
        }
        return new SimResult(Seed, _violation, [.. _trace], Clock.Steps, Clock.Now / 1e9, _faults, _acknowledged.Count, NeededOperator, IsLiveness);
    }

    public void Trace(string line)
    {
        string stamped = string.Create(CultureInfo.InvariantCulture, $"{Clock.Now / 1e6,10:F3} ms  {line}");
        _trace.Enqueue(stamped);
        if (_trace.Count > TraceLines)
        {
            _trace.Dequeue();
        }
        _fullTrace?.Add(stamped);
    }

    public void OnEvent(SimNode node, PairEvent pairEvent)
    {
        Trace($"{PairEvent.Name(pairEvent.Kind)} e{pairEvent.Epoch} b{pairEvent.BlockNo}: {pairEvent.Text}");
        // Faults aimed at the pair's most delicate moment (FoundationDB calls this buggify): right after a
        // primary has sent a catch-up, sometimes the network goes before the backup has it.
        if (pairEvent.Kind == PairEventKind.BackupInStep && Clock.Now < (long)FaultSeconds * 1_000 * SimClock.NanosPerMs && !Network.Partitioned && _random.Next(8) == 0)
        {
            long lasting = _random.Next(200, 2_000) * SimClock.NanosPerMs;
            Count("partition-after-catch-up");
            Trace($"fault: partition the nodes right after a catch-up was sent, for {lasting / SimClock.NanosPerMs} ms");
            Network.Partitioned = true;
            Clock.After(lasting, () => Network.Partitioned = false);
        }
    }

    /// <summary>
    /// A node tells a client "accepted" for a request in <paramref name="receipt"/>'s block. Checked
    /// here, where it matters: no two different blocks are acknowledged under one number (split brain),
    /// and a node that acknowledges a block at or past every block acknowledged so far (it extends the
    /// history) holds every one of them (nothing acknowledged is missing from the history of the
    /// primary that acknowledges now). A node answering a resent request from an older block of its
    /// chain extends nothing; the split-brain check covers it. Incremental: a node's chain only grows
    /// until it is discarded (a new generation), so each acknowledged block is checked once per chain.
    /// </summary>
    public void Acknowledged(SimNode by, SimClient client, ulong seq, Receipt receipt)
    {
        if (_acknowledged.Count > 0 && receipt.BlockNo < _highestAcknowledged)
        {
            if (_acknowledgedBlocks.TryGetValue(receipt.BlockNo, out Hash32 before) && before != receipt.BlockHash)
            {
                Violate($"split brain: block {receipt.BlockNo} acknowledged as {before} and as {receipt.BlockHash} (by {by.Name}, client {client.Id} seq {seq})");
            }
            else if (!_acknowledgedBlocks.ContainsKey(receipt.BlockNo))
            {
                _acknowledgedBlocks[receipt.BlockNo] = receipt.BlockHash;
                _acknowledged.Add((receipt.BlockNo, receipt.BlockHash, $"client {client.Id} seq {seq} by {by.Name}"));
            }
            return;
        }
        _highestAcknowledged = receipt.BlockNo;
        SimChainView chain = by.Chain;
        (SimChainView Chain, int Version, int Verified) seen = _verified.GetValueOrDefault(by.Name);
        if (seen.Chain != chain || seen.Version != chain.Version)
        {
            seen = (chain, chain.Version, 0);
        }
        for (int i = seen.Verified; i < _acknowledged.Count; i++)
        {
            (ulong blockNo, Hash32 hash, string what) = _acknowledged[i];
            if (!chain.HasBlock(blockNo, hash))
            {
                Violate($"lost: block {blockNo} ({what}) was acknowledged but is not in the chain of {by.Name}, which now acknowledges block {receipt.BlockNo} (epoch {by.Pair?.Epoch}, holding {chain.Count} blocks)");
                return;
            }
        }
        _verified[by.Name] = (seen.Chain, seen.Version, _acknowledged.Count);
        if (_acknowledgedBlocks.TryGetValue(receipt.BlockNo, out Hash32 earlier) && earlier != receipt.BlockHash)
        {
            Violate($"split brain: block {receipt.BlockNo} acknowledged as {earlier} and as {receipt.BlockHash} (by {by.Name}, client {client.Id} seq {seq})");
            return;
        }
        if (!_acknowledgedBlocks.ContainsKey(receipt.BlockNo))
        {
            _acknowledgedBlocks[receipt.BlockNo] = receipt.BlockHash;
            _acknowledged.Add((receipt.BlockNo, receipt.BlockHash, $"client {client.Id} seq {seq} by {by.Name}"));
        }
    }

    /// <summary>
    /// The nodes that are the pair now: the primary that may acknowledge (a backup in step or the solo
    /// lease; of the highest epoch, if two think so) and, if that primary counts its backup as holding
    /// everything (in step, its catch-up acknowledged), that backup. A node that merely believes it is
    /// in step (stalled or cut off, its primary has dropped it) or a primary that cannot acknowledge (an
    /// old one not yet told, one the operator started on the wrong chain) serves nobody: nothing it holds
    /// or lacks reaches a client, and it learns of the newer epoch before it can.
    /// </summary>
    private IEnumerable<SimNode> CurrentNodes()
    {
        SimNode? primary = Nodes.Where(n => n.Pair is { State: PairState.Primary, MayAcknowledge: true }).OrderByDescending(n => n.Pair!.Epoch).FirstOrDefault();
        if (primary is null)
        {
            yield break;
        }
        yield return primary;
        if (primary.Pair!.BackupHoldsEverything && PeerOf(primary).Pair is { State: PairState.InStep })
        {
            yield return PeerOf(primary);
        }
    }

    /// <summary>No acknowledged block is missing from the history of a node that is the pair now (see <see cref="CurrentNodes"/>).</summary>
    private void CheckAcknowledgedKept()
    {
        foreach (SimNode node in CurrentNodes())
        {
            SimChainView chain = node.Chain;
            foreach ((ulong blockNo, Hash32 hash, string what) in _acknowledged)
            {
                if (!chain.HasBlock(blockNo, hash))
                {
                    Violate($"lost: block {blockNo} ({what}) was acknowledged but is not in the chain of {node.Name} ({node.Pair!.State}, holding {chain.Count} blocks)");
                    return;
                }
            }
        }
    }

    /// <summary>Two nodes that are primary or in step have chains that are prefixes of one another; books that applied the same LSNs are equal.</summary>
    private void CheckChainsAgree()
    {
        if (CurrentNodes().Count() < 2)
        {
            return;
        }
        SimChainView a = Nodes[0].Chain, b = Nodes[1].Chain;
        // Chained by hash: the last block both have being equal means every block before it is.
        int last = Math.Min(a.Count, b.Count) - 1;
        if (a.HashOf(last) != b.HashOf(last))
        {
            Violate($"the chains of A and B differ at block {last} while both are primary or in step");
            return;
        }
        Exchange bookA = Nodes[0].Ledger!.Exchange, bookB = Nodes[1].Ledger!.Exchange;
        if (bookA.LastLsn == bookB.LastLsn && bookA.ComputeChecksum() != bookB.ComputeChecksum())
        {
            Violate($"both books applied through LSN {bookA.LastLsn} but their state checksums differ");
        }
    }

    private void CheckFinal()
    {
        SimNode[] primaries = [.. Nodes.Where(n => n.Pair?.State == PairState.Primary)];
        if (primaries.Length != 1 || !primaries[0].Pair!.BackupInStep || PeerOf(primaries[0]).Pair?.State != PairState.InStep)
        {
            Violate($"the pair is not whole after {QuietSeconds} s of quiet: {string.Join("; ", Nodes.Select(n => $"{n.Name} {n.Pair?.Describe() ?? "down"}"))} at {Clock.Now}", liveness: true);
            return;
        }
        CheckAcknowledgedKept();
        CheckChainsAgree();
        foreach (SimClient client in Clients)
        {
            if (client.Contradictions.Count > 0)
            {
                Violate($"answered twice differently: {client.Contradictions[0]}");
                return;
            }
            if (!client.Done)
            {
                Violate($"not every request was answered: {client}; {string.Join("; ", Nodes.Select(n => $"{n.Name} {n.Pair?.Describe() ?? "down"}"))}", liveness: true);
                return;
            }
            foreach ((ulong seq, Receipt receipt) in client.Receipts)
            {
                if (primaries[0].Chain.Find(client.Id, seq) is not { } journaled || journaled != receipt)
                {
                    Violate($"client {client.Id} seq {seq}: its receipt (block {receipt.BlockNo}, lsn {receipt.Lsn}) is not where the primary journaled it");
                    return;
                }
            }
        }
    }

    private void Violate(string what, bool liveness = false)
    {
        if (_violation is null)
        {
            _violation = what;
            IsLiveness = liveness;
            Trace($"VIOLATION ({(liveness ? "liveness" : "safety")}): {what}");
        }
    }

    /// <summary>The violation is one of liveness (the pair did not heal, a request went unanswered), not of safety (nothing acknowledged was lost, doubled or split).</summary>
    public bool IsLiveness { get; private set; }

    /// <summary>Counts one fault of <paramref name="fault"/>'s kind (the run's report and <c>--json</c>).</summary>
    public void Count(string fault) => _faults[fault] = _faults.GetValueOrDefault(fault) + 1;

    private void ScheduleFault(long until)
    {
        long at = Clock.Now + (long)(_random.Next(300, 2_500) * SimClock.NanosPerMs);
        if (at >= until)
        {
            return;
        }
        Clock.At(at, () =>
        {
            InjectFault();
            ScheduleFault(until);
        });
    }

    private void InjectFault()
    {
        SimNode node = Nodes[_random.Next(2)];
        long lasting = _random.Next(100, 2_000) * SimClock.NanosPerMs;
        if (Nodes.Any(n => n.Pair is { SendingSnapshot: true }))
        {
            Count("fault-during-snapshot-transfer"); // whatever the fault below: crash, stall, cut, partition, corruption...
        }
        switch (_random.Next(10))
        {
            case 0 when node.Up:
                Count("crash");
                CrashAndRestart(node, lasting);
                break;
            case 1 when node.Up:
                Count("stall");
                Trace($"fault: stall {node.Name} for {lasting / SimClock.NanosPerMs} ms");
                node.StalledUntil = Math.Max(node.StalledUntil, Clock.Now + lasting);
                break;
            case 2:
                Count("cut");
                Trace("fault: cut every link");
                Network.CutAll();
                break;
            case 3 when !Network.Partitioned:
                Count("partition");
                Trace($"fault: partition the nodes for {lasting / SimClock.NanosPerMs} ms");
                Network.Partitioned = true;
                Clock.After(lasting, () =>
                {
                    Trace("fault: partition healed");
                    Network.Partitioned = false;
                });
                break;
            case 4:
                Count("witness-partition");
                Trace($"fault: {node.Name} cut off from the witness for {lasting / SimClock.NanosPerMs} ms");
                Witness.CutOff.Add(node.Name);
                Clock.After(lasting, () => Witness.CutOff.Remove(node.Name));
                break;
            case 5:
                Count("delay");
                Trace($"fault: +{lasting / 10 / SimClock.NanosPerMs} ms on the link for {lasting / SimClock.NanosPerMs} ms");
                Network.ExtraDelayNs = lasting / 10;
                Clock.After(lasting, () => Network.ExtraDelayNs = 0);
                break;
            case 6:
                Count("corrupt");
                Network.CorruptNext = true;
                break;
            case 7 when node.Up:
                SimulatedWriteFault write = _random.Next(2) == 0 ? SimulatedWriteFault.Append : SimulatedWriteFault.Commit;
                Count("journal-failure");
                Trace($"fault: {node.Name}'s next journal {(write == SimulatedWriteFault.Append ? "append" : "commit")} fails; the operator restarts it {lasting / SimClock.NanosPerMs} ms after it halts");
                node.Device.FailNextWrite(write);
                RestartWhenHalted(node, lasting);
                break;
            case 9:
                SimClient client = Clients[_random.Next(Clients.Count)];
                long reconnectIn = _random.Next(1, 500) * SimClock.NanosPerMs;
                Count("client-disconnect");
                Trace($"fault: client {client.Id}'s connection drops; it reconnects in {reconnectIn / SimClock.NanosPerMs} ms");
                client.Disconnect(reconnectIn);
                break;
            case 8:
                Count("partition-with-witness");
                Trace($"fault: {node.Name} cut off from peer and witness for {lasting / SimClock.NanosPerMs} ms");
                Network.Partitioned = true;
                Witness.CutOff.Add(node.Name);
                Clock.After(lasting, () =>
                {
                    Network.Partitioned = false;
                    Witness.CutOff.Remove(node.Name);
                });
                break;
        }
    }

    /// <summary>A node found its own state wrong (a recovery that does not match its journal).</summary>
    public void StateViolation(string what) => Violate(what);

    /// <summary>
    /// SIGKILL now (a torn last write or not, as the seed says; perhaps a snapshot damaged on its disk
    /// or its next snapshot write failing), and a restart as backup <paramref name="after"/> later.
    /// </summary>
    private void CrashAndRestart(SimNode node, long after)
    {
        // The snapshots on its disk: one damaged at rest (loading must refuse it and fall back), or the next write failing.
        // Not the only snapshot of a journal that starts at a base (installed from the primary's): with no state to
        // replay onto, the node refuses to start, as on a journal that does not verify, and waits for its operator.
        switch (_random.Next(8))
        {
            case 0 when (node.Device.Base is null || node.SnapshotDisk.Count >= 2) && node.SnapshotDisk.DamageNewest(_random):
                Count("snapshot-damaged");
                Trace($"fault: {node.Name}'s newest snapshot is damaged on disk");
                break;
            case 1:
                Count("snapshot-write-fails");
                node.SnapshotDisk.FailNextWrite = true;
                break;
        }
        bool tear = _random.Next(2) == 0;
        Trace($"fault: crash {node.Name}{(tear ? " tearing its last write" : "")}, restart as backup in {after / SimClock.NanosPerMs} ms");
        node.Crash(tear);
        Clock.After(after, () =>
        {
            if (!node.Up) // the operator may have restarted it already (the quiet period's heal)
            {
                Trace($"fault: restart {node.Name} as backup");
                node.Start(PairRole.Backup);
            }
        });
    }

    /// <summary>
    /// Aimed at the journal's delicate moment (buggify, as after a catch-up): now and then a primary that
    /// has just appended a block crashes before the commit that would cover it, <paramref name="commitInNs"/>
    /// from now, so the block is lost or torn while the backup may hold it.
    /// </summary>
    public void MaybeCrashBeforeCommit(SimNode node, long commitInNs)
    {
        if (Clock.Now >= (long)FaultSeconds * 1_000 * SimClock.NanosPerMs || _random.Next(512) != 0)
        {
            return;
        }
        long at = _random.NextInt64(0, commitInNs);
        long lasting = _random.Next(100, 2_000) * SimClock.NanosPerMs;
        int generation = node.Generation;
        Clock.After(at, () =>
        {
            if (node.Up && node.Generation == generation)
            {
                Count("crash-before-commit");
                CrashAndRestart(node, lasting);
            }
        });
    }

    private void RestartWhenHalted(SimNode node, long after)
    {
        Clock.After(50 * SimClock.NanosPerMs, () =>
        {
            if (node.Pair?.State == PairState.Halted)
            {
                Clock.After(after, () =>
                {
                    if (node.Pair?.State == PairState.Halted)
                    {
                        Trace($"operator: restart the halted {node.Name} as backup");
                        node.Crash(tear: false);
                        node.Start(PairRole.Backup);
                    }
                });
            }
            else if (Clock.Now < (long)FaultSeconds * 1_000 * SimClock.NanosPerMs)
            {
                RestartWhenHalted(node, after);
            }
        });
    }

    /// <summary>How long after the faults end the operator looks whether the pair has a primary.</summary>
    private const long OperatorAfterNs = 5_000 * SimClock.NanosPerMs;

    /// <summary>Seeds in which the pair had no primary once the faults ended, so the operator had to start one.</summary>
    public bool NeededOperator { get; private set; }

    /// <summary>
    /// The operator's procedure when both nodes are backups and neither can take over (both were
    /// restarted, or the node holding the witness's lease was): restart the node with the longer chain
    /// as primary: the one whose last block is of the later epoch, then the longer (the other then
    /// catches up from it). Counted: each one is a case the pair could not heal alone.
    /// </summary>
    private void OperatorStartsAPrimary()
    {
        if (Nodes.Any(n => n.Pair?.State is PairState.Primary or PairState.Probing))
        {
            return;
        }
        NeededOperator = true;
        SimChainView a = Nodes[0].Chain, b = Nodes[1].Chain;
        SimNode longest = (b.LastEpoch, b.Count).CompareTo((a.LastEpoch, a.Count)) > 0 ? Nodes[1] : Nodes[0];
        Trace($"operator: no primary {OperatorAfterNs / SimClock.NanosPerMs} ms after the faults ended: restarting {longest.Name} (head {longest.Chain.Count - 1}) as primary");
        longest.Crash(tear: false);
        longest.Start(PairRole.Primary);
    }

    private void Heal()
    {
        Trace("quiet: every fault healed");
        Network.Partitioned = false;
        Network.ExtraDelayNs = 0;
        Network.CorruptNext = false;
        Witness.CutOff.Clear();
        foreach (SimNode node in Nodes)
        {
            node.StalledUntil = 0;
            node.Device.Disarm();
            if (!node.Up || node.Pair!.State == PairState.Halted)
            {
                node.Crash(tear: false);
                Trace($"operator: restart {node.Name} as backup");
                node.Start(PairRole.Backup);
            }
        }
    }
}
