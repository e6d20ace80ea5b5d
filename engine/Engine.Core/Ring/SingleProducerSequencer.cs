using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Engine.Core.Ring;

/// <summary>
/// Sequencer for exactly one producing thread: a claim is two loads and a compare, a publish is
/// one release store and one load. Calling it from two threads corrupts the ring.
/// </summary>
internal sealed class SingleProducerSequencer : Sequencer
{
    // Producer-private counters, padded away from the cursor that consumers poll (see layout test).
    private ProducerCounters _counters;

    public SingleProducerSequencer(int bufferSize, WaitStrategy wait, RingState state)
        : base(bufferSize, wait, state)
    {
        _counters.Claimed = Sequence.Initial;
        _counters.CachedGate = Sequence.Initial;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override long Next(int n)
    {
        long claimed = _counters.Claimed;
        long next = claimed + n;
        long wrapPoint = next - BufferSize;
        // The cached minimum of the gating sequences spares a walk over them on every claim; it is
        // only refreshed when the claim would lap it.
        if (wrapPoint > _counters.CachedGate)
        {
            _counters.CachedGate = WaitForCapacity(wrapPoint);
        }
        _counters.Claimed = next;
        return next;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override bool TryNext(int n, out long highest)
    {
        long next = _counters.Claimed + n;
        long wrapPoint = next - BufferSize;
        if (wrapPoint > _counters.CachedGate)
        {
            long min = Sequence.Minimum(Gating);
            _counters.CachedGate = min;
            if (wrapPoint > min)
            {
                highest = default;
                return false;
            }
        }
        _counters.Claimed = next;
        highest = next;
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override void Publish(long low, long high)
    {
        Cursor.SetValue(high);
        Wait.Signal();
    }

    public override bool IsAvailable(long sequence)
    {
        long cursor = Cursor.Value;
        return sequence <= cursor && sequence > cursor - BufferSize;
    }

    public override long HighestPublished(long low, long availableHigh) => availableHigh;

    /// <summary>
    /// <code>
    ///  0          64         72            80                 144
    ///  │ pad 64 B │ Claimed  │ CachedGate  │ pad 64 B         │
    /// </code>
    /// </summary>
    [StructLayout(LayoutKind.Explicit, Size = 2 * Padding.CacheLineBytes + 16)]
    internal struct ProducerCounters
    {
        [FieldOffset(Padding.CacheLineBytes)]
        public long Claimed;

        [FieldOffset(Padding.CacheLineBytes + 8)]
        public long CachedGate;
    }
}
