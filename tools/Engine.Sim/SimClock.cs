namespace Engine.Sim;

/// <summary>
/// Simulated time: a nanosecond counter that moves only when the scheduler runs the next event, and
/// a queue of events ordered by time, then by when they were scheduled (so two events at one instant
/// always run in the same order: what makes a seed replay byte for byte).
/// </summary>
public sealed class SimClock : TimeProvider
{
    public const long NanosPerMs = 1_000_000;

    private readonly PriorityQueue<Action, (long At, long Seq)> _events = new();
    private long _seq;

    /// <summary>Nanoseconds since the start of the run.</summary>
    public long Now { get; private set; }

    public override long TimestampFrequency => 1_000_000_000;

    public override long GetTimestamp() => Now;

    public override DateTimeOffset GetUtcNow() => DateTimeOffset.UnixEpoch.AddTicks(Now / 100);

    /// <summary>Events run so far.</summary>
    public long Steps { get; private set; }

    public void At(long at, Action what) => _events.Enqueue(what, (Math.Max(at, Now), _seq++));

    public void After(long nanos, Action what) => At(Now + nanos, what);

    /// <summary>Runs events in order until simulated time reaches <paramref name="until"/> (or nothing is left), checking <paramref name="afterEach"/> after each.</summary>
    public void RunUntil(long until, Action? afterEach = null)
    {
        while (_events.TryPeek(out _, out (long At, long Seq) when) && when.At <= until)
        {
            _events.TryDequeue(out Action? what, out _);
            Now = when.At;
            Steps++;
            what!();
            afterEach?.Invoke();
        }
        Now = Math.Max(Now, until);
    }
}
