using System.Diagnostics;

namespace Engine.Replication;

/// <summary>
/// Permission for a primary to acknowledge while no backup is in step. Without it, such a primary
/// acknowledges nothing: availability is given up rather than risking two primaries that both
/// acknowledge.
/// </summary>
public interface ISoloLease
{
    /// <summary>True while this node may acknowledge alone.</summary>
    bool Held { get; }

    /// <summary>The backup was just lost (ask for the lease now) or is in step again (give it back now), rather than at the next poll.</summary>
    void Nudge()
    {
    }
}

/// <summary>
/// The operator's lease: given at start (<c>--allow-solo</c>: for as long as the process runs, the
/// operator's standing decision written on its command line) or at run time by a signed
/// <c>engine admin go-solo</c> (<see cref="GrantUntil"/>: for a bounded time, default ten minutes).
/// </summary>
/// <remarks>
/// A run-time grant expires because it is a judgement about one moment ("the other node is really
/// gone"): if the operator was wrong, or the request was not the operator's, the damage (a primary
/// acknowledging alone beside another) is bounded by the expiry; an operator who still means it
/// repeats the command. The node stops acknowledging alone when it expires (it answers "no backup"),
/// it does not stop serving.
/// </remarks>
public sealed class OperatorLease(bool granted) : ISoloLease
{
    private volatile bool _always = granted;

    // Stopwatch ticks until which a run-time grant holds; 0: none.
    private long _untilTicks;

    public bool Held => _always || Stopwatch.GetTimestamp() < Interlocked.Read(ref _untilTicks);

    /// <summary>Until when a run-time grant holds (Stopwatch ticks), 0 if none was made; meaningless while <see cref="Always"/>.</summary>
    public long UntilTicks => Interlocked.Read(ref _untilTicks);

    /// <summary>Granted for the life of the process (<c>--allow-solo</c>).</summary>
    public bool Always => _always;

    /// <summary>Grants the lease for the life of the process.</summary>
    public void Grant() => _always = true;

    /// <summary>Grants (or extends, or shortens) the lease until <paramref name="untilTicks"/> (Stopwatch ticks).</summary>
    public void GrantUntil(long untilTicks) => Interlocked.Exchange(ref _untilTicks, untilTicks);
}
