using Engine.Core.Ring;

namespace Engine.Tests.Ring;

/// <summary>Collects what the stages of a test saw, from their threads.</summary>
public sealed class Recorder
{
    private readonly Lock _gate = new();
    private readonly List<string> _violations = [];

    public long Handled;
    public long Batches;
    public long LastSequence = -1;

    public void Violation(string what)
    {
        lock (_gate)
        {
            if (_violations.Count < 20)
            {
                _violations.Add(what);
            }
        }
    }

    public IReadOnlyList<string> Violations
    {
        get
        {
            lock (_gate)
            {
                return [.. _violations];
            }
        }
    }
}

/// <summary>Checks that sequences arrive dense and in order, and that each slot holds what its producer wrote.</summary>
public struct InOrderHandler(Recorder recorder) : IStageHandler<TestEvent>
{
    private long _expected;

    public void OnEvent(ref TestEvent slot, long sequence, bool endOfBatch)
    {
        if (sequence != _expected)
        {
            recorder.Violation($"expected sequence {_expected}, got {sequence}");
        }
        if (slot.Value != sequence)
        {
            recorder.Violation($"slot {sequence} holds {slot.Value}: overwritten or stale");
        }
        _expected = sequence + 1;
        Volatile.Write(ref recorder.LastSequence, sequence);
        Interlocked.Increment(ref recorder.Handled);
        if (endOfBatch)
        {
            Interlocked.Increment(ref recorder.Batches);
        }
    }
}

/// <summary>Stamps the slot after checking that the stages it runs after have stamped it (and finished with it).</summary>
public struct StampHandler(char name, Recorder recorder, Stage[] upstream) : IStageHandler<TestEvent>
{
    public void OnEvent(ref TestEvent slot, long sequence, bool endOfBatch)
    {
        foreach (Stage stage in upstream)
        {
            long stamp = stage.Name switch { "A" => slot.StampA, "B" => slot.StampB, _ => slot.StampC };
            if (stamp != sequence)
            {
                recorder.Violation($"{name} saw {sequence} before {stage.Name} stamped it ({stamp})");
            }
            if (stage.Progress < sequence)
            {
                recorder.Violation($"{name} saw {sequence} while {stage.Name} was at {stage.Progress}");
            }
        }
        switch (name)
        {
            case 'A': slot.StampA = sequence; break;
            case 'B': slot.StampB = sequence; break;
            default: slot.StampC = sequence; break;
        }
        Volatile.Write(ref recorder.LastSequence, sequence);
        Interlocked.Increment(ref recorder.Handled);
    }
}

/// <summary>Checks per-producer order: each producer's events arrive once, in the order it published them.</summary>
public struct PerProducerHandler(long[] lastPerProducer, Recorder recorder) : IStageHandler<TestEvent>
{
    public void OnEvent(ref TestEvent slot, long sequence, bool endOfBatch)
    {
        ref long last = ref lastPerProducer[slot.Producer];
        if (slot.ProducerSeq != last + 1)
        {
            recorder.Violation($"producer {slot.Producer}: expected {last + 1}, got {slot.ProducerSeq} at sequence {sequence}");
        }
        last = slot.ProducerSeq;
        Volatile.Write(ref recorder.LastSequence, sequence);
        Interlocked.Increment(ref recorder.Handled);
    }
}

/// <summary>Throws at chosen sequences; otherwise counts.</summary>
public struct ThrowingHandler(long throwAt, Recorder recorder) : IStageHandler<TestEvent>
{
    public void OnEvent(ref TestEvent slot, long sequence, bool endOfBatch)
    {
        if (sequence == throwAt)
        {
            throw new InvalidOperationException($"boom at {sequence}");
        }
        Volatile.Write(ref recorder.LastSequence, sequence);
        Interlocked.Increment(ref recorder.Handled);
    }
}

/// <summary>Blocks on a gate before every event: holds a stage still so the ring fills.</summary>
public struct GatedHandler(ManualResetEventSlim gate, Recorder recorder) : IStageHandler<TestEvent>
{
    public void OnEvent(ref TestEvent slot, long sequence, bool endOfBatch)
    {
        gate.Wait();
        Volatile.Write(ref recorder.LastSequence, sequence);
        Interlocked.Increment(ref recorder.Handled);
    }
}
