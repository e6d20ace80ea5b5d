using System.Globalization;
using System.Text.Json.Nodes;
using Engine.Bench.Processes;

namespace Engine.Bench.Ledger;

/// <summary>
/// <c>rejoin</c>: a fresh backup joining a primary whose state is large (N resting orders), with the
/// chain from genesis (snapshots off: the way every backup joined before snapshots could be sent)
/// and with the primary's snapshot; time from the backup's spawn to its own "in step", and the bytes
/// each way leaves on its disk. Modes alternate A B A B in one run (the machine is shared).
/// </summary>
public static class RejoinHarness
{
    public const string Usage = """
        rejoin [--orders N] [--rounds N] [--json]
          A primary (a real `engine serve`) on a journal of N resting orders (default 1000000); a fresh backup joins it
          with snapshots off (the chain from genesis) and with snapshots on (the primary's snapshot, taken first with
          `engine admin snapshot`), rounds of both (default 2): seconds from the backup's spawn to in step, its journal's
          and snapshots' bytes.
          --json    one JSON object instead of the table
        """;

    public static int Run(string[] args)
    {
        int orders = 1_000_000, rounds = 2;
        bool json = false;
        for (int i = 0; i < args.Length; i++)
        {
            string? Value() => i + 1 < args.Length ? args[++i] : null;
            switch (args[i])
            {
                case "--orders" when int.TryParse(Value(), out int o) && o > 0: orders = o; break;
                case "--rounds" when int.TryParse(Value(), out int n) && n > 0: rounds = n; break;
                case "--json": json = true; break;
                default:
                    Console.Error.WriteLine($"rejoin: bad or unknown option '{args[i]}'\n{Usage}");
                    return 2;
            }
        }
        string root = Path.Combine(Path.GetTempPath(), $"engine-rejoin-{Environment.ProcessId}");
        try
        {
            string journal = Path.Combine(root, "seed", "journal");
            string config = Path.Combine(root, "config.json");
            SnapshotPauseHarness.WriteConfig(config, orders);
            SnapshotPauseHarness.WriteRestingBook(journal, orders);
            Console.Error.WriteLine($"rejoin: {orders:N0} resting orders journaled");
            var results = new List<JsonObject>();
            for (int round = 0; round < rounds; round++)
            {
                foreach (bool snapshot in new[] { false, true })
                {
                    JsonObject result = Join(root, journal, config, snapshot);
                    result["mode"] = snapshot ? "snapshot" : "blocks";
                    result["round"] = round + 1;
                    Console.Error.WriteLine($"rejoin: round {round + 1}: {result.ToJsonString()}");
                    results.Add(result);
                }
            }
            if (json)
            {
                Console.WriteLine(new JsonObject { ["bench"] = "rejoin", ["orders"] = orders, ["joins"] = new JsonArray([.. results]) }.ToJsonString());
                return 0;
            }
            Console.WriteLine($"{"mode",-10} {"round",5} {"in step s",10} {"journal MB",11} {"snapshot MB",12} {"primary's journal MB",21}");
            foreach (JsonObject r in results)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{(string)r["mode"]!,-10} {(int)r["round"]!,5} {(double)r["in_step_s"]!,10:F2} {(long)r["backup_journal_bytes"]! / 1e6,11:F1} {(long)r["backup_snapshot_bytes"]! / 1e6,12:F1} {(long)r["primary_journal_bytes"]! / 1e6,21:F1}"));
            }
            Console.WriteLine($"({orders:N0} resting orders; the backup's spawn to its /status in_step; both nodes and nothing else on this machine's two cores)");
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

    private static JsonObject Join(string root, string seedJournal, string config, bool snapshot)
    {
        string a = Path.Combine(root, "a"), b = Path.Combine(root, "b");
        foreach (string data in new[] { a, b })
        {
            if (Directory.Exists(data))
            {
                Directory.Delete(data, recursive: true);
            }
        }
        SnapshotPauseHarness.CopyDirectory(seedJournal, Path.Combine(a, "journal"));
        var environment = snapshot
            ? new Dictionary<string, string> { ["ENGINE_SNAPSHOTEVERYBLOCKS"] = "1000000", ["ENGINE_SNAPSHOTEVERYSECONDS"] = "3600" }
            : new Dictionary<string, string> { ["ENGINE_SNAPSHOTEVERYBLOCKS"] = "0", ["ENGINE_SNAPSHOTEVERYSECONDS"] = "0" };
        int clientA = EngineProcess.FreePort(), clientB = EngineProcess.FreePort(), replicationA = EngineProcess.FreePort(), replicationB = EngineProcess.FreePort();
        string adminA = $"127.0.0.1:{EngineProcess.FreePort()}", adminB = $"127.0.0.1:{EngineProcess.FreePort()}";
        using EngineProcess primary = EngineProcess.Start(environment, "serve", "--role", "primary", "--data", a, "--config", config, "--listen", $"127.0.0.1:{clientA}",
            "--replication-listen", $"127.0.0.1:{replicationA}", "--admin", adminA, "--allow-solo");
        primary.WaitForStatus(adminA, s => (string?)s["role"] == "primary", "the primary serving", TimeSpan.FromMinutes(5));
        if (snapshot)
        {
            using EngineProcess take = EngineProcess.Start(new Dictionary<string, string>(), "admin", "snapshot", "--admin", adminA);
            if (!take.WaitForExit(TimeSpan.FromMinutes(5)) || take.ExitCode != 0)
            {
                throw new InvalidOperationException($"engine admin snapshot failed:\n{take.Output}");
            }
        }
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        using EngineProcess backup = EngineProcess.Start(environment, "serve", "--role", "backup", "--data", b, "--config", config, "--listen", $"127.0.0.1:{clientB}",
            "--replication-listen", $"127.0.0.1:{replicationB}", "--admin", adminB, "--peer", $"127.0.0.1:{replicationA}");
        backup.WaitForStatus(adminB, s => (bool?)s["in_step"] == true, "the backup in step", TimeSpan.FromMinutes(10));
        double seconds = System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds;
        static long Bytes(string directory, string pattern) => Directory.Exists(directory)
            ? Directory.EnumerateFiles(directory, pattern, SearchOption.TopDirectoryOnly).Sum(f => new FileInfo(f).Length)
            : 0;
        return new JsonObject
        {
            ["in_step_s"] = Math.Round(seconds, 3),
            ["backup_journal_bytes"] = Bytes(Path.Combine(b, "journal"), "log.*"),
            ["backup_snapshot_bytes"] = Bytes(Path.Combine(b, "journal", "snapshots"), "*.snap"),
            ["primary_journal_bytes"] = Bytes(Path.Combine(a, "journal"), "log.*"),
        };
    }
}
