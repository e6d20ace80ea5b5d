using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Engine.Core.Book;
using Engine.Protocol;
using HdrHistogram;

namespace Engine.Bench.Book;

/// <summary>
/// <c>book</c>: the order book alone on one thread, with the exchange-core mix: peak operations per
/// second (closed loop), and per-operation latency when paced at a fixed rate (open loop), next to
/// exchange-core's published 5 M ops/s on a Xeon X5690.
/// </summary>
public static class BookHarness
{
    public const string Usage = """
        book [--count N] [--rounds N] [--rate R] [--json]
          The order book alone, exchange-core mix (1 instrument, ~1,000 resting orders over ~750 levels,
          1,000 accounts; 9% GTC, 3% IOC, 6% cancel, 82% move).
          --count   commands per round (default 5000000)
          --rounds  measured rounds after a warm-up (default 5)
          --rate    paced rate for the latency run, per second (default 1000000)
          --json    one JSON object instead of the table
        """;

    public static int Run(string[] args)
    {
        int count = 5_000_000;
        int rounds = 5;
        double rate = 1_000_000;
        bool json = false;
        for (int i = 0; i < args.Length; i++)
        {
            string? Value() => i + 1 < args.Length ? args[++i] : null;
            switch (args[i])
            {
                case "--count" when int.TryParse(Value(), out int c) && c >= 10_000: count = c; break;
                case "--rounds" when int.TryParse(Value(), out int r) && r > 0: rounds = r; break;
                case "--rate" when double.TryParse(Value(), CultureInfo.InvariantCulture, out double r) && r > 0: rate = r; break;
                case "--json": json = true; break;
                default:
                    Console.Error.WriteLine($"book: bad or unknown option '{args[i]}'\n{Usage}");
                    return 2;
            }
        }

        (Transaction[] warmup, Transaction[] commands) = ExchangeCoreMix.Generate(count);
        Peak(warmup, commands); // JIT and caches
        var peaks = new List<(double OpsPerSecond, double TradeShare, long Allocated, long AllocatedSecondHalf, int Resting)>();
        for (int r = 0; r < rounds; r++)
        {
            peaks.Add(Peak(warmup, commands));
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  round {r + 1}/{rounds}: {peaks[^1].OpsPerSecond / 1e6:F2} M ops/s"));
        }
        double median = peaks.Select(p => p.OpsPerSecond).Order().ElementAt(peaks.Count / 2);
        LongHistogram latency = Paced(warmup, commands, rate);
        double Us(double percentile) => Math.Round(latency.GetValueAtPercentile(percentile) * 1e6 / Stopwatch.Frequency, 3);

        var line = new Dictionary<string, object>
        {
            ["count"] = count,
            ["rounds"] = rounds,
            ["ops_per_sec"] = Math.Round(median),
            ["ops_per_sec_max"] = Math.Round(peaks.Max(p => p.OpsPerSecond)),
            ["trades_per_command"] = Math.Round(peaks[0].TradeShare, 4),
            ["resting_at_end"] = peaks[0].Resting,
            ["bytes_per_op"] = Math.Round((double)peaks.Max(p => p.Allocated) / count, 3),
            ["bytes_per_op_second_half"] = Math.Round((double)peaks.Max(p => p.AllocatedSecondHalf) / (count - count / 2), 3),
            ["paced_rate"] = rate,
            ["p50_us"] = Us(50),
            ["p99_us"] = Us(99),
            ["p999_us"] = Us(99.9),
            ["max_us"] = Math.Round(latency.GetMaxValue() * 1e6 / Stopwatch.Frequency, 3),
            ["baseline_exchange_core_ops_per_sec"] = 5_000_000,
        };
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(line));
        }
        else
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"""

                order book, exchange-core mix, {count:N0} commands, median of {rounds}:
                  peak        {median / 1e6:F2} M ops/s  (exchange-core: 5 M ops/s on a Xeon X5690)
                  trades      {(double)line["trades_per_command"]:F3} per command; {line["resting_at_end"]} orders resting at the end
                  allocated   {line["bytes_per_op"]} bytes/op in all ({line["bytes_per_op_second_half"]} in the second half: first-contact growth of per-client state)
                  paced at {rate / 1e6:F2} M/s: p50 {line["p50_us"]} µs, p99 {line["p99_us"]} µs, p99.9 {line["p999_us"]} µs, max {line["max_us"]} µs
                """));
        }
        return 0;
    }

    private static Exchange Prepared(Transaction[] warmup)
    {
        var exchange = new Exchange(ExchangeCoreMix.Reference());
        var sink = new NullSink();
        ulong lsn = 0;
        foreach (Transaction tx in warmup)
        {
            exchange.Apply(in tx, ++lsn, 1, default, ref sink);
        }
        return exchange;
    }

    private static (double, double, long, long, int) Peak(Transaction[] warmup, Transaction[] commands)
    {
        Exchange exchange = Prepared(warmup);
        var sink = new NullSink();
        ulong lsn = (ulong)warmup.Length;
        ulong tradesBefore = exchange.TradeCount;
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        long allocatedAtHalf = 0;
        int half = commands.Length / 2;
        long start = Stopwatch.GetTimestamp();
        for (int i = 0; i < commands.Length; i++)
        {
            if (i == half)
            {
                allocatedAtHalf = GC.GetAllocatedBytesForCurrentThread();
            }
            exchange.Apply(in commands[i], ++lsn, 1, default, ref sink);
        }
        TimeSpan elapsed = Stopwatch.GetElapsedTime(start);
        long end = GC.GetAllocatedBytesForCurrentThread();
        long secondHalf = end - allocatedAtHalf;
        allocated = end - allocated;
        // Each trade is one fill; a command that trades makes one or more: count commands by trades made.
        double tradeShare = (double)(exchange.TradeCount - tradesBefore) / commands.Length;
        return (commands.Length / elapsed.TotalSeconds, tradeShare, allocated, secondHalf, exchange.OpenOrders);
    }

    /// <summary>Applies one command every 1/rate seconds on a spinning thread and records each apply's own time.</summary>
    private static LongHistogram Paced(Transaction[] warmup, Transaction[] commands, double rate)
    {
        Exchange exchange = Prepared(warmup);
        var sink = new NullSink();
        var histogram = new LongHistogram(TimeStamp.Seconds(1), 3);
        ulong lsn = (ulong)warmup.Length;
        double ticksPerOp = Stopwatch.Frequency / rate;
        long start = Stopwatch.GetTimestamp();
        int n = Math.Min(commands.Length, (int)Math.Min(rate * 3, int.MaxValue));
        for (int i = 0; i < n; i++)
        {
            long due = start + (long)(i * ticksPerOp);
            while (Stopwatch.GetTimestamp() < due)
            {
                Thread.SpinWait(1);
            }
            long t0 = Stopwatch.GetTimestamp();
            exchange.Apply(in commands[i], ++lsn, 1, default, ref sink);
            histogram.RecordValue(Stopwatch.GetTimestamp() - t0);
        }
        return histogram;
    }
}
