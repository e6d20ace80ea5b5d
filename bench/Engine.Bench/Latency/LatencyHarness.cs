using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Engine.Bench.Processes;
using Engine.Cli.Load;
using HdrHistogram;

namespace Engine.Bench.Latency;

/// <summary>
/// <c>latency</c>: per-order latency as a trading front-end feels it, open loop and corrected for
/// coordinated omission, of three setups in one run and one harness: the floor (<see cref="FloorServer"/>:
/// the machine's cost of a request and its answer between two processes), a single node, and a
/// pair (link authenticated), each at several rates. The load generator is <c>engine load</c>'s,
/// in this process; the engines are real <c>engine serve</c> processes on the same two cores.
/// Every acknowledged order of the engines is checked against the (primary's) journal: lost and
/// doubled are counted, not assumed.
/// </summary>
internal static class LatencyHarness
{
    public const string Usage = """
        latency [--seconds S] [--warmup S] [--rates N,N,...] [--setups floor,single,pair] [--connections N] [--set NAME=VALUE]... [--out DIR] [--json]
          Open loop (latency from each request's due time), 4 connections, a realistic order mix. For each setup:
          floor (a minimal server that answers each request from its socket: the machine's floor), single (one
          `engine serve`), pair (primary and backup, the link authenticated, every block mirrored before its
          acknowledgement); a warm-up, then each rate. Prints p50/p90/p99/p99.9/max per cell and the ratio to the
          floor at the same rate; writes DIR/latency.json and DIR/latency.svg (latency over time per cell: the mean
          and the maximum per 10 ms of send time).
          --seconds      measured seconds per cell (default 10)
          --warmup       seconds of load at 10k/s before a setup's first cell, not measured (default 3)
          --rates        requests per second (default 1000,10000,100000)
          --setups       which setups (default floor,single,pair)
          --connections  connections of the load generator (default 4)
          --set          an engine setting for the nodes, as the environment gives it (ENGINE_NAME=VALUE), e.g. --set WaitStrategy=blocking
          --out          directory for the JSON and the plot (default ./latency-results)
          --json         print the JSON object instead of the table
        """;

    private static readonly string[] AllSetups = ["floor", "single", "pair"];

    public static int Run(string[] args)
    {
        double seconds = 10, warmup = 3;
        double[] rates = [1_000, 10_000, 100_000];
        string[] setups = AllSetups;
        int connections = 4;
        string output = "latency-results";
        bool json = false;
        var settings = new Dictionary<string, string>();
        for (int i = 0; i < args.Length; i++)
        {
            string? Value() => i + 1 < args.Length ? args[++i] : null;
            switch (args[i])
            {
                case "--seconds" when double.TryParse(Value(), NumberStyles.Float, CultureInfo.InvariantCulture, out double s) && s > 0: seconds = s; break;
                case "--warmup" when double.TryParse(Value(), NumberStyles.Float, CultureInfo.InvariantCulture, out double w) && w >= 0: warmup = w; break;
                case "--rates" when ParseRates(Value()) is { } r: rates = r; break;
                case "--setups" when Value()?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) is { Length: > 0 } s && s.All(AllSetups.Contains): setups = s; break;
                case "--connections" when int.TryParse(Value(), out int c) && c is >= 1 and <= 64: connections = c; break;
                case "--out" when Value() is { Length: > 0 } o: output = o; break;
                case "--set" when Value() is { } set && set.IndexOf('=') > 0:
                    settings[$"ENGINE_{set[..set.IndexOf('=')].Replace(":", "__", StringComparison.Ordinal).ToUpperInvariant()}"] = set[(set.IndexOf('=') + 1)..];
                    break;
                case "--json": json = true; break;
                default:
                    Console.Error.WriteLine($"latency: bad or unknown option '{args[i]}'\n{Usage}");
                    return 2;
            }
        }

        var cells = new List<Cell>();
        string root = Path.Combine(Path.GetTempPath(), $"engine-latency-{Environment.ProcessId}");
        try
        {
            foreach (string setup in setups)
            {
                using Setup running = Setup.Start(setup, root, settings);
                if (warmup > 0)
                {
                    Console.Error.WriteLine($"latency: {setup}: warming up ({warmup} s at 10k/s)");
                    Drive(running, 10_000, warmup, connections, timeline: false);
                }
                foreach (double rate in rates)
                {
                    Console.Error.WriteLine($"latency: {setup} at {rate:N0}/s for {seconds} s");
                    cells.Add(Measure(running, rate, seconds, connections));
                }
            }
        }
        finally
        {
            if (Directory.Exists(root))
            {
                Directory.Delete(root, recursive: true);
            }
        }

        Directory.CreateDirectory(output);
        string svgPath = Path.GetFullPath(Path.Combine(output, "latency.svg"));
        File.WriteAllText(svgPath, LatencyPlot.Render(cells, seconds));
        JsonObject report = ToJson(cells, svgPath, seconds, connections);
        string text = report.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
        File.WriteAllText(Path.Combine(output, "latency.json"), text);
        if (json)
        {
            Console.WriteLine(text);
        }
        else
        {
            PrintTable(cells);
            Console.WriteLine($"\nplot: {svgPath}");
        }
        return cells.All(c => c.Lost == 0 && c.Duplicates == 0 && c.Split == 0) ? 0 : 1;
    }

    private static double[]? ParseRates(string? list)
    {
        try
        {
            double[]? rates = list?.Split(',').Select(v => double.Parse(v, NumberStyles.Float, CultureInfo.InvariantCulture)).ToArray();
            return rates is { Length: > 0 } && rates.All(r => r > 0) ? rates : null;
        }
        catch (FormatException)
        {
            return null;
        }
    }

    private static LoadResult Drive(Setup setup, double rate, double seconds, int connections, bool timeline) =>
        new LoadGenerator(new LoadOptions(setup.Targets, rate, TimeSpan.FromSeconds(seconds), null, connections, 1024, 1, "dev-token-{id}",
            null, 1, Json: false, TimelineBucket: timeline ? TimeSpan.FromMilliseconds(10) : null), TextWriter.Null)
            .RunAsync(CancellationToken.None).GetAwaiter().GetResult();

    private static Cell Measure(Setup setup, double rate, double seconds, int connections)
    {
        int[] servers = [.. setup.ServerPids];
        Dictionary<int, long>[] serverBefore = [.. servers.Select(ContextSwitches.PerThread)];
        long clientBefore = ContextSwitches.OfThisProcess();
        LoadResult result = Drive(setup, rate, seconds, connections, timeline: true);
        long serverSwitches = servers.Select((pid, i) => ContextSwitches.Between(serverBefore[i], ContextSwitches.PerThread(pid))).Sum();
        long clientSwitches = ContextSwitches.OfThisProcess() - clientBefore;
        AuditResult? audit = setup.Journal is { } journal
            ? JournalAudit.CheckAsync(journal, result.Acks).GetAwaiter().GetResult()
            : null;
        if (audit?.Unreadable is { } why)
        {
            Console.Error.WriteLine($"latency: {setup.Name} at {rate:N0}/s: the audit stopped reading the journal early: {why}");
        }
        long answered = Math.Max(1, result.Acked + result.Rejected);
        return new Cell(setup.Name, rate, result.Latency, result.Timeline!, result.Sent, result.Acked, result.Rejected, result.Errors,
            audit?.Lost ?? 0, audit?.Duplicates ?? 0, audit?.Split ?? 0, audit is not null, result.ThroughputPerSecond,
            (double)serverSwitches / answered, (double)clientSwitches / answered);
    }

    private static JsonObject ToJson(List<Cell> cells, string svgPath, double seconds, int connections)
    {
        var entries = new JsonArray();
        foreach (Cell c in cells)
        {
            Cell? floor = cells.FirstOrDefault(f => f.Setup == "floor" && f.Rate == c.Rate);
            entries.Add(new JsonObject
            {
                ["setup"] = c.Setup,
                ["rate"] = c.Rate,
                ["p50_us"] = c.Us(50),
                ["p90_us"] = c.Us(90),
                ["p99_us"] = c.Us(99),
                ["p999_us"] = c.Us(99.9),
                ["max_us"] = c.MaxUs,
                ["p50_vs_floor"] = floor is null ? null : Ratio(c.Us(50), floor.Us(50)),
                ["p99_vs_floor"] = floor is null ? null : Ratio(c.Us(99), floor.Us(99)),
                ["throughput_per_sec"] = Math.Round(c.Throughput),
                ["server_switches_per_order"] = Math.Round(c.ServerSwitchesPerOrder, 2),
                ["client_switches_per_order"] = Math.Round(c.ClientSwitchesPerOrder, 2),
                ["sent"] = c.Sent,
                ["acked"] = c.Acked,
                ["rejected"] = c.Rejected,
                ["unanswered"] = c.Unanswered,
                ["audited"] = c.Audited,
                ["lost"] = c.Lost,
                ["duplicates"] = c.Duplicates,
                ["split"] = c.Split,
            });
        }
        return new JsonObject
        {
            ["date"] = DateTime.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture),
            ["machine"] = $"{Environment.ProcessorCount} cores, {Environment.OSVersion}",
            ["seconds_per_cell"] = seconds,
            ["connections"] = connections,
            ["mode"] = "open loop, latency from each request's due time (coordinated omission corrected)",
            ["plot"] = svgPath,
            ["cells"] = entries,
        };
    }

    private static double? Ratio(double value, double floor) => floor > 0 ? Math.Round(value / floor, 2) : null;

    private static void PrintTable(List<Cell> cells)
    {
        var c = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(c, $"{"setup",-7} {"rate/s",9} {"p50 µs",9} {"p90 µs",9} {"p99 µs",9} {"p99.9 µs",9} {"max µs",9} {"p50/floor",9} {"p99/floor",9} {"sent",10} {"lost",5} {"dup",5} {"srv cs/o",8} {"cli cs/o",8}"));
        foreach (Cell cell in cells)
        {
            Cell? floor = cells.FirstOrDefault(f => f.Setup == "floor" && f.Rate == cell.Rate);
            string p50Ratio = floor is null ? "-" : $"{Ratio(cell.Us(50), floor.Us(50))}×";
            string p99Ratio = floor is null ? "-" : $"{Ratio(cell.Us(99), floor.Us(99))}×";
            Console.WriteLine(string.Create(c,
                $"{cell.Setup,-7} {cell.Rate,9:N0} {cell.Us(50),9:F1} {cell.Us(90),9:F1} {cell.Us(99),9:F1} {cell.Us(99.9),9:F1} {cell.MaxUs,9:F1} {p50Ratio,9} {p99Ratio,9} {cell.Sent,10:N0} {(cell.Audited ? cell.Lost.ToString(c) : "-"),5} {(cell.Audited ? cell.Duplicates.ToString(c) : "-"),5} {cell.ServerSwitchesPerOrder,8:F2} {cell.ClientSwitchesPerOrder,8:F2}"));
        }
    }

    /// <summary>One setup at one rate.</summary>
    /// <param name="Setup">floor, single or pair.</param>
    /// <param name="Rate">Requests per second, open loop.</param>
    /// <param name="Latency">Stopwatch ticks from each request's due time to its answer.</param>
    /// <param name="Timeline">The same over send time, per 10 ms.</param>
    /// <param name="Sent">Requests sent.</param>
    /// <param name="Acked">Accepted.</param>
    /// <param name="Rejected">Rejected (the mix cancels orders that may have filled: UnknownOrder).</param>
    /// <param name="Unanswered">Unanswered when the cell ended.</param>
    /// <param name="Lost">Acknowledged orders not in the journal where their receipts say.</param>
    /// <param name="Duplicates">Acknowledged orders in the journal twice.</param>
    /// <param name="Split">Block numbers named by receipts with two hashes.</param>
    /// <param name="Audited">The receipts were checked against a journal (not for the floor).</param>
    /// <param name="Throughput">Answers per second.</param>
    /// <param name="ServerSwitchesPerOrder">Context switches of the server processes (every thread's, voluntary and not) per answer: the wake-ups an order costs there.</param>
    /// <param name="ClientSwitchesPerOrder">The same for this process (the load generator and its client library).</param>
    internal sealed record Cell(string Setup, double Rate, LongHistogram Latency, LatencyTimeline Timeline, long Sent, long Acked, long Rejected, long Unanswered,
        long Lost, long Duplicates, long Split, bool Audited, double Throughput, double ServerSwitchesPerOrder, double ClientSwitchesPerOrder)
    {
        public double Us(double percentile) => Latency.TotalCount == 0 ? 0 : Math.Round(Latency.GetValueAtPercentile(percentile) * 1e6 / Stopwatch.Frequency, 1);

        public double MaxUs => Latency.TotalCount == 0 ? 0 : Math.Round(Latency.GetMaxValue() * 1e6 / Stopwatch.Frequency, 1);
    }

    /// <summary>The processes of one setup, killed (and their data deleted with the run's) on dispose.</summary>
    private sealed class Setup : IDisposable
    {
        private readonly List<EngineProcess> _engines = [];
        private Process? _floor;

        private readonly IReadOnlyDictionary<string, string> _environment;

        private Setup(string name, IReadOnlyDictionary<string, string> environment)
        {
            Name = name;
            _environment = environment;
        }

        public string Name { get; }

        public string[] Targets { get; private set; } = [];

        /// <summary>The journal the receipts are audited against (the primary's); null for the floor.</summary>
        public string? Journal { get; private set; }

        /// <summary>The server side's processes (the floor, the node, the pair's two).</summary>
        public IEnumerable<int> ServerPids => _floor is { } floor ? [floor.Id] : _engines.Select(e => e.Id);

        public static Setup Start(string name, string root, IReadOnlyDictionary<string, string> environment)
        {
            var setup = new Setup(name, environment);
            try
            {
                switch (name)
                {
                    case "floor":
                        setup.StartFloor();
                        break;
                    case "single":
                        setup.StartSingle(Path.Combine(root, "single"));
                        break;
                    default:
                        setup.StartPair(Path.Combine(root, "pair"));
                        break;
                }
                return setup;
            }
            catch
            {
                setup.Dispose();
                throw;
            }
        }

        private void StartFloor()
        {
            int port = EngineProcess.FreePort();
            var info = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true };
            info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Engine.Bench.dll"));
            info.ArgumentList.Add("floor-server");
            info.ArgumentList.Add("--port");
            info.ArgumentList.Add(port.ToString(CultureInfo.InvariantCulture));
            _floor = Process.Start(info)!;
            // It says so once it listens.
            Task<string?> line = _floor.StandardOutput.ReadLineAsync();
            if (!line.Wait(TimeSpan.FromSeconds(30)) || line.Result is null)
            {
                throw new InvalidOperationException("the floor server did not start");
            }
            Targets = [$"127.0.0.1:{port}"];
        }

        private void StartSingle(string data)
        {
            int client = EngineProcess.FreePort();
            string admin = $"127.0.0.1:{EngineProcess.FreePort()}";
            EngineProcess node = EngineProcess.Start(_environment, "serve", "--data", data, "--listen", $"127.0.0.1:{client}", "--admin", admin);
            _engines.Add(node);
            node.WaitForStatus(admin, s => s["role"] is not null, "the node serving", TimeSpan.FromMinutes(2));
            Targets = [$"127.0.0.1:{client}"];
            Journal = Path.Combine(data, "journal");
        }

        private void StartPair(string root)
        {
            string a = Path.Combine(root, "a"), b = Path.Combine(root, "b");
            int clientA = EngineProcess.FreePort(), clientB = EngineProcess.FreePort(), replicationA = EngineProcess.FreePort(), replicationB = EngineProcess.FreePort();
            string adminA = $"127.0.0.1:{EngineProcess.FreePort()}", adminB = $"127.0.0.1:{EngineProcess.FreePort()}";
            // The built-in development cluster: the link is authenticated and encrypted with its (public) keys.
            EngineProcess primary = EngineProcess.Start(_environment, "serve", "--role", "primary", "--data", a, "--listen", $"127.0.0.1:{clientA}",
                "--replication-listen", $"127.0.0.1:{replicationA}", "--admin", adminA, "--peer", $"127.0.0.1:{replicationB}", "--peer-listen", $"127.0.0.1:{clientB}");
            _engines.Add(primary);
            EngineProcess backup = EngineProcess.Start(_environment, "serve", "--role", "backup", "--data", b, "--listen", $"127.0.0.1:{clientB}",
                "--replication-listen", $"127.0.0.1:{replicationB}", "--admin", adminB, "--peer", $"127.0.0.1:{replicationA}", "--peer-listen", $"127.0.0.1:{clientA}");
            _engines.Add(backup);
            backup.WaitForStatus(adminB, s => (bool?)s["in_step"] == true, "the backup in step", TimeSpan.FromMinutes(2));
            Targets = [$"127.0.0.1:{clientA}", $"127.0.0.1:{clientB}"];
            Journal = Path.Combine(a, "journal");
        }

        public void Dispose()
        {
            foreach (EngineProcess engine in _engines)
            {
                engine.Dispose();
            }
            if (_floor is { HasExited: false })
            {
                _floor.Kill(entireProcessTree: true);
                _floor.WaitForExit(10_000);
            }
            _floor?.Dispose();
        }
    }
}
