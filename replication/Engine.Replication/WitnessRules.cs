namespace Engine.Replication;

/// <summary>Why the witness refused an <c>ACQUIRE</c> (or could not record a <c>RELEASE</c>).</summary>
public enum WitnessRefusal
{
    /// <summary>Another node holds the lease; it keeps it until it gives it back.</summary>
    Held = 1,

    /// <summary>A higher epoch has been granted: the asker is an old primary and must step down.</summary>
    Fenced = 2,

    /// <summary>The epoch is more than one above the highest granted: no takeover skips an epoch, so this is a bug or an attack; nothing is recorded.</summary>
    EpochTooHigh = 3,

    /// <summary>The asker is not a node of the cluster (the witness grants only to the roster's nodes).</summary>
    UnknownNode = 4,

    /// <summary>The decision could not be made durable (the state file); nothing changed.</summary>
    Unwritable = 5,

    /// <summary>RESUME from a node that does not hold the lease.</summary>
    NotHolder = 6,
}

/// <summary>
/// The witness's answer to one request, as a value: the node acts on its kind, never on text. On
/// the wire each is one line (<see cref="WitnessLine"/>).
/// </summary>
public abstract record WitnessAnswer
{
    private WitnessAnswer()
    {
    }

    /// <summary>The lease is the asker's; it may act on it for <paramref name="LeaseMs"/> from when it asked.</summary>
    public sealed record Granted(int LeaseMs) : WitnessAnswer;

    /// <summary>
    /// Refused: <paramref name="Holder"/> (null: nobody) holds it, <paramref name="Epoch"/> is the
    /// holder's epoch (<see cref="WitnessRefusal.Held"/>) or the highest granted (otherwise).
    /// </summary>
    public sealed record Denied(string? Holder, ulong Epoch, WitnessRefusal Reason) : WitnessAnswer;

    /// <summary>The asker held the lease and gave it back.</summary>
    public sealed record Released : WitnessAnswer;

    /// <summary>The asker did not hold the lease (<paramref name="Holder"/> does, null: nobody): nothing changed, nothing to give back.</summary>
    public sealed record NotHolder(string? Holder) : WitnessAnswer;

    /// <summary>The answer never came (the witness unreachable, the channel refused or broken, a malformed line): the request may or may not have been decided.</summary>
    public sealed record NoAnswer(string Why) : WitnessAnswer;
}

/// <summary>What the witness remembers: who holds the lease in which epoch, and the highest epoch it ever granted (0: none yet).</summary>
public readonly record struct WitnessState(string? Holder, ulong HolderEpoch, ulong HighestEpoch)
{
    /// <summary>A witness that has granted nothing.</summary>
    public static WitnessState Empty => new(null, 0, 0);

    /// <summary>One relationship per line: a holder's epoch is one that was granted, so never above the highest.</summary>
    public void AssertInvariants()
    {
        if (Holder is not null && HolderEpoch > HighestEpoch)
        {
            throw new InvalidOperationException($"witness state: holder {Holder}'s epoch {HolderEpoch} is above the highest granted {HighestEpoch}");
        }
    }
}

/// <summary>The decision on one request: the answer, and the state after it (equal to the state before when nothing changes).</summary>
public readonly record struct WitnessDecision(WitnessAnswer Answer, WitnessState Next);

/// <summary>
/// The witness's rules, as pure functions of its state and one authenticated request: no I/O, no
/// clock, no lock (the <see cref="WitnessServer"/> serialises, persists and answers).
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item>Only a node of the roster gets the lease (<see cref="WitnessRefusal.UnknownNode"/>): an
/// observer, the operator or the witness's own principal must not become the pair's holder.</item>
/// <item>Never backwards in epoch (<see cref="WitnessRefusal.Fenced"/>): a node that took over asked
/// for epoch E + 1, so whoever still asks for E is the old primary.</item>
/// <item>Never more than one epoch forward (<see cref="WitnessRefusal.EpochTooHigh"/>): each takeover
/// raises the epoch by exactly one, so a larger jump is a bug or an attack, and granting it would
/// fence both real nodes for good (it would be recorded). A witness that has granted nothing yet
/// (highest 0: a new witness, or one restarted without <c>--state</c>) has no bound to apply and
/// takes the first epoch it is asked for; only an authenticated node can ask.</item>
/// <item>Sticky (<see cref="WitnessRefusal.Held"/>): one holder until it gives the lease back,
/// however long it is silent, because it may have acknowledged orders that only it has.</item>
/// <item>Only the holder gives it back; anyone else's <c>RELEASE</c> changes nothing.</item>
/// </list>
/// </remarks>
public static class WitnessRules
{
    /// <summary>The decision on <c>ACQUIRE</c> by <paramref name="node"/> (its authenticated name) for <paramref name="epoch"/>.</summary>
    /// <param name="state">What the witness remembers now.</param>
    /// <param name="isNode">Whether a name is a node of the cluster (the roster's principals of role node).</param>
    /// <param name="node">The asker's authenticated name.</param>
    /// <param name="epoch">The epoch it asks for (1 or more).</param>
    /// <param name="leaseMs">The length of a grant.</param>
    public static WitnessDecision Acquire(WitnessState state, Func<string, bool> isNode, string node, ulong epoch, int leaseMs)
    {
        ArgumentNullException.ThrowIfNull(isNode);
        ArgumentNullException.ThrowIfNull(node);
        ArgumentOutOfRangeException.ThrowIfZero(epoch); // epochs start at 1 (genesis); the line parser refuses 0
        if (!isNode(node))
        {
            return new(new WitnessAnswer.Denied(state.Holder, state.HighestEpoch, WitnessRefusal.UnknownNode), state);
        }
        if (epoch < state.HighestEpoch)
        {
            return new(new WitnessAnswer.Denied(state.Holder, state.HighestEpoch, WitnessRefusal.Fenced), state);
        }
        // Written so that it cannot overflow: HighestEpoch + 1 would wrap at ulong.MaxValue.
        if (state.HighestEpoch != 0 && epoch - state.HighestEpoch > 1)
        {
            return new(new WitnessAnswer.Denied(state.Holder, state.HighestEpoch, WitnessRefusal.EpochTooHigh), state);
        }
        if (epoch == ulong.MaxValue)
        {
            // No takeover could ever follow it (E + 1 does not exist): only a bug or an attack asks.
            return new(new WitnessAnswer.Denied(state.Holder, state.HighestEpoch, WitnessRefusal.EpochTooHigh), state);
        }
        if (state.Holder is not null && state.Holder != node)
        {
            return new(new WitnessAnswer.Denied(state.Holder, state.HolderEpoch, WitnessRefusal.Held), state);
        }
        var next = new WitnessState(node, epoch, Math.Max(state.HighestEpoch, epoch));
        next.AssertInvariants();
        return new(new WitnessAnswer.Granted(leaseMs), next);
    }

    /// <summary>The decision on <c>RELEASE</c> by <paramref name="node"/> (its authenticated name): only the holder gives the lease back.</summary>
    /// <summary>
    /// RESUME: <see cref="Acquire"/> for the node that holds the lease now, and only for it. A holder
    /// restarted as a backup has every block ever acknowledged (acknowledging needs the lease, which
    /// it holds, or it as the backup in step), so it may serve again in a new epoch; a node that does
    /// not hold it learns who does, and nothing changes.
    /// </summary>
    public static WitnessDecision Resume(WitnessState state, Func<string, bool> isNode, string node, ulong epoch, int leaseMs)
    {
        ArgumentNullException.ThrowIfNull(node);
        if (state.Holder != node)
        {
            return new(new WitnessAnswer.Denied(state.Holder, state.HighestEpoch, WitnessRefusal.NotHolder), state);
        }
        return Acquire(state, isNode, node, epoch, leaseMs);
    }

    public static WitnessDecision Release(WitnessState state, string node)
    {
        ArgumentNullException.ThrowIfNull(node);
        if (state.Holder != node)
        {
            return new(new WitnessAnswer.NotHolder(state.Holder), state);
        }
        return new(new WitnessAnswer.Released(), state with { Holder = null });
    }
}
