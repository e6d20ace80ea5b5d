using Engine.Core.Ring;

namespace Engine.Bench.Ring;

/// <summary>
/// Our ring in the four topologies the harness measures. Each run builds a fresh pipeline, pushes
/// <c>events</c> through it and returns the elapsed time and the bytes allocated while it ran.
/// </summary>
/// <remarks>
/// <code>
/// 1p1c       P ──▶ C
/// 2p1c       P1 ─┐
///                ├─▶ C          (multi-producer sequencer)
///            P2 ─┘
/// pipeline3  P ──▶ A ──▶ B ──▶ C
/// diamond    P ─┬─▶ A ─┐
///               └─▶ B ─┴─▶ C
/// </code>
/// </remarks>
public static class RingScenarios
{
    public const int RingSize = 1 << 16;

    public static readonly string[] Names = ["1p1c", "2p1c", "pipeline3", "diamond"];

    public static RunResult Run(string scenario, long events, WaitStrategy wait) => scenario switch
    {
        "1p1c" => OneToOne(events, wait),
        "2p1c" => TwoToOne(events, wait),
        "pipeline3" => Pipeline3(events, wait),
        "diamond" => Diamond(events, wait),
        _ => throw new ArgumentException($"unknown scenario '{scenario}'", nameof(scenario)),
    };

    private static RunResult OneToOne(long events, WaitStrategy wait)
    {
        var done = new Completion();
        var builder = new PipelineBuilder<BenchEvent>(new RingSettings { Size = RingSize, Wait = wait });
        builder.AddStage("sum", new SumHandler(done, 0));
        return Measure(builder.Start(), done, events, ring => PublishRange(ring, 0, events));
    }

    private static RunResult TwoToOne(long events, WaitStrategy wait)
    {
        var done = new Completion();
        var builder = new PipelineBuilder<BenchEvent>(new RingSettings { Size = RingSize, Producers = ProducerKind.Multi, Wait = wait });
        builder.AddStage("sum", new SumHandler(done, 0));
        return Measure(builder.Start(), done, events, ring =>
        {
            long half = events / 2;
            var second = new Thread(() => PublishRange(ring, half, events)) { Name = "producer-2" };
            second.Start();
            PublishRange(ring, 0, half);
            second.Join();
        });
    }

    private static RunResult Pipeline3(long events, WaitStrategy wait)
    {
        var done = new Completion();
        var builder = new PipelineBuilder<BenchEvent>(new RingSettings { Size = RingSize, Wait = wait });
        Stage a = builder.AddStage("double", new DoubleHandler());
        Stage b = builder.AddStage("add", new AddHandler(), a);
        builder.AddStage("sum", new SumHandler(done, 1), b);
        return Measure(builder.Start(), done, events, ring => PublishRange(ring, 0, events));
    }

    private static RunResult Diamond(long events, WaitStrategy wait)
    {
        var done = new Completion();
        var builder = new PipelineBuilder<BenchEvent>(new RingSettings { Size = RingSize, Wait = wait });
        Stage a = builder.AddStage("double", new DoubleHandler());
        Stage b = builder.AddStage("increment", new IncrementHandler());
        builder.AddStage("join", new SumHandler(done, 2), a, b);
        return Measure(builder.Start(), done, events, ring => PublishRange(ring, 0, events));
    }

    private static void PublishRange(RingBuffer<BenchEvent> ring, long from, long to)
    {
        for (long i = from; i < to; i++)
        {
            long sequence = ring.Next();
            ring[sequence].Value = i;
            ring.Publish(sequence);
        }
    }

    private static RunResult Measure(Pipeline<BenchEvent> pipeline, Completion done, long events, Action<RingBuffer<BenchEvent>> produce)
    {
        using (pipeline)
        {
            done.Reset(events - 1);
            long allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
            long start = System.Diagnostics.Stopwatch.GetTimestamp();
            produce(pipeline.Ring);
            if (!done.Wait(TimeSpan.FromMinutes(2)))
            {
                throw new TimeoutException($"the pipeline did not finish: {pipeline}");
            }
            TimeSpan elapsed = System.Diagnostics.Stopwatch.GetElapsedTime(start);
            long allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;
            return new RunResult(events, elapsed, allocated);
        }
    }
}

/// <summary>One measured run.</summary>
public readonly record struct RunResult(long Events, TimeSpan Elapsed, long AllocatedBytes)
{
    public double OpsPerSecond => Events / Elapsed.TotalSeconds;

    public double BytesPerEvent => (double)AllocatedBytes / Events;
}
