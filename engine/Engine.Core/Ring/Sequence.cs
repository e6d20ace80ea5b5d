using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Engine.Core.Ring;

/// <summary>
/// A 64-bit counter alone on its cache lines.
/// </summary>
/// <remarks>
/// <code>
///  offset 0            64        72                 128
///  ┌───────────────────┬─────────┬──────────────────┐
///  │ padding (64 B)    │ value   │ padding (56 B)   │
///  └───────────────────┴─────────┴──────────────────┘
/// </code>
/// 64 bytes on each side (plus the object header before it) keep the value off any line that
/// another hot field shares, also with the adjacent-line prefetcher pulling lines in pairs.
/// The layout is checked by <c>PaddingLayoutTests</c>.
/// </remarks>
[StructLayout(LayoutKind.Explicit, Size = Padding.PaddedLongBytes)]
internal struct PaddedLong
{
    [FieldOffset(Padding.CacheLineBytes)]
    public long Value;
}

/// <summary>Layout constants shared by every padded type.</summary>
internal static class Padding
{
    public const int CacheLineBytes = 64;
    public const int PaddedLongBytes = 2 * CacheLineBytes;
}

/// <summary>
/// A sequence number that one thread writes and others read: the cursor of a producer or the
/// progress of a stage. Written with release semantics, read with acquire semantics.
/// </summary>
public sealed class Sequence
{
    /// <summary>The value before anything was published: the first sequence is 0.</summary>
    public const long Initial = -1;

    // Padded so that the writer's stores never invalidate a line that another thread's hot data
    // sits on (false sharing costs ~100 ns a store on a busy pair of cores).
    private PaddedLong _padded;

    public Sequence(long initial = Initial) => _padded.Value = initial;

    /// <summary>Acquire read: everything the writer did before its release store is visible.</summary>
    public long Value
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Volatile.Read(ref _padded.Value);
    }

    /// <summary>Release store: a plain store on x64, ordered after every earlier write.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetValue(long value) => Volatile.Write(ref _padded.Value, value);

    /// <summary>Atomically adds <paramref name="delta"/> and returns the new value (a full fence).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public long AddAndGet(long delta) => Interlocked.Add(ref _padded.Value, delta);

    /// <summary>Sets the value to <paramref name="next"/> only if it is <paramref name="expected"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool CompareAndSet(long expected, long next) =>
        Interlocked.CompareExchange(ref _padded.Value, next, expected) == expected;

    /// <summary>The smallest value among <paramref name="sequences"/>, or <paramref name="fallback"/> if there are none.</summary>
    public static long Minimum(Sequence[] sequences, long fallback = long.MaxValue)
    {
        long min = fallback;
        foreach (Sequence s in sequences)
        {
            long v = s.Value;
            if (v < min)
            {
                min = v;
            }
        }
        return min;
    }

    internal ref long UnsafeValueRef => ref _padded.Value;

    public override string ToString() => Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
