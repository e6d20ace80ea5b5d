using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Engine.Core.Ring;

/// <summary>What a non-blocking claim got.</summary>
public enum ClaimStatus
{
    /// <summary>The slots are yours: fill them, then publish.</summary>
    Claimed = 0,

    /// <summary>The ring is full: the slowest stage is a whole ring behind. Back off or answer "busy".</summary>
    Full = 1,

    /// <summary>The pipeline is shutting down and takes nothing new.</summary>
    Closed = 2,

    /// <summary>A stage failed and halted the pipeline; <see cref="Pipeline{T}.Fault"/> says why.</summary>
    Halted = 3,
}

/// <summary>
/// A preallocated ring of value-type slots, reached by <c>ref</c>. Producers claim sequences,
/// write the slots in place and publish; stages read them in place. Nothing is allocated per event.
/// </summary>
/// <typeparam name="T">The slot type: a struct, written and read in place.</typeparam>
/// <remarks>
/// <code>
///  entries: │ pad │ slot 0 │ slot 1 │ … │ slot size-1 │ pad │   (slot = sequence &amp; (size-1))
/// </code>
/// The padding slots at both ends keep the first and last slots off lines that the array header
/// or a neighbouring object share. Made by <see cref="PipelineBuilder{T}"/>, which sets the gating.
/// </remarks>
public sealed class RingBuffer<T>
    where T : struct
{
    private readonly T[] _entries;
    private readonly long _indexMask;
    private readonly int _padSlots;

    // Exactly one of the two is set. Two typed fields instead of one virtual call: the JIT calls
    // the sealed type directly and inlines the single-producer fast path.
    private readonly SingleProducerSequencer? _single;
    private readonly MultiProducerSequencer? _multi;

    internal RingBuffer(int size, ProducerKind producers, WaitStrategy wait)
    {
        RingSettings.CheckSize(size);
        Size = size;
        _indexMask = size - 1;
        _padSlots = Math.Max(1, 2 * Padding.CacheLineBytes / Math.Max(1, Unsafe.SizeOf<T>()));
        _entries = new T[size + 2 * _padSlots];
        State = new RingState(wait);
        Wait = wait;
        Sequencer = producers == ProducerKind.Single
            ? _single = new SingleProducerSequencer(size, wait, State)
            : _multi = new MultiProducerSequencer(size, wait, State);
    }

    /// <summary>Number of slots (a power of two).</summary>
    public int Size { get; }

    internal Sequencer Sequencer { get; }

    internal RingState State { get; }

    /// <summary>How every thread of this ring waits (and what a sequence kept outside the ring signals).</summary>
    internal WaitStrategy Wait { get; }

    /// <summary>The slot that <paramref name="sequence"/> maps to.</summary>
    public ref T this[long sequence]
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_entries), _padSlots + (int)(sequence & _indexMask));
    }

    /// <summary>Single producer: the highest published sequence. Multi producer: the highest claimed.</summary>
    public long Cursor => Sequencer.Cursor.Value;

    /// <summary>Claims one slot, waiting (per the wait strategy) while the ring is full.</summary>
    /// <exception cref="PipelineHaltedException">The pipeline halted on a fault.</exception>
    /// <exception cref="InvalidOperationException">The pipeline is closed.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public long Next()
    {
        if (State.Status != PipelineStatus.Running)
        {
            ThrowNotRunning();
        }
        return _single is not null ? _single.Next(1) : _multi!.Next(1);
    }

    /// <summary>Claims <paramref name="n"/> consecutive slots; returns the highest. Publish them with <see cref="Publish(long, long)"/>.</summary>
    public long Next(int n)
    {
        if ((uint)(n - 1) >= (uint)Size)
        {
            ThrowHelper.ClaimSizeOutOfRange(n, Size);
        }
        if (State.Status != PipelineStatus.Running)
        {
            ThrowNotRunning();
        }
        return _single is not null ? _single.Next(n) : _multi!.Next(n);
    }

    /// <summary>Claims one slot if there is room now; never waits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ClaimStatus TryNext(out long sequence) => TryNext(1, out sequence);

    /// <summary>Claims <paramref name="n"/> consecutive slots if there is room now; <paramref name="highest"/> is the last.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ClaimStatus TryNext(int n, out long highest)
    {
        if ((uint)(n - 1) >= (uint)Size)
        {
            ThrowHelper.ClaimSizeOutOfRange(n, Size);
        }
        PipelineStatus status = State.Status;
        if (status != PipelineStatus.Running)
        {
            highest = default;
            return status == PipelineStatus.Halted ? ClaimStatus.Halted : ClaimStatus.Closed;
        }
        bool claimed = _single is not null ? _single.TryNext(n, out highest) : _multi!.TryNext(n, out highest);
        return claimed ? ClaimStatus.Claimed : ClaimStatus.Full;
    }

    /// <summary>Publishes one claimed slot to the stages.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Publish(long sequence)
    {
        if (_single is not null)
        {
            _single.Publish(sequence, sequence);
        }
        else
        {
            _multi!.Publish(sequence, sequence);
        }
    }

    /// <summary>Publishes the claimed slots <paramref name="low"/>..<paramref name="high"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Publish(long low, long high)
    {
        if (_single is not null)
        {
            _single.Publish(low, high);
        }
        else
        {
            _multi!.Publish(low, high);
        }
    }

    /// <summary>Claims one slot (waiting for room) and returns a scope that publishes it on dispose.</summary>
    /// <example><code>
    /// using (var claim = ring.Claim())
    /// {
    ///     claim.Slot.Price = 100;
    /// }
    /// </code></example>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Claim<T> Claim()
    {
        long sequence = Next();
        return new Claim<T>(this, sequence);
    }

    /// <summary>Claims one slot if there is room now; on <see cref="ClaimStatus.Claimed"/>, dispose the scope to publish.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ClaimStatus TryClaim(out Claim<T> claim)
    {
        ClaimStatus status = TryNext(1, out long sequence);
        claim = status == ClaimStatus.Claimed ? new Claim<T>(this, sequence) : default;
        return status;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowNotRunning()
    {
        if (State.IsHalted)
        {
            ThrowHelper.PipelineHalted(State.Fault);
        }
        ThrowHelper.PipelineClosed();
    }
}

/// <summary>
/// A claimed slot: write it through <see cref="Slot"/>, and <see cref="Dispose"/> publishes it.
/// A <c>ref struct</c>, so it cannot outlive the claiming frame or be published twice by a copy on the heap.
/// </summary>
public readonly ref struct Claim<T>
    where T : struct
{
    private readonly RingBuffer<T>? _ring;
    private readonly ref T _slot;

    internal Claim(RingBuffer<T> ring, long sequence)
    {
        _ring = ring;
        Sequence = sequence;
        _slot = ref ring[sequence];
    }

    /// <summary>The claimed sequence.</summary>
    public long Sequence { get; }

    /// <summary>The claimed slot, to write in place.</summary>
    public ref T Slot => ref _slot;

    /// <summary>Publishes the slot.</summary>
    public void Dispose() => _ring?.Publish(Sequence);
}
