using System.Runtime.CompilerServices;

namespace Engine.Core.Ring;

/// <summary>
/// Sequencer for many producing threads. A claim is one atomic add on the cursor; because slots
/// are claimed in one order and may be published in another, each slot carries a flag: the lap
/// number (<c>sequence &gt;&gt; log2(size)</c>) of the last publish into it.
/// </summary>
internal sealed class MultiProducerSequencer : Sequencer
{
    private readonly int[] _published;
    private readonly int _indexMask;
    private readonly int _indexShift;

    // Shared by all producers, written when a claim had to look at the stages: padded so those
    // writes do not evict the cursor or the flags from the consumers' caches.
    private PaddedLong _cachedGate;

    public MultiProducerSequencer(int bufferSize, WaitStrategy wait, RingState state)
        : base(bufferSize, wait, state)
    {
        _published = new int[bufferSize];
        // No slot is published: lap -1 never matches a real sequence's lap.
        Array.Fill(_published, -1);
        _indexMask = bufferSize - 1;
        _indexShift = Log2(bufferSize);
        _cachedGate.Value = Sequence.Initial;
    }

    public override long Next(int n)
    {
        long next = Cursor.AddAndGet(n);
        long wrapPoint = next - BufferSize;
        if (wrapPoint > Volatile.Read(ref _cachedGate.Value))
        {
            // The slots are ours already; we only wait for the stages to leave them.
            Volatile.Write(ref _cachedGate.Value, WaitForCapacity(wrapPoint));
        }
        return next;
    }

    public override bool TryNext(int n, out long highest)
    {
        long current;
        long next;
        do
        {
            current = Cursor.Value;
            next = current + n;
            long wrapPoint = next - BufferSize;
            if (wrapPoint > Volatile.Read(ref _cachedGate.Value))
            {
                long min = Sequence.Minimum(Gating);
                Volatile.Write(ref _cachedGate.Value, min);
                if (wrapPoint > min)
                {
                    highest = default;
                    return false;
                }
            }
        }
        while (!Cursor.CompareAndSet(current, next));
        highest = next;
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override void Publish(long low, long high)
    {
        for (long s = low; s <= high; s++)
        {
            Volatile.Write(ref _published[(int)s & _indexMask], (int)(s >> _indexShift));
        }
        Wait.Signal();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public override bool IsAvailable(long sequence) =>
        Volatile.Read(ref _published[(int)sequence & _indexMask]) == (int)(sequence >> _indexShift);

    public override long HighestPublished(long low, long availableHigh)
    {
        for (long s = low; s <= availableHigh; s++)
        {
            if (!IsAvailable(s))
            {
                return s - 1;
            }
        }
        return availableHigh;
    }

    private static int Log2(int powerOfTwo) => System.Numerics.BitOperations.Log2((uint)powerOfTwo);
}
