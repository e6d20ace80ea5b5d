using System.Threading.Channels;

namespace Engine.Bench.Ring;

/// <summary>
/// The baseline: the same topologies built from bounded <see cref="Channel"/>s (capacity = our ring
/// size, FullMode Wait, single reader/writer where the topology allows), written the idiomatic fast
/// way: TryWrite/TryRead in a loop, awaiting WaitToWrite/WaitToRead only when they fail.
/// </summary>
public static class ChannelScenarios
{
    public static RunResult Run(string scenario, long events)
    {
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        long allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
        Task work = scenario switch
        {
            "1p1c" => OneToOne(events),
            "2p1c" => TwoToOne(events),
            "pipeline3" => Pipeline3(events),
            "diamond" => Diamond(events),
            _ => throw new ArgumentException($"unknown scenario '{scenario}'", nameof(scenario)),
        };
        if (!work.Wait(TimeSpan.FromMinutes(5)))
        {
            throw new TimeoutException($"channel scenario {scenario} did not finish");
        }
        TimeSpan elapsed = System.Diagnostics.Stopwatch.GetElapsedTime(start);
        return new RunResult(events, elapsed, GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore);
    }

    private static Channel<long> Bounded(bool singleWriter = true) =>
        Channel.CreateBounded<long>(new BoundedChannelOptions(RingScenarios.RingSize)
        {
            SingleReader = true,
            SingleWriter = singleWriter,
            FullMode = BoundedChannelFullMode.Wait,
        });

    private static async Task Produce(ChannelWriter<long> writer, long from, long to, bool complete = true)
    {
        for (long i = from; i < to; i++)
        {
            while (!writer.TryWrite(i))
            {
                await writer.WaitToWriteAsync().ConfigureAwait(false);
            }
        }
        if (complete)
        {
            writer.Complete();
        }
    }

    private static async Task<long> Sum(ChannelReader<long> reader)
    {
        long sum = 0;
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            while (reader.TryRead(out long value))
            {
                sum += value;
            }
        }
        return sum;
    }

    private static async Task Relay(ChannelReader<long> reader, ChannelWriter<long> writer, Func<long, long> work)
    {
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            while (reader.TryRead(out long value))
            {
                long result = work(value);
                while (!writer.TryWrite(result))
                {
                    await writer.WaitToWriteAsync().ConfigureAwait(false);
                }
            }
        }
        writer.Complete();
    }

    private static Task OneToOne(long events)
    {
        Channel<long> channel = Bounded();
        return Task.WhenAll(Task.Run(() => Produce(channel.Writer, 0, events)), Task.Run(() => Sum(channel.Reader)));
    }

    private static Task TwoToOne(long events)
    {
        Channel<long> channel = Bounded(singleWriter: false);
        long half = events / 2;
        Task producers = Task.WhenAll(
            Task.Run(() => Produce(channel.Writer, 0, half, complete: false)),
            Task.Run(() => Produce(channel.Writer, half, events, complete: false)))
            .ContinueWith(_ => channel.Writer.Complete(), TaskScheduler.Default);
        return Task.WhenAll(producers, Task.Run(() => Sum(channel.Reader)));
    }

    private static Task Pipeline3(long events)
    {
        Channel<long> toDouble = Bounded(), toAdd = Bounded(), toSum = Bounded();
        return Task.WhenAll(
            Task.Run(() => Produce(toDouble.Writer, 0, events)),
            Task.Run(() => Relay(toDouble.Reader, toAdd.Writer, v => v * 2)),
            Task.Run(() => Relay(toAdd.Reader, toSum.Writer, v => v + 3)),
            Task.Run(() => Sum(toSum.Reader)));
    }

    private static Task Diamond(long events)
    {
        Channel<long> toA = Bounded(), toB = Bounded(), fromA = Bounded(), fromB = Bounded();
        return Task.WhenAll(
            Task.Run(() => ProduceToBoth(toA.Writer, toB.Writer, events)),
            Task.Run(() => Relay(toA.Reader, fromA.Writer, v => v * 2)),
            Task.Run(() => Relay(toB.Reader, fromB.Writer, v => v + 1)),
            Task.Run(() => Join(fromA.Reader, fromB.Reader)));
    }

    private static async Task ProduceToBoth(ChannelWriter<long> a, ChannelWriter<long> b, long events)
    {
        for (long i = 0; i < events; i++)
        {
            while (!a.TryWrite(i))
            {
                await a.WaitToWriteAsync().ConfigureAwait(false);
            }
            while (!b.TryWrite(i))
            {
                await b.WaitToWriteAsync().ConfigureAwait(false);
            }
        }
        a.Complete();
        b.Complete();
    }

    private static async Task<long> Join(ChannelReader<long> a, ChannelReader<long> b)
    {
        long sum = 0;
        while (true)
        {
            if (!a.TryRead(out long x))
            {
                if (!await a.WaitToReadAsync().ConfigureAwait(false))
                {
                    return sum;
                }
                continue;
            }
            long y;
            while (!b.TryRead(out y))
            {
                await b.WaitToReadAsync().ConfigureAwait(false);
            }
            sum += x + y;
        }
    }
}
