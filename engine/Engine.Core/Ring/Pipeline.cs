namespace Engine.Core.Ring;

/// <summary>
/// A running pipeline: the ring producers claim from, the stages' threads, and the way to stop.
/// </summary>
public sealed class Pipeline<T> : IDisposable
    where T : struct
{
    /// <summary>How long <see cref="Dispose"/> lets the stages drain before it stops them anyway.</summary>
    public static readonly TimeSpan DefaultDrainTimeout = TimeSpan.FromSeconds(10);

    private readonly Thread[] _threads;
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _running;

    internal Pipeline(RingBuffer<T> ring, RingSettings settings, Stage[] stages)
    {
        Ring = ring;
        Settings = settings;
        Stages = stages;
        _running = stages.Length;
        _threads = new Thread[stages.Length];
        for (int i = 0; i < stages.Length; i++)
        {
            IStageRunner runner = stages[i].Runner!;
            _threads[i] = new Thread(() => RunStage(runner))
            {
                IsBackground = true,
                Name = $"stage:{stages[i].Name}",
            };
        }
        foreach (Thread thread in _threads)
        {
            thread.Start();
        }
    }

    /// <summary>The ring: claim, write in place, publish.</summary>
    public RingBuffer<T> Ring { get; }

    public RingSettings Settings { get; }

    /// <summary>The stages in the order they were added.</summary>
    public IReadOnlyList<Stage> Stages { get; }

    public PipelineStatus Status => Ring.State.Status;

    /// <summary>The fault that halted the pipeline, or null.</summary>
    public StageFault? Fault => Ring.State.Fault;

    /// <summary>Completes when every stage thread has ended; faults with <see cref="PipelineHaltedException"/> after a halt.</summary>
    public Task Completion => _completion.Task;

    /// <summary>Published events the slowest last stage has not finished yet (a gauge).</summary>
    public long Backlog => Ring.Sequencer.Backlog;

    /// <summary>
    /// Stops taking new events, waits until every stage has handled everything published (at most
    /// <paramref name="drainTimeout"/>), then stops the stage threads and joins them (at most
    /// <paramref name="drainTimeout"/> again: a handler stuck in its own code cannot be stopped
    /// from outside, and its thread is left behind as a background thread).
    /// </summary>
    /// <returns>True if everything published was handled and every thread ended; false otherwise, or after a halt.</returns>
    public bool Shutdown(TimeSpan drainTimeout)
    {
        Ring.State.Close();
        bool drained = WaitDrained(drainTimeout);
        Ring.State.RequestStop();
        long joinDeadline = Environment.TickCount64 + (long)drainTimeout.TotalMilliseconds;
        bool joined = true;
        foreach (Thread thread in _threads)
        {
            int remainingMs = (int)Math.Clamp(joinDeadline - Environment.TickCount64, 0, int.MaxValue);
            joined &= thread.Join(remainingMs);
        }
        return drained && joined && !Ring.State.IsHalted;
    }

    /// <summary>
    /// Halts the pipeline from outside, as a stage whose handler throws under
    /// <see cref="FaultPolicy.Halt"/> does: claims answer <see cref="ClaimStatus.Halted"/> at once,
    /// and every stage stops at the end of the batch it is in. For a failure no stage sees when it
    /// happens (the journal's committer failing a commit). The first fault is the one kept; the
    /// <see cref="RingSettings.OnFault"/> callback is not called (the caller knows).
    /// </summary>
    public void Halt(StageFault fault)
    {
        ArgumentNullException.ThrowIfNull(fault);
        Ring.State.Halt(fault);
    }

    /// <summary>Shuts down with <see cref="DefaultDrainTimeout"/>.</summary>
    public void Dispose() => Shutdown(DefaultDrainTimeout);

    /// <summary>True when every stage has reached <paramref name="sequence"/>.</summary>
    public bool HasHandled(long sequence) => Stages.All(s => s.Progress >= sequence);

    private bool WaitDrained(TimeSpan timeout)
    {
        long deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        var spinner = new SpinWait();
        while (!Ring.State.IsHalted)
        {
            // Every claim made before Close is published by its producer; the last stages reach it.
            long target = Ring.Sequencer.Cursor.Value;
            if (Ring.Sequencer.HighestPublished(target, target) >= target && HasHandled(target))
            {
                return true;
            }
            if (Environment.TickCount64 > deadline)
            {
                return false;
            }
            // Draining is rare and short: a sleep-backed spin keeps it off the stages' cores.
            spinner.SpinOnce(sleep1Threshold: 20);
        }
        return false;
    }

    private void RunStage(IStageRunner runner)
    {
        try
        {
            runner.Run();
        }
        finally
        {
            if (Interlocked.Decrement(ref _running) == 0)
            {
                if (Ring.State.IsHalted)
                {
                    _completion.TrySetException(new PipelineHaltedException(Ring.State.Fault));
                }
                else
                {
                    _completion.TrySetResult();
                }
            }
        }
    }

    public override string ToString() =>
        $"{Status}: {string.Join(" | ", Stages)} ({Settings})";
}
