using System.Runtime.CompilerServices;

namespace Engine.Core.Ring;

/// <summary>
/// What one stage may read up to: the published cursor for a first stage, the slowest upstream
/// stage otherwise. A downstream stage therefore never sees a sequence its upstreams have not finished.
/// </summary>
internal sealed class SequenceBarrier : IWaitCondition
{
    private readonly Sequencer _sequencer;
    private readonly Sequence[] _upstream;

    public SequenceBarrier(Sequencer sequencer, Sequence[] upstream)
    {
        _sequencer = sequencer;
        _upstream = upstream;
    }

    /// <summary>Waits until <paramref name="next"/> may be read; returns the highest readable, or <see cref="WaitStrategy.Alerted"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public long WaitFor(long next)
    {
        long available = Poll(next);
        return available >= next ? available : _sequencer.Wait.WaitFor(next, this);
    }

    public long Poll(long target)
    {
        if (_upstream.Length == 0)
        {
            // Multi producer: the cursor counts claims, so look at the per-slot flags from here on.
            return _sequencer.HighestPublished(target, _sequencer.Cursor.Value);
        }
        // Upstream stages only ever advance over published events.
        return Sequence.Minimum(_upstream);
    }

    public bool IsAlerted => _sequencer.State.IsAlerted;
}
