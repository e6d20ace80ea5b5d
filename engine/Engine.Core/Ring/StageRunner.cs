using System.Runtime.CompilerServices;

namespace Engine.Core.Ring;

/// <summary>
/// The loop of one stage: wait for what its barrier allows, hand each event to the handler in
/// place, then advance the stage's sequence once per batch.
/// </summary>
/// <typeparam name="T">The slot type.</typeparam>
/// <typeparam name="THandler">
/// A struct handler: a type parameter rather than an interface field so that the JIT compiles this
/// loop once per handler and inlines <see cref="IStageHandler{T}.OnEvent"/> into it.
/// </typeparam>
internal sealed class StageRunner<T, THandler> : IStageRunner
    where T : struct
    where THandler : struct, IStageHandler<T>
{
    private readonly RingBuffer<T> _ring;
    private readonly SequenceBarrier _barrier;
    private readonly Stage _stage;
    private readonly Action<StageFault>? _onFault;

    // Mutable struct called in place: never make this field readonly (calls would go to a copy
    // and the handler's own state would be lost between events).
#pragma warning disable IDE0044
    private THandler _handler;
#pragma warning restore IDE0044

    public StageRunner(RingBuffer<T> ring, SequenceBarrier barrier, Stage stage, THandler handler, Action<StageFault>? onFault)
    {
        _ring = ring;
        _barrier = barrier;
        _stage = stage;
        _handler = handler;
        _onFault = onFault;
    }

    public void Run()
    {
        RingState state = _ring.State;
        Sequence progress = _stage.Sequence;
        WaitStrategy wait = _ring.Sequencer.Wait;
        long next = progress.Value + 1;
        while (true)
        {
            long available = _barrier.WaitFor(next);
            // A halt stops every stage at once, even with events pending; a stop request comes
            // only after the drain (or its timeout), so nothing readable is left behind by it.
            if (available == WaitStrategy.Alerted || state.IsHalted)
            {
                return;
            }
            long done = HandleBatch(next, available);
            progress.SetValue(done);
            wait.Signal();
            if (done < available)
            {
                return; // halted by this stage's fault
            }
            next = available + 1;
        }
    }

    /// <summary>Handles next..available; returns the last sequence handled (less than available only on a halt).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private long HandleBatch(long next, long available)
    {
        long sequence = next;
        while (true)
        {
            try
            {
                for (; sequence <= available; sequence++)
                {
                    _handler.OnEvent(ref _ring[sequence], sequence, sequence == available);
                }
                return available;
            }
            catch (Exception error)
            {
                if (!Report(sequence, error))
                {
                    return sequence - 1;
                }
                sequence++; // skip policy: the failed event counts as handled
            }
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool Report(long sequence, Exception error) => StageFaults.Report(_ring.State, _stage, _onFault, sequence, error);
}

internal static class StageFaults
{
    /// <summary>Counts and reports a handler's fault, and halts the ring under <see cref="FaultPolicy.Halt"/>; returns true to go on (skip), false to stop (halt).</summary>
    public static bool Report(RingState ring, Stage stage, Action<StageFault>? onFault, long sequence, Exception error)
    {
        var fault = new StageFault(stage.Name, sequence, error, stage.Policy);
        Interlocked.Increment(ref stage.FaultCount);
        try
        {
            onFault?.Invoke(fault);
        }
        catch (Exception)
        {
            // A failing fault callback must not take the stage down with it; the fault is still
            // counted and, on a halt, kept by the pipeline.
        }
        if (stage.Policy == FaultPolicy.Halt)
        {
            ring.Halt(fault);
            return false;
        }
        return true;
    }
}
