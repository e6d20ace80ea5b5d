using Engine.Core.Journaling;
using Engine.Protocol;
using Engine.Replication;
using Engine.Replication.Pair;

namespace Engine.Sim;

/// <summary>
/// One simulated node process: the real <see cref="PairNode"/> over a <see cref="SimLedger"/>, its
/// timer, its clients' requests (sealed one block per request while it may acknowledge, answered once
/// the pair's gate lets the block go), and what a process can suffer: a crash (memory gone, the
/// journal kept), a stall (no step for a while: everything it would have handled waits) and a journal
/// that fails.
/// </summary>
public sealed class SimNode
{
    private const long TickNs = 10 * SimClock.NanosPerMs;

    private readonly SimWorld _world;
    private readonly List<(ulong BlockNo, SimClient Client, ulong Seq)> _unanswered = [];
    private int _generation;

    public SimNode(SimWorld world, string name, SimLedger ledger)
    {
        _world = world;
        Name = name;
        Ledger = ledger;
    }

    public string Name { get; }

    public SimLedger Ledger { get; private set; }

    public PairNode? Pair { get; private set; }

    public bool Up => Pair is not null;

    public long StalledUntil { get; set; }

    /// <summary>Starts the process in <paramref name="role"/> (a restart replays the journal first).</summary>
    public void Start(PairRole role, bool restart)
    {
        if (restart)
        {
            Ledger = Ledger.Restart();
        }
        _generation++;
        var settings = _world.Settings with { Role = role, Peer = "127.0.0.1:1", ReplicationListen = "127.0.0.1:2" };
        Pair = new PairNode(Name, settings, _world.Clock, new SimTransport(_world.Network, this, () => _world.PeerOf(this)),
            _world.HasWitness ? new SimWitnessPort(_world.Witness, this) : null, Ledger, OnEvent, _world.Mutations);
        Pair.Start();
        int generation = _generation;
        _world.Clock.After(TickNs, () => TickLoop(generation));
    }

    private void OnEvent(PairEvent pairEvent)
    {
        if (pairEvent.Kind is PairEventKind.TakeOver or PairEventKind.PrimaryStarted)
        {
            Ledger.SeedClientSeqs(); // as a real node seeds its sealer from the book before it serves
        }
        _world.OnEvent(this, pairEvent);
    }

    /// <summary>SIGKILL: memory and connections gone, the journal kept.</summary>
    public void Crash()
    {
        Pair = null;
        _generation++;
        _unanswered.Clear();
        _world.Network.Crashed(this);
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
            Answer();
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
    }

    public void OnAccepted(int connection) => Run(() => Pair!.OnAccepted(connection));

    public void OnConnected(int connection) => Run(() => Pair!.OnConnected(connection));

    public void OnClosed(int connection) => Run(() => Pair!.OnClosed(connection));

    public void OnFrame(int connection, ReplicationType type, ReadOnlySpan<byte> payload)
    {
        byte[] copy = payload.ToArray();
        Run(() =>
        {
            Pair!.OnFrame(connection, type, copy);
            Answer();
        });
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
            Answer();
        }
    });

    public int Generation => _generation;

    /// <summary>A client's request arrives: sealed (or found, if it was journaled before) and answered once the gate allows; refused when this node does not serve.</summary>
    public void OnRequest(SimClient client, Transaction tx) => Run(() =>
    {
        PairNode pair = Pair!;
        if (pair.State != PairState.Primary || !pair.MayAcknowledge || pair.ClientsAway)
        {
            _world.Clock.After(_world.ClientLatency(), () => client.OnRefused(this, tx.ClientSeq));
            return;
        }
        if (Ledger.Find(tx.ClientId, tx.ClientSeq) is { } earlier)
        {
            _unanswered.Add((earlier.BlockNo, client, tx.ClientSeq));
            Answer();
            return;
        }
        (byte[]? block, ulong blockNo, Engine.Protocol.Hash32 hash) sealedBlock;
        try
        {
            sealedBlock = Ledger.Seal(pair.Epoch, [tx], _world.Clock.Now);
        }
        catch (JournalFaultException e)
        {
            pair.Halt($"journal failed: {e.Message}");
            return;
        }
        if (sealedBlock.block is null)
        {
            return; // behind the client's window: a resend of something older; it waits for its own answer
        }
        pair.OnBlockSealed(sealedBlock.block, sealedBlock.blockNo, sealedBlock.hash);
        if (sealedBlock.blockNo % SimLedger.ChecksumEvery == 0)
        {
            pair.OnStateChecksum(sealedBlock.blockNo, Ledger.StateChecksumAfter(sealedBlock.blockNo)!.Value);
        }
        _unanswered.Add((sealedBlock.blockNo, client, tx.ClientSeq));
        Answer();
    });

    /// <summary>Answers the requests whose blocks the pair's gate lets go now.</summary>
    private void Answer()
    {
        PairNode? pair = Pair;
        if (pair is null || _unanswered.Count == 0)
        {
            return;
        }
        if (pair.State != PairState.Primary)
        {
            _unanswered.Clear(); // stepped down or halted: never acknowledged here; the clients resend elsewhere
            return;
        }
        for (int i = 0; i < _unanswered.Count; i++)
        {
            (ulong blockNo, SimClient client, ulong seq) = _unanswered[i];
            if (pair.IsAcknowledged(blockNo))
            {
                Receipt receipt = Ledger.Find(client.Id, seq)!.Value;
                _world.Acknowledged(this, client, seq, receipt);
                _world.Clock.After(_world.ClientLatency(), () => client.OnAccepted(this, seq, receipt));
                _unanswered.RemoveAt(i--);
            }
        }
    }
}

/// <summary>The witness as one node sees it: requests in order on its own channel.</summary>
public sealed class SimWitnessPort(SimWitness witness, SimNode node) : IWitnessPort
{
    public void Ask(int request, WitnessRequest what) => witness.Ask(node, request, what);
}
