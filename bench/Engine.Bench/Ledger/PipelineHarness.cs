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
        pipeline --dir DIR [--count N] [--durability memory|disk] [--rounds N] [--json]
          Synthetic orders through validate → seal → journal into DIR, vs raw FasterLog enqueue, one run.
          --dir         where the journals are written (each round in its own subdirectory; removed after)
          --count       transactions per round (default 5000000)
          --durability  memory (default) or disk
          --rounds      measured rounds after one warm-up (default 3)
          --json        one JSON object instead of the table
        """;

    public static int Run(string[] args)
    {
        string? dir = null;
        long count = 5_000_000;
        var durability = Durability.Memory;
        int rounds = 3;
        bool json = false;
        for (int i = 0; i < args.Length; i++)
        {
            string? Value() => i + 1 < args.Length ? args[++i] : null;
            switch (args[i])
            {
                case "--dir": dir = Value(); break;
                case "--count" when long.TryParse(Value(), out long c) && c >= 1000: count = c; break;
                case "--durability" when Enum.TryParse(Value(), ignoreCase: true, out Durability d): durability = d; break;
                case "--rounds" when int.TryParse(Value(), out int r) && r > 0: rounds = r; break;
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

        Round(dir, "warmup", Math.Min(count, 500_000), durability);
        var results = new List<RoundResult>();
        for (int r = 0; r < rounds; r++)
        {
            results.Add(Round(dir, $"round-{r}", count, durability));
            RoundResult last = results[^1];
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  round {r + 1}/{rounds}: ours {last.Ours.TransactionsPerSecond / 1e6:F2} M tx/s, baseline {last.BaselineTxPerSecond / 1e6:F2} M tx/s, verify {last.Verify.BytesPerSecond / 1e9:F2} GB/s"));
        }

        RoundResult median = results.OrderBy(r => r.Ours.TransactionsPerSecond).ElementAt(results.Count / 2);
        double baseline = results.Select(r => r.BaselineTxPerSecond).Order().ElementAt(results.Count / 2);
        double verify = results.Select(r => r.Verify.BytesPerSecond).Order().ElementAt(results.Count / 2);
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
                """));
        }
        return 0;
    }

    private sealed record RoundResult(LedgerRunResult Ours, double BaselineTxPerSecond, VerifyReport Verify);

    private static RoundResult Round(string root, string name, long count, Durability durability)
    {
        string ledgerDir = Path.Combine(root, name, "ledger");
        string baselineDir = Path.Combine(root, name, "baseline");
        try
        {
            LedgerRunResult ours;
            using (Journal journal = Journal.Open(new JournalSettings { Directory = ledgerDir, Durability = durability }))
            {
                ours = SyntheticLedgerRun.Run(journal, count, new RingSettings { Size = 1 << 16 });
            }
            VerifyReport verify;
            using (JournalReader reader = JournalReader.Open(ledgerDir))
            {
                verify = reader.Verify();
                if (!verify.Intact)
                {
                    throw new InvalidOperationException($"the benchmark's own journal does not verify: {verify.Fault}");
                }
            }
            double baseline = RawFasterLog(baselineDir, count);
            return new RoundResult(ours, baseline, verify);
        }
        finally
        {
            Directory.Delete(Path.Combine(root, name), recursive: true);
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
