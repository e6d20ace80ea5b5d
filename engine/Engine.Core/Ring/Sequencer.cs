using System.Runtime.CompilerServices;

namespace Engine.Core.Ring;

/// <summary>How many threads claim slots of a ring.</summary>
public enum ProducerKind
{
    /// <summary>Exactly one thread claims and publishes: no atomic instruction on the claim.</summary>
    Single = 0,

    /// <summary>Any number of threads (gateway connections): claims are atomic, publishes are flagged per slot.</summary>
    Multi = 1,
}

/// <summary>
/// Hands out sequences to producers without overrunning the slowest consumer (the gating
/// sequences), and tells consumers what has been published.
/// </summary>
internal abstract class Sequencer : IWaitCondition
{
    protected Sequencer(int bufferSize, WaitStrategy wait, RingState state)
    {
        BufferSize = bufferSize;
        Wait = wait;
        State = state;
    }

    public int BufferSize { get; }

    public WaitStrategy Wait { get; }

    public RingState State { get; }

    /// <summary>
    /// Single producer: the highest published sequence. Multi producer: the highest claimed one
    /// (a claimed slot is published when its availability flag says so).
    /// </summary>
    public Sequence Cursor { get; } = new();

    /// <summary>
    /// The sequences the producers must not lap: the last stages of the pipeline. Set once,
    /// before any producer or stage thread starts (Thread.Start orders the write before them).
    /// </summary>
    public Sequence[] Gating { get; private set; } = [];

    public void SetGating(Sequence[] gating) => Gating = gating;

    /// <summary>Claims <paramref name="n"/> slots, waiting for room; returns the highest claimed sequence.</summary>
    public abstract long Next(int n);

    /// <summary>Claims <paramref name="n"/> slots if there is room now; never waits.</summary>
    public abstract bool TryNext(int n, out long highest);

    /// <summary>Makes <paramref name="low"/>..<paramref name="high"/> visible to the stages.</summary>
    public abstract void Publish(long low, long high);

    /// <summary>True when <paramref name="sequence"/> has been published (and not yet lapped).</summary>
    public abstract bool IsAvailable(long sequence);

    /// <summary>The highest published sequence h with every sequence in [<paramref name="low"/>, h] published.</summary>
    public abstract long HighestPublished(long low, long availableHigh);

    /// <summary>Published and not yet consumed by the slowest last stage (a gauge, racy by nature).</summary>
    public long Backlog => Math.Max(0, Cursor.Value - Sequence.Minimum(Gating, Cursor.Value));

    /// <summary>Waits for room: until the slowest gating sequence reaches <paramref name="wrapPoint"/>.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    protected long WaitForCapacity(long wrapPoint)
    {
        long min = Sequence.Minimum(Gating);
        if (min >= wrapPoint)
        {
            return min;
        }
        min = Wait.WaitFor(wrapPoint, this);
        if (min == WaitStrategy.Alerted)
        {
            ThrowHelper.PipelineHalted(State.Fault);
        }
        return min;
    }

    long IWaitCondition.Poll(long target) => Sequence.Minimum(Gating);

    // A producer waiting for room gives up only when the pipeline halts: a closed pipeline still
    // drains, so room will come.
    bool IWaitCondition.IsAlerted => State.IsHalted;

    /// <summary>Checks what must always hold; throws naming the broken relationship.</summary>
    public void AssertInvariants()
    {
        long cursor = Cursor.Value;
        long slowest = Sequence.Minimum(Gating, cursor);
        // A producer never laps the slowest stage: at most a ring's worth is claimed but not consumed.
        if (cursor - slowest > BufferSize)
        {
            throw new InvalidOperationException($"cursor {cursor} is more than the ring size {BufferSize} ahead of the slowest stage {slowest}");
        }
        // A stage never gets ahead of what was claimed.
        if (Gating.Length > 0 && Sequence.Minimum(Gating) > cursor)
        {
            throw new InvalidOperationException($"a stage is at {Sequence.Minimum(Gating)}, past the cursor {cursor}");
        }
    }
}
