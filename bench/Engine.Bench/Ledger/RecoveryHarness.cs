using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
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
        string engine = Path.Combine(AppContext.BaseDirectory, "engine.dll");
        var rows = new List<JsonObject>();
        foreach (long orders in lengths)
        {
            string root = Path.Combine(Path.GetTempPath(), $"engine-recovery-{orders}-{Environment.ProcessId}");
            try
            {
                rows.Add(Measure(engine, root, orders, tail));
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

    private static JsonObject Measure(string engine, string root, long orders, int tail)
    {
        string journal = Path.Combine(root, "journal");
        Generate(journal, orders, seed: 1);
        long blocks = Head(journal);
        Console.Error.WriteLine($"recovery: {orders:N0} orders in {blocks:N0} blocks, {DirectoryBytes(journal) / 1e6:F0} MB");

        var off = new Dictionary<string, string> { ["ENGINE_SNAPSHOTEVERYBLOCKS"] = "0", ["ENGINE_SNAPSHOTEVERYSECONDS"] = "0" };
        (double genesisMs, _) = StartAndKill(engine, root, off, waitForSnapshotOf: null);
        Console.Error.WriteLine($"recovery: without snapshots, serving after {genesisMs:F0} ms");
        // A snapshot a second after the start (its replica must first catch up with the whole history).
        (double firstMs, _) = StartAndKill(engine, root, new() { ["ENGINE_SNAPSHOTEVERYSECONDS"] = "1" }, waitForSnapshotOf: blocks);
        Console.Error.WriteLine($"recovery: with snapshots on and none yet, serving after {firstMs:F0} ms; the snapshot taken");
        long snapshotBytes = Directory.EnumerateFiles(Path.Combine(journal, "snapshots"), "*" + SnapshotStore.Extension).Max(f => new FileInfo(f).Length);
        if (tail > 0)
        {
            Generate(journal, tail, seed: 2);
        }
        (double snapshotMs, JsonNode? status) = StartAndKill(engine, root, [], waitForSnapshotOf: null);
        JsonNode recovery = status!["recovery"]!;
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
    private static (double ServingMs, JsonNode? Status) StartAndKill(string engine, string root, Dictionary<string, string> environment, long? waitForSnapshotOf)
    {
        int port = FreePort();
        int admin = FreePort();
        var info = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string arg in new[] { engine, "serve", "--data", root, "--listen", $"127.0.0.1:{port}", "--admin", $"127.0.0.1:{admin}" })
        {
            info.ArgumentList.Add(arg);
        }
        foreach ((string name, string value) in environment)
        {
            info.Environment[name] = value;
        }
        var output = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var clock = Stopwatch.StartNew();
        using Process process = Process.Start(info)!;
        process.OutputDataReceived += (_, e) => output.Enqueue(e.Data ?? "");
        process.ErrorDataReceived += (_, e) => output.Enqueue(e.Data ?? "");
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            double servingMs = FirstAcknowledgedAsync(port, clock, process).GetAwaiter().GetResult();
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
            JsonNode? status = JsonNode.Parse(http.GetStringAsync(new Uri($"http://127.0.0.1:{admin}/status")).GetAwaiter().GetResult());
            if (waitForSnapshotOf is { } block)
            {
                var waited = Stopwatch.StartNew();
                while ((long?)status?["snapshots"]?["snapshot_block"] is not { } taken || taken < block)
                {
                    if (waited.Elapsed > TimeSpan.FromMinutes(10) || process.HasExited)
                    {
                        throw new InvalidOperationException($"no snapshot of block {block} within 10 minutes:\n{string.Join('\n', output)}");
                    }
                    Thread.Sleep(200); // a poll of a slow background task, not a race: the loop's condition decides
                    status = JsonNode.Parse(http.GetStringAsync(new Uri($"http://127.0.0.1:{admin}/status?state=false")).GetAwaiter().GetResult());
                }
            }
            return (servingMs, status);
        }
        catch (Exception e) when (e is not InvalidOperationException)
        {
            throw new InvalidOperationException($"engine serve failed: {e.Message}\n{string.Join('\n', output)}", e);
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit(10_000);
        }
    }

    private static async Task<double> FirstAcknowledgedAsync(int port, Stopwatch clock, Process process)
    {
        while (true)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"engine serve exited ({process.ExitCode}) before serving");
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

    private static int FreePort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }
}
