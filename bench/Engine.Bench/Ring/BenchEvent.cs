using Engine.Core.Ring;

namespace Engine.Bench.Ring;

/// <summary>The slot the ring benchmarks move: a value and two fields stages write for the next.</summary>
public struct BenchEvent
{
    public long Value;
    public long A;
    public long B;
}

/// <summary>Sets a flag when it has seen the last expected sequence: how a round knows it is done.</summary>
public sealed class Completion
{
    private readonly ManualResetEventSlim _done = new(false);

    public long LastSequence { get; private set; } = long.MaxValue;

    public long Sum;

    public void Reset(long lastSequence)
    {
        _done.Reset();
        LastSequence = lastSequence;
    }

    public void Signal() => _done.Set();

    public bool Wait(TimeSpan timeout) => _done.Wait(timeout);
}

/// <summary>Last stage: sums a field and signals completion at the last sequence.</summary>
public struct SumHandler(Completion completion, int field) : IStageHandler<BenchEvent>
{
    private long _sum;

    public void OnEvent(ref BenchEvent slot, long sequence, bool endOfBatch)
    {
        _sum += field switch { 0 => slot.Value, 1 => slot.A, _ => slot.A + slot.B };
        if (sequence == completion.LastSequence)
        {
            completion.Sum = _sum;
            completion.Signal();
        }
    }
}

/// <summary>Middle stage of the pipeline: A = Value * 2.</summary>
public struct DoubleHandler : IStageHandler<BenchEvent>
{
    public void OnEvent(ref BenchEvent slot, long sequence, bool endOfBatch) => slot.A = slot.Value * 2;
}

/// <summary>Middle stage of the pipeline: A = A + 3 (reads what the stage before wrote).</summary>
public struct AddHandler : IStageHandler<BenchEvent>
{
    public void OnEvent(ref BenchEvent slot, long sequence, bool endOfBatch) => slot.A += 3;
}

/// <summary>Diamond branch: B = Value + 1.</summary>
public struct IncrementHandler : IStageHandler<BenchEvent>
{
    public void OnEvent(ref BenchEvent slot, long sequence, bool endOfBatch) => slot.B = slot.Value + 1;
}
