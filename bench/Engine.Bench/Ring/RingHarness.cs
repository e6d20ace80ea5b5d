using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Engine.Core.Ring;

namespace Engine.Bench.Ring;

/// <summary>
/// <c>ring</c>: our ring against bounded channels, same topologies, same run, rounds interleaved
/// (ours, channel, ours, …) so that noise on this shared machine hits both alike. Reports medians
/// and their ratio, bytes allocated per event, and what an idle pipeline costs in CPU.
/// </summary>
public static class RingHarness
{
    public const string Usage = """
        ring [--scenario NAME|all] [--rounds N] [--events N] [--wait NAME] [--idle-seconds S] [--json]
          Our ring vs System.Threading.Channels (bounded, single reader/writer) in one run.
          --scenario      1p1c, 2p1c, pipeline3, diamond or all (default all)
          --rounds        measured rounds per scenario, after one warm-up round (default 5)
          --events        events per round through our ring (default 20000000); channels get a quarter
          --wait          adaptive (default), busy-spin, yielding, blocking
          --idle-seconds  how long to measure an idle 3-stage pipeline's CPU use; 0 skips it (default 10)
          --json          one JSON object per scenario line instead of the table
        """;

    public static int Run(string[] args)
    {
        var options = Options.Parse(args);
        if (options is null)
        {
            Console.Error.WriteLine(Usage);
            return 2;
        }

        WaitStrategy Wait() => WaitStrategy.Parse(options.Wait);
        var lines = new List<Dictionary<string, object>>();
        foreach (string scenario in options.Scenarios)
        {
            long channelEvents = Math.Max(options.Events / 4, 1000);
            // Warm-up: JIT tiers, thread pool growth, page faults of the ring. Not counted.
            RingScenarios.Run(scenario, Math.Min(options.Events, 2_000_000), Wait());
            ChannelScenarios.Run(scenario, Math.Min(channelEvents, 500_000));

            var ours = new List<RunResult>();
            var channel = new List<RunResult>();
            for (int round = 0; round < options.Rounds; round++)
            {
                ours.Add(RingScenarios.Run(scenario, options.Events, Wait()));
                channel.Add(ChannelScenarios.Run(scenario, channelEvents));
                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  {scenario} round {round + 1}/{options.Rounds}: ours {ours[^1].OpsPerSecond / 1e6:F1} M/s, channel {channel[^1].OpsPerSecond / 1e6:F1} M/s"));
            }
            double oursMedian = Median(ours.Select(r => r.OpsPerSecond));
            double channelMedian = Median(channel.Select(r => r.OpsPerSecond));
            lines.Add(new Dictionary<string, object>
            {
                ["scenario"] = scenario,
                ["wait"] = options.Wait,
                ["rounds"] = options.Rounds,
                ["events"] = options.Events,
                ["ours_ops_per_sec"] = Math.Round(oursMedian),
                ["ours_ops_per_sec_min"] = Math.Round(ours.Min(r => r.OpsPerSecond)),
                ["ours_ops_per_sec_max"] = Math.Round(ours.Max(r => r.OpsPerSecond)),
                ["channel_ops_per_sec"] = Math.Round(channelMedian),
                ["ratio"] = Math.Round(oursMedian / channelMedian, 2),
                ["ours_bytes_per_event"] = Math.Round(ours.Max(r => r.BytesPerEvent), 4),
                ["channel_bytes_per_event"] = Math.Round(channel.Max(r => r.BytesPerEvent), 4),
            });
        }

        if (options.IdleSeconds > 0)
        {
            double idle = IdleCpuPercent(TimeSpan.FromSeconds(options.IdleSeconds), Wait());
            lines.Add(new Dictionary<string, object>
            {
                ["scenario"] = "idle",
                ["wait"] = options.Wait,
                ["seconds"] = options.IdleSeconds,
                ["idle_cpu_percent"] = Math.Round(idle, 3),
            });
        }

        if (options.Json)
        {
            foreach (var line in lines)
            {
                Console.WriteLine(JsonSerializer.Serialize(line));
            }
        }
        else
        {
            PrintTable(lines);
        }
        return 0;
    }

    /// <summary>
    /// CPU used by the whole process while a started 3-stage pipeline sits idle, as a percentage
    /// of one core: user + system time from the OS over wall time.
    /// </summary>
    private static double IdleCpuPercent(TimeSpan duration, WaitStrategy wait)
    {
        var done = new Completion();
        var builder = new PipelineBuilder<BenchEvent>(new RingSettings { Size = RingScenarios.RingSize, Wait = wait });
        Stage a = builder.AddStage("double", new DoubleHandler());
        Stage b = builder.AddStage("add", new AddHandler(), a);
        builder.AddStage("sum", new SumHandler(done, 1), b);
        using Pipeline<BenchEvent> pipeline = builder.Start();
        done.Reset(999);
        for (int i = 0; i < 1000; i++)
        {
            using var claim = pipeline.Ring.Claim();
            claim.Slot.Value = i;
        }
        done.Wait(TimeSpan.FromSeconds(30));
        GC.Collect();
        Thread.Sleep(500); // let the stages pass their spin and yield phases and park

        using Process self = Process.GetCurrentProcess();
        self.Refresh();
        TimeSpan cpuBefore = self.TotalProcessorTime;
        long start = Stopwatch.GetTimestamp();
        Thread.Sleep(duration);
        self.Refresh();
        TimeSpan cpu = self.TotalProcessorTime - cpuBefore;
        TimeSpan wall = Stopwatch.GetElapsedTime(start);
        Console.Error.WriteLine($"  idle: {cpu.TotalMilliseconds:F1} ms of CPU in {wall.TotalSeconds:F1} s, {wait.ParkedThreads} of 3 stages parked");
        return 100 * cpu.TotalSeconds / wall.TotalSeconds;
    }

    private static void PrintTable(List<Dictionary<string, object>> lines)
    {
        Console.WriteLine();
        Console.WriteLine($"{"scenario",-10} {"ours M/s",10} {"(min-max)",15} {"channel M/s",12} {"ratio",7} {"B/event",8}");
        foreach (var line in lines.Where(l => (string)l["scenario"] != "idle"))
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{line["scenario"],-10} {(double)line["ours_ops_per_sec"] / 1e6,10:F1} {$"({(double)line["ours_ops_per_sec_min"] / 1e6:F1}-{(double)line["ours_ops_per_sec_max"] / 1e6:F1})",15} {(double)line["channel_ops_per_sec"] / 1e6,12:F1} {line["ratio"],6:F2}x {line["ours_bytes_per_event"],8:F3}"));
        }
        foreach (var line in lines.Where(l => (string)l["scenario"] == "idle"))
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"idle 3-stage pipeline ({line["wait"]}): {line["idle_cpu_percent"]:F2}% of one core over {line["seconds"]} s"));
        }
    }

    private static double Median(IEnumerable<double> values)
    {
        double[] sorted = [.. values.Order()];
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private sealed record Options(string[] Scenarios, int Rounds, long Events, string Wait, int IdleSeconds, bool Json)
    {
        public static Options? Parse(string[] args)
        {
            string scenario = "all";
            int rounds = 5;
            long events = 20_000_000;
            string wait = "adaptive";
            int idleSeconds = 10;
            bool json = false;
            for (int i = 0; i < args.Length; i++)
            {
                string? Value() => i + 1 < args.Length ? args[++i] : null;
                switch (args[i])
                {
                    case "--scenario": scenario = Value() ?? ""; break;
                    case "--rounds" when int.TryParse(Value(), out int r) && r > 0: rounds = r; break;
                    case "--events" when long.TryParse(Value(), out long e) && e >= 1000: events = e; break;
                    case "--wait": wait = Value() ?? ""; break;
                    case "--idle-seconds" when int.TryParse(Value(), out int s) && s >= 0: idleSeconds = s; break;
                    case "--json": json = true; break;
                    default:
                        Console.Error.WriteLine($"ring: bad or unknown option '{args[i]}'");
                        return null;
                }
            }
            string[] scenarios = scenario == "all" ? RingScenarios.Names : [scenario];
            if (scenarios.Any(s => !RingScenarios.Names.Contains(s)))
            {
                Console.Error.WriteLine($"ring: unknown scenario '{scenario}'");
                return null;
            }
            if (!WaitStrategy.Names.Contains(wait))
            {
                Console.Error.WriteLine($"ring: unknown wait strategy '{wait}'");
                return null;
            }
            return new Options(scenarios, rounds, events, wait, idleSeconds, json);
        }
    }
}
