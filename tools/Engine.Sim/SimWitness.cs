using Engine.Replication;

namespace Engine.Sim;

/// <summary>
/// The witness: the real <see cref="WitnessRules"/> over its state, one channel per node (requests
/// decided in the order each node sent them), answers after a latency, and
/// <see cref="WitnessAnswer.NoAnswer"/> after the node's ask timeout when the node is cut off from it.
/// </summary>
public sealed class SimWitness(SimWorld world, int leaseMs)
{
    private const long AskTimeoutNs = 500 * SimClock.NanosPerMs;

    private readonly Dictionary<string, long> _lastDecided = [];

    public WitnessState State { get; private set; } = WitnessState.Empty;

    /// <summary>Nodes cut off from the witness (both ways).</summary>
    public HashSet<string> CutOff { get; } = [];

    /// <summary>Deliberate bug: the lease goes to whoever asks once its holder has been silent for a lease (not sticky).</summary>
    public bool MutationNotSticky => (Mutations & WitnessMutation.NotSticky) != 0;

    /// <summary>Deliberate bugs in the witness's rules (simulator tests only).</summary>
    public WitnessMutation Mutations { get; init; }

    private readonly Dictionary<string, long> _heardAt = [];

    public void Ask(SimNode node, int request, WitnessRequest what)
    {
        int generation = node.Generation;
        if (CutOff.Contains(node.Name))
        {
            world.Clock.After(AskTimeoutNs, () => node.OnWitnessAnswer(request, new WitnessAnswer.NoAnswer("witness unreachable"), generation));
            return;
        }
        long decideAt = Math.Max(_lastDecided.GetValueOrDefault(node.Name), world.Clock.Now + world.WitnessLatency());
        _lastDecided[node.Name] = decideAt;
        world.Clock.At(decideAt, () =>
        {
            if (CutOff.Contains(node.Name))
            {
                world.Clock.At(world.Clock.Now + AskTimeoutNs, () => node.OnWitnessAnswer(request, new WitnessAnswer.NoAnswer("witness unreachable"), generation));
                return;
            }
            WitnessState state = State;
            if (MutationNotSticky && state.Holder is { } holder && holder != node.Name
                && world.Clock.Now - _heardAt.GetValueOrDefault(holder) > (long)leaseMs * SimClock.NanosPerMs)
            {
                state = state with { Holder = null };
            }
            WitnessDecision decision = what.Verb switch
            {
                WitnessVerb.Acquire => WitnessRules.Acquire(state, name => name is "A" or "B", node.Name, what.Epoch, leaseMs),
                WitnessVerb.Resume when (Mutations & WitnessMutation.ResumesAnyone) != 0 => WitnessRules.Acquire(state, name => name is "A" or "B", node.Name, what.Epoch, leaseMs),
                WitnessVerb.Resume => WitnessRules.Resume(state, name => name is "A" or "B", node.Name, what.Epoch, leaseMs),
                _ => WitnessRules.Release(state, node.Name),
            };
            _heardAt[node.Name] = world.Clock.Now;
            if (decision.Next != State)
            {
                world.Trace($"witness: {node.Name} {what.Verb} {what.Epoch}: {decision.Answer} -> holder {decision.Next.Holder ?? "-"} epoch {decision.Next.HolderEpoch}, highest {decision.Next.HighestEpoch}");
            }
            State = decision.Next;
            world.Clock.After(world.WitnessLatency(), () => node.OnWitnessAnswer(request, decision.Answer, generation));
        });
    }
}

/// <summary>Deliberate bugs in the simulated witness's decisions, for showing that the simulator finds them.</summary>
[Flags]
public enum WitnessMutation
{
    None = 0,

    /// <summary>The lease goes to the other node when its holder has been silent (not sticky).</summary>
    NotSticky = 1,

    /// <summary>RESUME is granted to any node, not only the holder (as ACQUIRE is).</summary>
    ResumesAnyone = 2,
}
