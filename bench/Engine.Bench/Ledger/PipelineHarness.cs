using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Engine.Core.Journaling;
using Engine.Core.Ledger;
using Engine.Core.Ring;
using Engine.Protocol;
using FASTER.core;

namespace Engine.Bench.Ledger;

/// <summary>
/// <c>pipeline</c>: synthetic orders through the real ring → validate → seal (SHA-256 chain) →
/// journal (FasterLog) into a real journal, against the raw FasterLog enqueue of the same frames
/// (one entry per transaction, no validation, no hashing) in the same run; then the journal is
/// verified to measure the verifier's rate.
/// </summary>
/// <remarks>
/// <code>
///  ours      producer ─▶ [ring 64K] ─▶ validate ─▶ seal ─▶ journal gate ─▶ tally      (+ group committer)
///  baseline  producer ─▶ FasterLog.Enqueue(frame) per transaction                  (+ the same committer loop)
/// </code>
/// </remarks>
public static class PipelineHarness
{
    public const string Usage = """
        pipeline --dir DIR [--count N] [--durability memory|disk] [--rounds N] [--roots-ms N] [--json]
          Synthetic orders through validate → seal → journal into DIR, without and with records roots,
          vs raw FasterLog enqueue, one run.
          --dir         where the journals are written (each round in its own subdirectory; removed after)
          --count       transactions per round (default 5000000)
          --durability  memory (default) or disk
          --rounds      measured rounds after one warm-up (default 3)
          --roots-ms    the records-root builder's interval in the "with roots" run (default 10, a node's)
          --json        one JSON object instead of the table
        """;

    public static int Run(string[] args)
    {
        string? dir = null;
        long count = 5_000_000;
        var durability = Durability.Memory;
        int rounds = 3;
        bool json = false;
        int rootsMs = 10;
        for (int i = 0; i < args.Length; i++)
        {
            string? Value() => i + 1 < args.Length ? args[++i] : null;
            switch (args[i])
            {
                case "--dir": dir = Value(); break;
                case "--count" when long.TryParse(Value(), out long c) && c >= 1000: count = c; break;
                case "--durability" when Enum.TryParse(Value(), ignoreCase: true, out Durability d): durability = d; break;
                case "--rounds" when int.TryParse(Value(), out int r) && r > 0: rounds = r; break;
                case "--roots-ms" when int.TryParse(Value(), out int ms) && ms > 0: rootsMs = ms; break;
                case "--json": json = true; break;
                default:
                    Console.Error.WriteLine($"pipeline: bad or unknown option '{args[i]}'\n{Usage}");
                    return 2;
            }
        }
        if (dir is null)
        {
            Console.Error.WriteLine($"pipeline: --dir is required\n{Usage}");
            return 2;
        }

        var rootsEvery = TimeSpan.FromMilliseconds(rootsMs);
        Round(dir, "warmup", Math.Min(count, 500_000), durability, rootsEvery, rootsFirst: false);
        var results = new List<RoundResult>();
        for (int r = 0; r < rounds; r++)
        {
            // Every other round runs with roots first: whichever runs after the raw FasterLog baseline
            // meets the kernel writing that run's pages back, so a fixed order would charge one side with it.
            results.Add(Round(dir, $"round-{r}", count, durability, rootsEvery, rootsFirst: r % 2 == 1));
            RoundResult last = results[^1];
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  round {r + 1}/{rounds}: ours {last.Ours.TransactionsPerSecond / 1e6:F2} M tx/s, with roots {last.WithRoots.TransactionsPerSecond / 1e6:F2} M tx/s ({last.RootsVerify.RootsChecked:N0} roots), baseline {last.BaselineTxPerSecond / 1e6:F2} M tx/s, verify {last.Verify.BytesPerSecond / 1e9:F2} GB/s"));
        }

        RoundResult median = results.OrderBy(r => r.Ours.TransactionsPerSecond).ElementAt(results.Count / 2);
        double baseline = results.Select(r => r.BaselineTxPerSecond).Order().ElementAt(results.Count / 2);
        double verify = results.Select(r => r.Verify.BytesPerSecond).Order().ElementAt(results.Count / 2);
        double withRoots = results.Select(r => r.WithRoots.TransactionsPerSecond).Order().ElementAt(results.Count / 2);
        double verifyRoots = results.Select(r => r.RootsVerify.BytesPerSecond).Order().ElementAt(results.Count / 2);
        long rootsChecked = results.Select(r => r.RootsVerify.RootsChecked).Order().ElementAt(results.Count / 2);
        var line = new Dictionary<string, object>
        {
            ["count"] = count,
            ["durability"] = durability.ToString().ToLowerInvariant(),
            ["rounds"] = rounds,
            ["tx_per_sec"] = Math.Round(median.Ours.TransactionsPerSecond),
            ["baseline_tx_per_sec"] = Math.Round(baseline),
            ["ratio"] = Math.Round(median.Ours.TransactionsPerSecond / baseline, 2),
            ["mb_per_sec"] = Math.Round(median.Ours.JournalBytesPerSecond / 1e6, 1),
            ["accepted"] = median.Ours.Accepted,
            ["rejected"] = median.Ours.Rejected,
            ["blocks"] = median.Ours.Blocks,
            ["verify_bytes_per_sec"] = Math.Round(verify),
            ["with_roots_tx_per_sec"] = Math.Round(withRoots),
            ["with_roots_ratio"] = Math.Round(withRoots / median.Ours.TransactionsPerSecond, 2),
            ["roots_ms"] = rootsMs,
            ["roots_checked"] = rootsChecked,
            ["verify_with_roots_bytes_per_sec"] = Math.Round(verifyRoots),
            ["dir"] = Path.GetFullPath(dir),
        };
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(line));
        }
        else
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"""

                validate → seal → journal ({line["durability"]} durability), {count:N0} tx per round, median of {rounds}:
                  ours        {median.Ours.TransactionsPerSecond / 1e6,8:F2} M tx/s   {median.Ours.JournalBytesPerSecond / 1e6,8:F1} MB/s journal   {median.Ours.Blocks:N0} blocks
                  baseline    {baseline / 1e6,8:F2} M tx/s   (raw FasterLog.Enqueue, one entry per tx)
                  ratio       {(double)line["ratio"],8:F2}x
                  verify      {verify / 1e9,8:F2} GB/s
                  with roots  {withRoots / 1e6,8:F2} M tx/s   ({(double)line["with_roots_ratio"]:F2}x ours; records-root builder every {rootsMs} ms, a median {rootsChecked:N0} roots)
                  verify      {verifyRoots / 1e9,8:F2} GB/s   (recomputing the roots)
                """));
        }
        return 0;
    }

    private sealed record RoundResult(LedgerRunResult Ours, double BaselineTxPerSecond, VerifyReport Verify, LedgerRunResult WithRoots, VerifyReport RootsVerify);

    private static RoundResult Round(string root, string name, long count, Durability durability, TimeSpan rootsEvery, bool rootsFirst)
    {
        string ledgerDir = Path.Combine(root, name, "ledger");
        string rootsDir = Path.Combine(root, name, "roots");
        string baselineDir = Path.Combine(root, name, "baseline");
        try
        {
            LedgerRunResult ours = default!, withRoots = default!;
            VerifyReport verify = default!, rootsVerify = default!;
            void Ours()
            {
                using (Journal journal = Journal.Open(new JournalSettings { Directory = ledgerDir, Durability = durability }))
                {
                    ours = SyntheticLedgerRun.Run(journal, count, new RingSettings { Size = 1 << 16 });
                }
                using JournalReader reader = JournalReader.Open(ledgerDir);
                verify = reader.Verify();
                if (!verify.Intact)
                {
                    throw new InvalidOperationException($"the benchmark's own journal does not verify: {verify.Fault}");
                }
            }
            void WithRoots()
            {
                using (Journal journal = Journal.Open(new JournalSettings { Directory = rootsDir, Durability = durability }))
                {
                    withRoots = SyntheticLedgerRun.Run(journal, count, new RingSettings { Size = 1 << 16 }, rootsEvery: rootsEvery);
                }
                using JournalReader reader = JournalReader.Open(rootsDir);
                rootsVerify = reader.Verify();
                if (!rootsVerify.Intact || (rootsVerify.RootsChecked == 0 && name != "warmup")) // a short warm-up may end before the builder ran
                {
                    throw new InvalidOperationException($"the benchmark's journal with roots does not verify, or holds none: {rootsVerify.Fault}");
                }
            }
            Settle();
            (rootsFirst ? (Action)WithRoots : Ours)();
            Settle();
            double baseline = RawFasterLog(baselineDir, count);
            Settle();
            (rootsFirst ? (Action)Ours : WithRoots)();
            return new RoundResult(ours, baseline, verify, withRoots, rootsVerify);
        }
        finally
        {
            Directory.Delete(Path.Combine(root, name), recursive: true);
        }
    }

    /// <summary>
    /// Writes the page cache's dirty pages out (sync(1)) before a timed run: a run of 20 M transactions
    /// leaves ~400 MB of them, and the kernel writing them back during the next run cost it up to a third.
    /// </summary>
    private static void Settle()
    {
        try
        {
            using var sync = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("sync") { UseShellExecute = false });
            sync?.WaitForExit(60_000);
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // No sync(1) here: the runs alternate order anyway.
        }
    }

    /// <summary>The same frames, one FasterLog entry each, committed by a committer loop like ours; timed to the final commit.</summary>
    private static double RawFasterLog(string directory, long count)
    {
        var flow = new SyntheticOrderFlow(42, InstrumentTable.Development());
        (byte[] frames, int[] lengths) = flow.Encode((int)Math.Min(count, SyntheticLedgerRun.FramePool));
        Directory.CreateDirectory(directory);
        using IDevice device = Devices.CreateLogDevice(Path.Combine(directory, "log"), preallocateFile: false, deleteOnClose: false);
        using var log = new FasterLog(new FasterLogSettings
        {
            LogDevice = device,
            LogCommitDir = Path.Combine(directory, "commits"),
            PageSizeBits = 22,
            MemorySizeBits = 26,
            SegmentSizeBits = 30,
            TryRecoverLatest = false,
        });
        bool done = false;
        var committer = new Thread(() =>
        {
            while (!Volatile.Read(ref done))
            {
                if (log.TailAddress > log.CommittedUntilAddress)
                {
                    log.CommitAsync().AsTask().GetAwaiter().GetResult();
                }
                else
                {
                    Thread.Sleep(1);
                }
            }
        }) { IsBackground = true, Name = "baseline-committer" };
        var clock = Stopwatch.StartNew();
        committer.Start();
        int pooled = lengths.Length;
        for (long i = 0; i < count; i++)
        {
            int k = (int)(i % pooled);
            log.Enqueue(frames.AsSpan(k * TransactionCodec.MaxFrameBytes, lengths[k]));
        }
        Volatile.Write(ref done, true);
        committer.Join();
        log.CommitAsync().AsTask().GetAwaiter().GetResult();
        clock.Stop();
        return count / clock.Elapsed.TotalSeconds;
    }
}
