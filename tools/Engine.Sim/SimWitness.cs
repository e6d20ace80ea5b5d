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
    public bool MutationNotSticky { get; init; }

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
            WitnessDecision decision = what.Verb == WitnessVerb.Acquire
                ? WitnessRules.Acquire(state, name => name is "A" or "B", node.Name, what.Epoch, leaseMs)
                : WitnessRules.Release(state, node.Name);
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
