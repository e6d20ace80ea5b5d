using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Engine.Bench.Processes;
using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Protocol;

namespace Engine.Bench.Ledger;

/// <summary>
/// <c>snapshot-pause</c>: what snapshots of a large book cost the order path of a pair. Both nodes
/// start on the same journal of N resting orders; an open-loop load measures the latency clients see
/// with snapshots off (the baseline), with snapshots every few seconds on both nodes, and with the
/// state checksum (a whole-state walk) every few hundred blocks, on the apply thread and on the
/// snapshot replica, phases alternating A B C D A B C D, in one run.
/// </summary>
public static class SnapshotPauseHarness
{
    public const string Usage = """
        snapshot-pause [--orders N] [--rate R] [--seconds S] [--rounds N] [--json]
          A pair (two real `engine serve` processes) on a journal of N resting orders (default 1000000), loaded
          open loop at R orders/s (default 1000) for S seconds (default 10) per phase: snapshots off and the state
          checksum off (baseline); snapshots every 2 s on both nodes; the checksum every 500 blocks computed by the
          apply thread (snapshots off), and by the snapshot replica (snapshots on, none due). Rounds of the four
          phases (default 2); p50/p99/p99.9/max per phase, and the snapshots each node took.
          --json    one JSON object instead of the table
        """;

    public static int Run(string[] args)
    {
        int orders = 1_000_000, rate = 1000, seconds = 10, rounds = 2;
        bool json = false;
        for (int i = 0; i < args.Length; i++)
        {
            string? Value() => i + 1 < args.Length ? args[++i] : null;
            switch (args[i])
            {
                case "--orders" when int.TryParse(Value(), out int o) && o > 0: orders = o; break;
                case "--rate" when int.TryParse(Value(), out int r) && r > 0: rate = r; break;
                case "--seconds" when int.TryParse(Value(), out int s) && s > 0: seconds = s; break;
                case "--rounds" when int.TryParse(Value(), out int n) && n > 0: rounds = n; break;
                case "--json": json = true; break;
                default:
                    Console.Error.WriteLine($"snapshot-pause: bad or unknown option '{args[i]}'\n{Usage}");
                    return 2;
            }
        }
        string root = Path.Combine(Path.GetTempPath(), $"engine-snapshot-pause-{Environment.ProcessId}");
        try
        {
            string journal = Path.Combine(root, "seed", "journal");
            string config = Path.Combine(root, "config.json");
            WriteConfig(config, orders);
            WriteRestingBook(journal, orders);
            Console.Error.WriteLine($"snapshot-pause: {orders:N0} resting orders journaled");
            (string Name, Dictionary<string, string> Environment)[] phases =
            [
                ("baseline", new() { ["ENGINE_SNAPSHOTEVERYBLOCKS"] = "0", ["ENGINE_SNAPSHOTEVERYSECONDS"] = "0", ["ENGINE_CHECKSUMEVERYBLOCKS"] = "100000000" }),
                ("snapshots every 2 s", new() { ["ENGINE_SNAPSHOTEVERYBLOCKS"] = "0", ["ENGINE_SNAPSHOTEVERYSECONDS"] = "2", ["ENGINE_CHECKSUMEVERYBLOCKS"] = "100000000" }),
                ("checksum/500 blocks, apply", new() { ["ENGINE_SNAPSHOTEVERYBLOCKS"] = "0", ["ENGINE_SNAPSHOTEVERYSECONDS"] = "0", ["ENGINE_CHECKSUMEVERYBLOCKS"] = "500" }),
                ("checksum/500 blocks, replica", new() { ["ENGINE_SNAPSHOTEVERYBLOCKS"] = "0", ["ENGINE_SNAPSHOTEVERYSECONDS"] = "3600", ["ENGINE_CHECKSUMEVERYBLOCKS"] = "500" }),
            ];
            var results = new List<JsonObject>();
            for (int round = 0; round < rounds; round++)
            {
                foreach ((string name, Dictionary<string, string> environment) in phases)
                {
                    JsonObject result = Phase(root, journal, config, environment, rate, seconds);
                    result["phase"] = name;
                    result["round"] = round + 1;
                    Console.Error.WriteLine($"snapshot-pause: round {round + 1}, {name}: {result.ToJsonString()}");
                    results.Add(result);
                }
            }
            if (json)
            {
                Console.WriteLine(new JsonObject { ["bench"] = "snapshot-pause", ["orders"] = orders, ["rate"] = rate, ["seconds"] = seconds, ["phases"] = new JsonArray([.. results]) }.ToJsonString());
                return 0;
            }
            Console.WriteLine($"{"phase",-30} {"round",5} {"p50 µs",8} {"p99 µs",8} {"p99.9 µs",9} {"max µs",8} {"snapshots A/B",14} {"write ms A/B",13}");
            foreach (JsonObject r in results)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{(string)r["phase"]!,-30} {(int)r["round"]!,5} {(double)r["p50_us"]!,8:F0} {(double)r["p99_us"]!,8:F0} {(double)r["p999_us"]!,9:F0} {(double)r["max_us"]!,8:F0} {$"{r["snapshots_a"]}/{r["snapshots_b"]}",14} {$"{r["write_ms_a"]}/{r["write_ms_b"]}",13}"));
            }
            Console.WriteLine($"({orders:N0} resting orders, open loop {rate}/s for {seconds} s, 4 connections, CO-corrected; both nodes on this machine's two cores with the load)");
            return 0;
        }
        finally
        {
            if (Directory.Exists(root))
            {
                Directory.Delete(root, recursive: true);
            }
        }
    }

    /// <summary>Ten accounts with room for the resting book plus the load's orders; the development clients' tokens.</summary>
    internal static void WriteConfig(string path, int orders)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var accounts = Enumerable.Range(1, 10).Select(a => new JsonObject { ["Id"] = a, ["MaxOpenOrders"] = (orders / 10) + 100_000 });
        var instruments = new[] { (1, "AAA", 1), (2, "BBB", 5), (3, "CCC", 25) }.Select(i => new JsonObject { ["Id"] = i.Item1, ["Symbol"] = i.Item2, ["TickSize"] = i.Item3 });
        var clients = Enumerable.Range(1, 64).Select(c => new JsonObject { ["Id"] = c, ["Token"] = $"dev-token-{c}", ["Accounts"] = new JsonArray([.. Enumerable.Range(1, 10).Select(a => (JsonNode)a)]) });
        File.WriteAllText(path, new JsonObject
        {
            ["Instruments"] = new JsonArray([.. instruments]),
            ["Accounts"] = new JsonArray([.. accounts]),
            ["Clients"] = new JsonArray([.. clients]),
        }.ToJsonString());
    }

    /// <summary>
    /// N GTC limit orders of client 64 on instrument 1, buys at 100–899 and sells at 1101–1900: a book
    /// the load's orders (prices 990–1010) never cross, so it stays at N.
    /// </summary>
    internal static void WriteRestingBook(string journal, int orders)
    {
        using Journal log = Journal.Open(new JournalSettings { Directory = journal, Durability = Durability.Memory });
        var builder = new BlockBuilder(log.Head, 1000);
        var random = new Random(7);
        for (int i = 1; i <= orders; i++)
        {
            bool buy = (i & 1) == 0;
            long price = buy ? random.Next(100, 900) : random.Next(1101, 1901);
            var tx = Transaction.NewOrder(64, (ulong)i, (uint)(1 + (i % 10)), 1, (ulong)i, buy ? Side.Buy : Side.Sell, OrderType.Limit, TimeInForce.Gtc, price, 1 + random.Next(100));
            if (builder.IsFull)
            {
                log.Append(builder.Seal(0, out _));
            }
            builder.Add(tx);
        }
        log.Append(builder.Seal(0, out _));
        log.Flush();
    }

    private static JsonObject Phase(string root, string seedJournal, string config, Dictionary<string, string> environment, int rate, int seconds)
    {
        string a = Path.Combine(root, "a"), b = Path.Combine(root, "b");
        foreach (string data in new[] { a, b })
        {
            if (Directory.Exists(data))
            {
                Directory.Delete(data, recursive: true);
            }
            CopyDirectory(seedJournal, Path.Combine(data, "journal"));
        }
        int clientA = EngineProcess.FreePort(), clientB = EngineProcess.FreePort(), replicationA = EngineProcess.FreePort(), replicationB = EngineProcess.FreePort();
        string adminA = $"127.0.0.1:{EngineProcess.FreePort()}", adminB = $"127.0.0.1:{EngineProcess.FreePort()}";
        using EngineProcess primary = EngineProcess.Start(environment, "serve", "--role", "primary", "--data", a, "--config", config, "--listen", $"127.0.0.1:{clientA}",
            "--replication-listen", $"127.0.0.1:{replicationA}", "--admin", adminA, "--peer", $"127.0.0.1:{replicationB}");
        using EngineProcess backup = EngineProcess.Start(environment, "serve", "--role", "backup", "--data", b, "--config", config, "--listen", $"127.0.0.1:{clientB}",
            "--replication-listen", $"127.0.0.1:{replicationB}", "--admin", adminB, "--peer", $"127.0.0.1:{replicationA}");
        primary.WaitForStatus(adminA, s => (bool?)s["backup_in_step"] == true, "the pair in step", TimeSpan.FromMinutes(5));
        if (environment["ENGINE_SNAPSHOTEVERYSECONDS"] != "0")
        {
            // Both replicas first catch up with the book (a replay of the whole journal on their own threads).
            foreach ((EngineProcess node, string admin) in new[] { (primary, adminA), (backup, adminB) })
            {
                node.WaitForStatus(admin, s => (long?)s["snapshots"]?["applied_block"] >= (long?)s["block"], "the snapshot replica level with the journal", TimeSpan.FromMinutes(5));
            }
        }
        JsonNode startA = EngineProcess.Status(adminA, state: false), startB = EngineProcess.Status(adminB, state: false);
        using EngineProcess load = EngineProcess.Start(new Dictionary<string, string>(), "load", "--target", $"127.0.0.1:{clientA}", "--rate", rate.ToString(CultureInfo.InvariantCulture),
            "--duration", seconds.ToString(CultureInfo.InvariantCulture), "--connections", "4", "--json");
        if (!load.WaitForExit(TimeSpan.FromSeconds(seconds + 120)) || load.ExitCode != 0)
        {
            throw new InvalidOperationException($"engine load failed:\n{load.Output}");
        }
        JsonNode measured = JsonNode.Parse(load.Output.Split('\n').Last(l => l.StartsWith('{')))!;
        JsonNode endA = EngineProcess.Status(adminA, state: false), endB = EngineProcess.Status(adminB, state: false);
        long Taken(JsonNode start, JsonNode end) => ((long?)end["snapshots"]?["taken"] ?? 0) - ((long?)start["snapshots"]?["taken"] ?? 0);
        return new JsonObject
        {
            ["p50_us"] = Micros(measured, "p50"),
            ["p99_us"] = Micros(measured, "p99"),
            ["p999_us"] = Micros(measured, "p999"),
            ["max_us"] = Micros(measured, "max"),
            ["acked"] = (long?)measured["acked"],
            ["snapshots_a"] = Taken(startA, endA),
            ["snapshots_b"] = Taken(startB, endB),
            ["write_ms_a"] = (double?)endA["snapshots"]?["last_write_ms"],
            ["write_ms_b"] = (double?)endB["snapshots"]?["last_write_ms"],
            ["open_orders"] = (long?)EngineProcess.Status(adminA)["state"]?["open_orders"],
        };
    }

    /// <summary>The load's latency field <c>NAME_us</c>.</summary>
    private static double Micros(JsonNode measured, string name) =>
        (double?)measured[$"{name}_us"] ?? throw new JsonException($"no {name} latency in the load's result: {measured.ToJsonString()}");

    internal static void CopyDirectory(string source, string target)
    {
        Directory.CreateDirectory(target);
        foreach (string file in Directory.EnumerateFiles(source))
        {
            File.Copy(file, Path.Combine(target, Path.GetFileName(file)));
        }
        foreach (string directory in Directory.EnumerateDirectories(source))
        {
            CopyDirectory(directory, Path.Combine(target, Path.GetFileName(directory)));
        }
    }
}
