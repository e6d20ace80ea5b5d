using System.Threading.Channels;
using BenchmarkDotNet.Attributes;
using Engine.Core.Ring;

namespace Engine.Bench.Ring;

/// <summary>
/// Per-event cost and allocation of our ring against a bounded channel, as BenchmarkDotNet sees
/// them: each invocation pushes <see cref="EventsPerInvoke"/> events through a running topology
/// and waits until the last stage has them. The memory diagnoser counts every thread's allocations,
/// so "Allocated" per operation covers the stage threads too.
/// </summary>
[MemoryDiagnoser]
public class RingMicroBenchmarks
{
    public const int EventsPerInvoke = 1_000_000;

    private readonly Completion _done = new();
    private long _next;
    private Pipeline<BenchEvent>? _oneToOne;
    private Pipeline<BenchEvent>? _pipeline3;
    private Channel<long>? _channel;
    private Task? _channelReader;
    private long _channelRead;
    private readonly ManualResetEventSlim _channelDone = new(false);
    private long _channelTarget;

    [GlobalSetup]
    public void Setup()
    {
        var one = new PipelineBuilder<BenchEvent>(new RingSettings { Size = RingScenarios.RingSize });
        one.AddStage("sum", new SumHandler(_done, 0));
        _oneToOne = one.Start();

        var three = new PipelineBuilder<BenchEvent>(new RingSettings { Size = RingScenarios.RingSize });
        Stage a = three.AddStage("double", new DoubleHandler());
        Stage b = three.AddStage("add", new AddHandler(), a);
        three.AddStage("sum", new SumHandler(_done, 1), b);
        _pipeline3 = three.Start();

        _channel = Channel.CreateBounded<long>(new BoundedChannelOptions(RingScenarios.RingSize)
        {
            SingleReader = true,
            SingleWriter = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        _channelReader = Task.Run(ReadChannel);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _oneToOne?.Dispose();
        _pipeline3?.Dispose();
        _channel?.Writer.Complete();
        _channelReader?.Wait();
    }

    [Benchmark(OperationsPerInvoke = EventsPerInvoke, Description = "ring 1P->1C")]
    public void Ring1P1C() => Push(_oneToOne!);

    [Benchmark(OperationsPerInvoke = EventsPerInvoke, Description = "ring 1P->3-stage pipeline")]
    public void RingPipeline3() => Push(_pipeline3!);

    [Benchmark(Baseline = true, OperationsPerInvoke = EventsPerInvoke, Description = "bounded channel 1P->1C")]
    public void Channel1P1C()
    {
        ChannelWriter<long> writer = _channel!.Writer;
        Volatile.Write(ref _channelTarget, _channelRead + EventsPerInvoke);
        _channelDone.Reset();
        for (long i = 0; i < EventsPerInvoke; i++)
        {
            while (!writer.TryWrite(i))
            {
                writer.WaitToWriteAsync().AsTask().GetAwaiter().GetResult();
            }
        }
        _channelDone.Wait();
    }

    private void Push(Pipeline<BenchEvent> pipeline)
    {
        RingBuffer<BenchEvent> ring = pipeline.Ring;
        long first = ring.Cursor + 1;
        _done.Reset(first + EventsPerInvoke - 1);
        for (long i = 0; i < EventsPerInvoke; i++)
        {
            long sequence = ring.Next();
            ring[sequence].Value = _next++;
            ring.Publish(sequence);
        }
        _done.Wait(Timeout.InfiniteTimeSpan);
    }

    private async Task ReadChannel()
    {
        ChannelReader<long> reader = _channel!.Reader;
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            while (reader.TryRead(out _))
            {
                if (++_channelRead == Volatile.Read(ref _channelTarget))
                {
                    _channelDone.Set();
                }
            }
        }
    }
}
