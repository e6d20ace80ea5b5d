using System.Runtime.CompilerServices;

namespace Engine.Core.Ring;

/// <summary>
/// What a thread waits on: a stage waiting for its upstream, or a producer waiting for room.
/// </summary>
internal interface IWaitCondition
{
    /// <summary>The highest sequence available now; the wait ends when it reaches the target.</summary>
    long Poll(long target);

    /// <summary>True when the wait must end without its target (halt or shutdown).</summary>
    bool IsAlerted { get; }
}

/// <summary>
/// How a thread waits for a sequence: spin, then yield, then park. One sealed type whose presets
/// differ only in how long each phase lasts, so every preset runs the same, tested loop.
/// </summary>
/// <remarks>
/// <para><b>Waking a parked thread without a fence on the publisher's fast path.</b> A publisher
/// makes a sequence visible with a plain release store and then reads <see cref="_signalNeeded"/>
/// with a plain load. On x64 that load may pass the store (store→load reordering), so a classic
/// waiter that sets the flag and re-checks the sequence could miss the publish while the publisher
/// misses the flag: a lost wake-up. The usual cure is a full fence on every publish (~10 ns). We
/// use the asymmetric form instead: the waiter, which is about to sleep anyway, sets the flag and
/// then calls <see cref="Interlocked.MemoryBarrierProcessWide"/> (membarrier on Linux, a few
/// microseconds) before its re-check. That forces a full barrier on every thread of the process
/// at some point of its instruction stream: if the publisher's flag load came before that point,
/// its earlier store was drained and the waiter's re-check sees it; if after, the load sees the
/// flag and the publisher signals. Either way nobody sleeps through a publish, and the publisher
/// pays one well-predicted load.</para>
/// <para>The re-check and <see cref="Monitor.Wait(object, int)"/> happen under <see cref="_gate"/>,
/// and a signaller takes the same lock to pulse, so a pulse cannot fall between them.</para>
/// <para>One instance serves one ring: every stage and every producer of that ring waits on it,
/// and every sequence update of that ring signals it (a stage's progress frees room for the
/// producers and unblocks the stages after it).</para>
/// </remarks>
public sealed class WaitStrategy
{
    /// <summary>Returned by <see cref="WaitFor"/> when the wait was ended by an alert.</summary>
    internal const long Alerted = long.MinValue;

    private readonly object _gate = new();

    // 1 while some thread is parked or about to park. Written by waiters (rarely), read by every
    // publish; padded so those reads hit a line that nothing else writes.
    private PaddedLong _signalNeeded;

    private int _parkedThreads;

    private WaitStrategy(string name, int spinIterations, int yieldIterations, bool parks, int parkTimeoutMs)
    {
        Name = name;
        SpinIterations = spinIterations;
        YieldIterations = yieldIterations;
        Parks = parks;
        ParkTimeoutMs = parkTimeoutMs;
    }

    /// <summary>Threads parked right now (a gauge: an idle pipeline parks every stage).</summary>
    public int ParkedThreads => Volatile.Read(ref _parkedThreads);

    /// <summary>Preset name: busy-spin, yielding, blocking or adaptive.</summary>
    public string Name { get; }

    /// <summary>Polls with a processor pause between them before the thread yields.</summary>
    public int SpinIterations { get; }

    /// <summary>Polls with <see cref="Thread.Yield"/> between them before the thread parks.</summary>
    public int YieldIterations { get; }

    /// <summary>Whether the thread finally parks on a monitor (and publishers must signal).</summary>
    public bool Parks { get; }

    /// <summary>
    /// Upper bound on one park, in milliseconds (<see cref="Timeout.Infinite"/> by default): the
    /// protocol above needs no timeout; a finite one only bounds the cost of a bug we do not know.
    /// </summary>
    public int ParkTimeoutMs { get; }

    /// <summary>Never gives up the core: lowest latency, one core burnt per waiting thread.</summary>
    public static WaitStrategy BusySpin() => new("busy-spin", int.MaxValue, 0, parks: false, Timeout.Infinite);

    /// <summary>Spins briefly, then yields forever: fair to other threads, never idle.</summary>
    public static WaitStrategy Yielding() => new("yielding", 64, int.MaxValue, parks: false, Timeout.Infinite);

    /// <summary>Parks at once: nearly free when idle, a wake-up (~10-50 µs) per wait.</summary>
    public static WaitStrategy Blocking(int parkTimeoutMs = Timeout.Infinite) =>
        new("blocking", 0, 0, parks: true, parkTimeoutMs);

    /// <summary>
    /// The default: spin for a few microseconds, yield a few times, then park. Keeps throughput
    /// high under load and costs almost nothing when idle on a machine whose cores are shared.
    /// </summary>
    /// <remarks>
    /// 16 yields, not 64: on two shared cores a yielding thread is switched out and back in for every
    /// yield whenever anything else is runnable, and with 64 a pair at 1k orders/s spent a quarter of a
    /// core on its stages' yields (~90 context switches per order). With none, the p50 was ~10-30 %
    /// worse in the same runs and the CPU no lower than with 16 (docs/benchmarks.md, "The order path's
    /// hand-overs and the CPU a quiet pair burnt").
    /// </remarks>
    public static WaitStrategy Adaptive(int spinIterations = 256, int yieldIterations = 16, int parkTimeoutMs = Timeout.Infinite)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(spinIterations);
        ArgumentOutOfRangeException.ThrowIfNegative(yieldIterations);
        return new("adaptive", spinIterations, yieldIterations, parks: true, parkTimeoutMs);
    }

    /// <summary>
    /// The preset named <paramref name="name"/> with its default phases; <c>adaptive:SPINS:YIELDS</c>
    /// sets the adaptive phases (e.g. <c>adaptive:256:64</c>: spin, yield 64 times, then park).
    /// </summary>
    public static WaitStrategy Parse(string name)
    {
        string[] parts = name.Split(':');
        if (parts.Length == 3 && parts[0] == "adaptive" && int.TryParse(parts[1], out int spins) && int.TryParse(parts[2], out int yields) && spins >= 0 && yields >= 0)
        {
            return Adaptive(spins, yields);
        }
        return name switch
        {
            "busy-spin" => BusySpin(),
            "yielding" => Yielding(),
            "blocking" => Blocking(),
            "adaptive" => Adaptive(),
            _ => throw new ArgumentException($"unknown wait strategy '{name}' (busy-spin, yielding, blocking, adaptive, adaptive:SPINS:YIELDS)", nameof(name)),
        };
    }

    /// <summary>The preset names <see cref="Parse"/> accepts.</summary>
    public static IReadOnlyList<string> Names { get; } = ["adaptive", "busy-spin", "yielding", "blocking"];

    /// <summary>
    /// Called after every sequence update. Costs one load unless a thread is parked.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void Signal()
    {
        if (Volatile.Read(ref _signalNeeded.Value) != 0)
        {
            SignalSlow();
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void SignalSlow()
    {
        // Exchange so that only one of many publishers pays for the lock; every woken waiter that
        // still has to wait sets the flag again before it parks.
        if (Interlocked.Exchange(ref _signalNeeded.Value, 0) != 0)
        {
            lock (_gate)
            {
                Monitor.PulseAll(_gate);
            }
        }
    }

    /// <summary>Wakes every parked thread unconditionally (halt, shutdown).</summary>
    internal void WakeAll()
    {
        Volatile.Write(ref _signalNeeded.Value, 0);
        lock (_gate)
        {
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>
    /// Waits until <paramref name="condition"/> reaches <paramref name="target"/>; returns what
    /// it reached, or <see cref="Alerted"/> if it was alerted first.
    /// </summary>
    internal long WaitFor(long target, IWaitCondition condition)
    {
        while (true)
        {
            long available;
            for (int i = 0; i < SpinIterations; i++)
            {
                if ((available = condition.Poll(target)) >= target)
                {
                    return available;
                }
                if (condition.IsAlerted)
                {
                    return Alerted;
                }
                Thread.SpinWait(1);
            }

            for (int i = 0; i < YieldIterations; i++)
            {
                if ((available = condition.Poll(target)) >= target)
                {
                    return available;
                }
                if (condition.IsAlerted)
                {
                    return Alerted;
                }
                Thread.Yield();
            }

            if (Parks && ParkOnce(target, condition, out available))
            {
                return available;
            }
        }
    }

    /// <summary>Parks once; false means "woken (or timed out), poll again from the start".</summary>
    private bool ParkOnce(long target, IWaitCondition condition, out long available)
    {
        lock (_gate)
        {
            Volatile.Write(ref _signalNeeded.Value, 1);
            // The asymmetric half of the protocol in the remarks: after this, a publish that the
            // next poll misses is guaranteed to see the flag and pulse.
            Interlocked.MemoryBarrierProcessWide();
            available = condition.Poll(target);
            if (available >= target)
            {
                return true;
            }
            if (condition.IsAlerted)
            {
                available = Alerted;
                return true;
            }
            _parkedThreads++;
            Monitor.Wait(_gate, ParkTimeoutMs);
            _parkedThreads--;
        }
        return false;
    }

    public override string ToString() =>
        Parks
            ? $"{Name} (spin {SpinIterations}, yield {YieldIterations}, park{(ParkTimeoutMs == Timeout.Infinite ? "" : $" ≤{ParkTimeoutMs} ms")})"
            : $"{Name} (spin {(SpinIterations == int.MaxValue ? "∞" : SpinIterations)}, yield {(YieldIterations == int.MaxValue ? "∞" : YieldIterations)})";
}
