using System.Runtime.CompilerServices;

namespace Engine.Core.Ring;

/// <summary>What holds an event at the gate between the two steps of a two-step stage.</summary>
public enum GateState
{
    /// <summary>It may pass now.</summary>
    Open = 0,

    /// <summary>
    /// Not yet; whatever opens it signals the ring's wait strategy, so the stage waits for it and
    /// for new events with one park.
    /// </summary>
    Signalled = 1,

    /// <summary>
    /// Not yet, and nothing signals the ring when it opens: the stage waits in
    /// <see cref="ITwoStepHandler{T}.Block"/>, when it has nothing else to take.
    /// </summary>
    Blocking = 2,
}

/// <summary>
/// The work of a stage whose thread takes events ahead of those it passes on: each event is taken
/// (<see cref="Take"/>) as soon as it is readable, and passed (<see cref="Pass"/>) in order once
/// its gate is open. The ledger's single stage seals (takes) while earlier blocks wait for their
/// journal commit or the backup's acknowledgement (the gate), so several blocks are in flight on
/// one thread.
/// </summary>
/// <remarks>Implement it on a struct, as <see cref="IStageHandler{T}"/>; the calls come in place, on one thread.</remarks>
public interface ITwoStepHandler<T>
    where T : struct
{
    /// <summary>The first step, in sequence order, as soon as the event is readable (<paramref name="endOfBatch"/>: the last one readable now).</summary>
    void Take(ref T slot, long sequence, bool endOfBatch);

    /// <summary>Whether the oldest taken event not yet passed may pass; throws when it never will (the stage halts).</summary>
    GateState Gate(ref T slot, long sequence);

    /// <summary>Waits until <see cref="Gate"/> no longer answers <see cref="GateState.Blocking"/> for this event (or throws).</summary>
    void Block(ref T slot, long sequence);

    /// <summary>The second step, in sequence order, once the gate has opened for the event (<paramref name="endOfBatch"/>: the last one passed in this go).</summary>
    void Pass(ref T slot, long sequence, bool endOfBatch);
}

/// <summary>
/// The loop of a two-step stage: pass what the gate lets through, else take what is readable, else
/// wait for either (one park on the ring's wait strategy: publishers and gates signal it).
/// The stage's sequence is the last event passed; producers cannot lap an event taken but not passed.
/// </summary>
/// <remarks>A handler's exception halts the pipeline (<see cref="FaultPolicy.Halt"/>): an event cannot be skipped between its steps.</remarks>
internal sealed class TwoStepRunner<T, THandler> : IStageRunner, IWaitCondition
    where T : struct
    where THandler : struct, ITwoStepHandler<T>
{
    private readonly RingBuffer<T> _ring;
    private readonly SequenceBarrier _barrier;
    private readonly Stage _stage;
    private readonly Action<StageFault>? _onFault;

    // Mutable struct called in place: never make this field readonly.
#pragma warning disable IDE0044
    private THandler _handler;
#pragma warning restore IDE0044

    private long _taken;
    private long _passed;
    private long _current;

    public TwoStepRunner(RingBuffer<T> ring, SequenceBarrier barrier, Stage stage, THandler handler, Action<StageFault>? onFault)
    {
        if (stage.Policy != FaultPolicy.Halt)
        {
            throw new ArgumentException("a two-step stage halts on a fault: an event cannot be skipped between its steps", nameof(stage));
        }
        _ring = ring;
        _barrier = barrier;
        _stage = stage;
        _handler = handler;
        _onFault = onFault;
    }

    public void Run()
    {
        try
        {
            Loop();
        }
        catch (Exception error)
        {
            StageFaults.Report(_ring.State, _stage, _onFault, _current, error);
        }
    }

    private void Loop()
    {
        RingState state = _ring.State;
        Sequence progress = _stage.Sequence;
        WaitStrategy wait = _ring.Sequencer.Wait;
        _passed = _taken = progress.Value;
        while (!state.IsHalted)
        {
            GateState gate = GateState.Open;
            if (_taken > _passed)
            {
                long open = OpenThrough(out gate);
                if (open > _passed)
                {
                    PassThrough(open);
                    progress.SetValue(open);
                    wait.Signal();
                    continue;
                }
            }
            long available = _barrier.Poll(_taken + 1);
            if (available > _taken)
            {
                TakeThrough(available);
                continue;
            }
            if (gate == GateState.Blocking)
            {
                _current = _passed + 1;
                _handler.Block(ref _ring[_current], _current);
                continue;
            }
            // A stop comes only after the drain (or its timeout): nothing readable is left behind by it.
            if (wait.WaitFor(1, this) == WaitStrategy.Alerted)
            {
                return;
            }
        }
    }

    /// <summary>The last taken event through which every gate is open; <paramref name="gate"/> is the state of the first one shut.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private long OpenThrough(out GateState gate)
    {
        gate = GateState.Open;
        long sequence = _passed + 1;
        for (; sequence <= _taken; sequence++)
        {
            _current = sequence;
            gate = _handler.Gate(ref _ring[sequence], sequence);
            if (gate != GateState.Open)
            {
                break;
            }
        }
        return sequence - 1;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void PassThrough(long open)
    {
        for (long sequence = _passed + 1; sequence <= open; sequence++)
        {
            _current = sequence;
            _handler.Pass(ref _ring[sequence], sequence, sequence == open);
        }
        _passed = open;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void TakeThrough(long available)
    {
        for (long sequence = _taken + 1; sequence <= available; sequence++)
        {
            _current = sequence;
            _handler.Take(ref _ring[sequence], sequence, sequence == available);
        }
        _taken = available;
    }

    /// <summary>Ready (1) when an event is readable or the oldest waiting one's gate is no longer shut by a signalled wait.</summary>
    long IWaitCondition.Poll(long target)
    {
        if (_barrier.Poll(_taken + 1) > _taken)
        {
            return target;
        }
        if (_taken > _passed)
        {
            try
            {
                if (_handler.Gate(ref _ring[_passed + 1], _passed + 1) != GateState.Signalled)
                {
                    return target;
                }
            }
            catch (Exception)
            {
                return target; // the stage's loop asks again and halts with it
            }
        }
        return 0;
    }

    bool IWaitCondition.IsAlerted => _ring.State.IsAlerted;
}
