using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Engine.Bench.Processes;
using Engine.Client;
using Engine.Core.Journaling;
using Engine.Core.Ledger;
using Engine.Core.Ring;
using Engine.Protocol;

namespace Engine.Bench.Ledger;

/// <summary>
/// <c>recovery</c>: how long a real <c>engine serve</c> takes from its start after a SIGKILL to its
/// first acknowledged order, for journals of several history lengths, without snapshots (the
/// baseline: verify and replay from genesis) and with them (the newest snapshot plus the blocks
/// after it), in one run.
/// </summary>
public static class RecoveryHarness
{
    public const string Usage = """
        recovery [--orders N,N,...] [--tail N] [--json]
          For each history length: generates a journal of N synthetic orders, then starts `engine serve` on it
          three times, each ended by SIGKILL: snapshots off (start → first acknowledged order: the baseline),
          snapshots on (every second: one once its replica has caught up with the history), and snapshots on again
          after --tail more orders were journaled (the restart measured: newest snapshot + the blocks after it).
          --orders  history lengths (default 2000000,20000000,50000000)
          --tail    orders journaled after the snapshot, replayed at the last start (default 100000)
          --json    one JSON object instead of the table
        """;

    public static int Run(string[] args)
    {
        long[] lengths = [2_000_000, 20_000_000, 50_000_000];
        int tail = 100_000;
        bool json = false;
        for (int i = 0; i < args.Length; i++)
        {
            string? Value() => i + 1 < args.Length ? args[++i] : null;
            switch (args[i])
            {
                case "--orders" when Value() is { } list:
                    try
                    {
                        lengths = [.. list.Split(',').Select(v => long.Parse(v, NumberStyles.None, CultureInfo.InvariantCulture))];
                    }
                    catch (FormatException)
                    {
                        Console.Error.WriteLine($"recovery: --orders takes numbers separated by commas, not '{list}'");
                        return 2;
                    }
                    break;
                case "--tail" when int.TryParse(Value(), out int t) && t >= 0: tail = t; break;
                case "--json": json = true; break;
                default:
                    Console.Error.WriteLine($"recovery: bad or unknown option '{args[i]}'\n{Usage}");
                    return 2;
            }
        }
        if (lengths.Any(n => n < 1))
        {
            Console.Error.WriteLine("recovery: every history length must be at least 1");
            return 2;
        }
        var rows = new List<JsonObject>();
        foreach (long orders in lengths)
        {
            string root = Path.Combine(Path.GetTempPath(), $"engine-recovery-{orders}-{Environment.ProcessId}");
            try
            {
                rows.Add(Measure(root, orders, tail));
            }
            finally
            {
                if (Directory.Exists(root))
                {
                    Directory.Delete(root, recursive: true);
                }
            }
        }
        if (json)
        {
            Console.WriteLine(new JsonObject { ["bench"] = "recovery", ["tail"] = tail, ["rows"] = new JsonArray([.. rows]) }.ToJsonString());
            return 0;
        }
        Console.WriteLine($"{"history",12} {"journal MB",10} {"blocks",10} {"no snapshot ms",15} {"snapshot MB",11} {"open orders",11} {"with snapshot ms",17} {"server ms",9} {"ratio",6}");
        foreach (JsonObject row in rows)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{(long)row["orders"]!,12:N0} {(double)row["journal_mb"]!,10:F0} {(long)row["blocks"]!,10:N0} {(double)row["genesis_ms"]!,15:F0} {(double)row["snapshot_mb"]!,11:F1} {(long)row["open_orders"]!,11:N0} {(double)row["snapshot_ms"]!,17:F0} {(double)row["server_ms"]!,9:F0} {(double)row["genesis_ms"]! / (double)row["snapshot_ms"]!,6:F1}"));
        }
        Console.WriteLine($"(start → first acknowledged order after SIGKILL, {tail:N0} orders after the snapshot; server ms: the node's own recovery time from /status)");
        return 0;
    }

    private static JsonObject Measure(string root, long orders, int tail)
    {
        string journal = Path.Combine(root, "journal");
        Generate(journal, orders, seed: 1);
        long blocks = Head(journal);
        Console.Error.WriteLine($"recovery: {orders:N0} orders in {blocks:N0} blocks, {DirectoryBytes(journal) / 1e6:F0} MB");

        var off = new Dictionary<string, string> { ["ENGINE_SNAPSHOTEVERYBLOCKS"] = "0", ["ENGINE_SNAPSHOTEVERYSECONDS"] = "0" };
        (double genesisMs, _) = StartAndKill(root, off, waitForSnapshotOf: null);
        Console.Error.WriteLine($"recovery: without snapshots, serving after {genesisMs:F0} ms");
        // A snapshot a second after the start (its replica must first catch up with the whole history).
        (double firstMs, _) = StartAndKill(root, new() { ["ENGINE_SNAPSHOTEVERYSECONDS"] = "1" }, waitForSnapshotOf: blocks);
        Console.Error.WriteLine($"recovery: with snapshots on and none yet, serving after {firstMs:F0} ms; the snapshot taken");
        long snapshotBytes = Directory.EnumerateFiles(Path.Combine(journal, "snapshots"), "*" + SnapshotStore.Extension).Max(f => new FileInfo(f).Length);
        if (tail > 0)
        {
            Generate(journal, tail, seed: 2);
        }
        (double snapshotMs, JsonNode? status) = StartAndKill(root, [], waitForSnapshotOf: null);
        JsonNode recovery = status["recovery"]!;
        Console.Error.WriteLine($"recovery: from the snapshot, serving after {snapshotMs:F0} ms: {recovery.ToJsonString()}");
        return new JsonObject
        {
            ["orders"] = orders,
            ["blocks"] = blocks,
            ["journal_mb"] = Math.Round(DirectoryBytes(journal) / 1e6, 1),
            ["genesis_ms"] = Math.Round(genesisMs, 1),
            ["first_snapshot_start_ms"] = Math.Round(firstMs, 1),
            ["snapshot_mb"] = Math.Round(snapshotBytes / 1e6, 1),
            ["open_orders"] = (long?)status["state"]?["open_orders"] ?? -1,
            ["snapshot_ms"] = Math.Round(snapshotMs, 1),
            ["server_ms"] = (double)recovery["total_ms"]!,
            ["replayed_blocks"] = (long)recovery["replayed_blocks"]!,
            ["replayed_transactions"] = (long)recovery["replayed_transactions"]!,
        };
    }

    private static void Generate(string journal, long orders, int seed)
    {
        for (long done = 0; done < orders;)
        {
            // A run seals after the journal's head as opened: one opening per run.
            using Journal log = Journal.Open(new JournalSettings { Directory = journal, Durability = Durability.Memory });
            int count = (int)Math.Min(orders - done, 10_000_000);
            SyntheticLedgerRun.Run(log, count, new RingSettings { Size = 1 << 14 }, seed + (int)(done / 10_000_000));
            done += count;
        }
    }

    private static long Head(string journal)
    {
        using Journal log = Journal.Open(new JournalSettings { Directory = journal });
        return (long)log.Head.BlockNo;
    }

    private static long DirectoryBytes(string directory) => Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);

    /// <summary>
    /// Starts <c>engine serve</c> on <paramref name="root"/>, times it to its first acknowledged order, optionally waits for
    /// its snapshot of block <paramref name="waitForSnapshotOf"/> or later, reads /status, and SIGKILLs it.
    /// </summary>
    private static (double ServingMs, JsonNode Status) StartAndKill(string root, Dictionary<string, string> environment, long? waitForSnapshotOf)
    {
        int port = EngineProcess.FreePort();
        string admin = $"127.0.0.1:{EngineProcess.FreePort()}";
        var clock = Stopwatch.StartNew();
        using EngineProcess engine = EngineProcess.Start(environment, "serve", "--data", root, "--listen", $"127.0.0.1:{port}", "--admin", admin);
        double servingMs;
        try
        {
            servingMs = FirstAcknowledgedAsync(port, clock, engine).GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is not InvalidOperationException)
        {
            throw new InvalidOperationException($"engine serve failed: {e.Message}\n{engine.Output}", e);
        }
        if (waitForSnapshotOf is { } block)
        {
            engine.WaitForStatus(admin, s => (long?)s["snapshots"]?["snapshot_block"] >= block, $"a snapshot of block {block}", TimeSpan.FromMinutes(10));
        }
        return (servingMs, EngineProcess.Status(admin));
    }

    private static async Task<double> FirstAcknowledgedAsync(int port, Stopwatch clock, EngineProcess engine)
    {
        while (true)
        {
            if (engine.HasExited)
            {
                throw new InvalidOperationException($"engine serve exited ({engine.ExitCode}) before serving:\n{engine.Output}");
            }
            if (clock.Elapsed > TimeSpan.FromMinutes(10))
            {
                throw new TimeoutException("not serving within 10 minutes");
            }
            try
            {
                await using EngineClient client = await EngineClient.ConnectAsync(new ClientOptions
                {
                    Endpoints = [$"127.0.0.1:{port}"],
                    ClientId = 64,
                    Token = "dev-token-64",
                    AnswerTimeout = TimeSpan.FromSeconds(5),
                    ReconnectFor = TimeSpan.FromMilliseconds(20), // one attempt (its retries back off to 100 ms; ours wait 5)
                }).ConfigureAwait(false);
                SubmitResult result = await client.SubmitAsync(Transaction.NewOrder(0, 0, 1, 1, 1, Side.Buy, OrderType.Limit, TimeInForce.Ioc, 1, 1)).ConfigureAwait(false);
                if (result.Accepted)
                {
                    return clock.Elapsed.TotalMilliseconds;
                }
                throw new InvalidOperationException($"the probe order was not accepted: {result}");
            }
            catch (Exception e) when (e is SocketException or IOException or TimeoutException or EngineUnavailableException)
            {
                await Task.Delay(5).ConfigureAwait(false); // not listening yet: try again
            }
        }
    }
}
