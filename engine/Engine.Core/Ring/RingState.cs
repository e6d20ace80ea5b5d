namespace Engine.Core.Ring;

/// <summary>Where a pipeline is in its life: running, closed to new claims, or halted by a fault.</summary>
public enum PipelineStatus
{
    /// <summary>Claims succeed while there is room.</summary>
    Running = 0,

    /// <summary>Shutdown has begun: no new claims; what was published drains.</summary>
    Closed = 1,

    /// <summary>A stage failed under the halt policy: everything stops, the fault says why.</summary>
    Halted = 2,
}

/// <summary>
/// The life-cycle flags that every producer and stage of one ring reads. Written rarely (start,
/// shutdown, halt), read on every claim and batch, so kept apart from the sequences.
/// </summary>
internal sealed class RingState
{
    private readonly WaitStrategy _wait;

    // Status and the stop request are separate: Closed still lets the stages drain; StopRequested
    // (set after draining, or when halted) makes every waiting thread return.
    private volatile int _status;
    private volatile bool _stopRequested;
    private StageFault? _fault;

    public RingState(WaitStrategy wait) => _wait = wait;

    public PipelineStatus Status => (PipelineStatus)_status;

    public bool IsHalted => _status == (int)PipelineStatus.Halted;

    /// <summary>True when waiting threads must give up: halted, or stopped after the drain.</summary>
    public bool IsAlerted => _stopRequested;

    /// <summary>The first fault that halted the pipeline; later ones are reported, not kept.</summary>
    public StageFault? Fault => Volatile.Read(ref _fault);

    /// <summary>Stops new claims. Returns false if the pipeline was not running.</summary>
    public bool Close() =>
        Interlocked.CompareExchange(ref _status, (int)PipelineStatus.Closed, (int)PipelineStatus.Running) == (int)PipelineStatus.Running;

    /// <summary>Asks every waiting thread to return, and wakes the parked ones.</summary>
    public void RequestStop()
    {
        _stopRequested = true;
        _wait.WakeAll();
    }

    /// <summary>Halts on <paramref name="fault"/>; the first fault wins and is kept.</summary>
    public void Halt(StageFault fault)
    {
        Interlocked.CompareExchange(ref _fault, fault, null);
        _status = (int)PipelineStatus.Halted;
        RequestStop();
    }
}
