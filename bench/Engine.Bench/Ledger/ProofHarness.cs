using System.Diagnostics;
using System.Globalization;
using Engine.Bench.Processes;
using Engine.Client;
using Engine.Protocol;
using Engine.Security;
using HdrHistogram;

namespace Engine.Bench.Ledger;

/// <summary>
/// Proofs as a client gets them from a running node (<c>EngineClient.GetProofAsync</c>): how long
/// after its receipt an order becomes provable (its records root in a later block, that block under a
/// signed head), how long one fetch of a provable order's proof takes, and how long checking it with
/// <c>ReceiptProof.Verify</c> takes; then the same node's order latency (<c>engine load</c>) with and
/// without a client fetching proofs back to back beside it, A B A B.
/// </summary>
internal static class ProofHarness
{
    public const string Usage = """
        proofs [--orders N] [--head-ms MS] [--rate R] [--seconds S]
          A single node (heads every MS ms, default 100): N orders (default 200) one at a time, each one's time from receipt to provable,
          its proof's fetch and verify time; then engine load at R orders/s (default 10000) for S s (default 5), with and without a client
          fetching proofs beside it, A B A B: p50/p99 of the orders.
        """;

    public static int Run(string[] args)
    {
        int orders = 200, headMs = 100, rate = 10_000, seconds = 5;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--orders" when i + 1 < args.Length:
                    orders = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--head-ms" when i + 1 < args.Length:
                    headMs = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--rate" when i + 1 < args.Length:
                    rate = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--seconds" when i + 1 < args.Length:
                    seconds = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                default:
                    Console.Error.WriteLine($"proofs: bad or unknown option '{args[i]}'\n{Usage}");
                    return 2;
            }
        }
        string root = Directory.CreateTempSubdirectory("engine-proofs-").FullName;
        try
        {
            var environment = new Dictionary<string, string> { ["ENGINE_SIGNEDHEADINTERVALMS"] = headMs.ToString(CultureInfo.InvariantCulture) };
            int port = EngineProcess.FreePort();
            string admin = $"127.0.0.1:{EngineProcess.FreePort()}";
            using EngineProcess node = EngineProcess.Start(environment, "serve", "--data", Path.Combine(root, "node"), "--listen", $"127.0.0.1:{port}", "--admin", admin);
            node.WaitForStatus(admin, s => s["role"] is not null, "the node serving", TimeSpan.FromMinutes(2));
            string target = $"127.0.0.1:{port}";
            MeasureProofs(target, orders).GetAwaiter().GetResult();
            for (int round = 0; round < 2; round++)
            {
                foreach (bool proving in new[] { false, true })
                {
                    using var stop = new CancellationTokenSource();
                    Task<long> prover = proving ? ProveContinuallyAsync(target, stop.Token) : Task.FromResult(0L);
                    string result = Load(target, rate, seconds);
                    stop.Cancel();
                    long proofs = prover.GetAwaiter().GetResult();
                    Console.WriteLine($"load {rate:N0}/s {(proving ? $"with a client fetching proofs ({proofs / seconds:N0}/s)" : "alone")}: {result}");
                }
            }
            return 0;
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private static Task<EngineClient> Connect(string target, uint client) =>
        EngineClient.ConnectAsync(new ClientOptions { Endpoints = [target], ClientId = client, Token = $"dev-token-{client}" });

    private static async Task MeasureProofs(string target, int orders)
    {
        await using EngineClient client = await Connect(target, 9);
        using LedgerKey key = LedgerKey.Development();
        byte[] publicKey = key.PublicKey.ToArray();
        var provable = new LongHistogram(1, 60_000_000, 3);
        var fetch = new LongHistogram(1, 60_000_000, 3);
        var verify = new LongHistogram(1, 60_000_000, 3);
        for (int i = 0; i < orders; i++)
        {
            SubmitResult placed = await client.SubmitAsync(Transaction.NewOrder(0, 0, 1, 1, (ulong)(i + 1), Side.Buy, OrderType.Limit, TimeInForce.Gtc, 900, 1));
            if (!placed.Accepted)
            {
                throw new InvalidOperationException($"order {i} refused: {placed}");
            }
            Receipt receipt = placed.Receipt;
            long since = Stopwatch.GetTimestamp();
            InclusionProof proof;
            while (true)
            {
                try
                {
                    proof = await client.GetProofAsync(receipt);
                    break;
                }
                catch (ProofRefusedException e) when (e.Reason == RejectReason.ProofUnavailable)
                {
                    await Task.Delay(2); // not provable yet: its root or head is still to come
                }
            }
            provable.RecordValue(Math.Max(1, (long)Stopwatch.GetElapsedTime(since).TotalMicroseconds));
            long fetched = Stopwatch.GetTimestamp();
            proof = await client.GetProofAsync(receipt);
            fetch.RecordValue(Math.Max(1, (long)Stopwatch.GetElapsedTime(fetched).TotalMicroseconds));
            long checking = Stopwatch.GetTimestamp();
            string? invalid = ReceiptProof.Verify(proof, in receipt, publicKey);
            verify.RecordValue(Math.Max(1, (long)Stopwatch.GetElapsedTime(checking).TotalMicroseconds));
            if (invalid is not null)
            {
                throw new InvalidOperationException($"order {i}'s proof does not verify: {invalid}");
            }
        }
        Console.WriteLine($"{orders} orders, one at a time: receipt to provable {Summary(provable)}; fetch of a provable order's proof {Summary(fetch)}; ReceiptProof.Verify {Summary(verify)}");
    }

    private static string Summary(LongHistogram h) =>
        string.Create(CultureInfo.InvariantCulture, $"p50 {h.GetValueAtPercentile(50):N0} µs, p99 {h.GetValueAtPercentile(99):N0} µs, max {h.GetMaxValue():N0} µs");

    /// <summary>A client that places one order, then fetches its proof back to back until stopped; the proofs fetched.</summary>
    private static async Task<long> ProveContinuallyAsync(string target, CancellationToken stop)
    {
        await using EngineClient client = await Connect(target, 10);
        SubmitResult placed = await client.SubmitAsync(Transaction.NewOrder(0, 0, 1, 1, (ulong)Environment.TickCount64, Side.Sell, OrderType.Limit, TimeInForce.Gtc, 2_000, 1), CancellationToken.None);
        long proofs = 0;
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await client.GetProofAsync(placed.Receipt, stop);
                proofs++;
            }
            catch (ProofRefusedException)
            {
                await Task.Delay(2, CancellationToken.None);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
        return proofs;
    }

    private static string Load(string target, int rate, int seconds)
    {
        using EngineProcess load = EngineProcess.Start(new Dictionary<string, string>(), "load", "--target", target, "--rate", rate.ToString(CultureInfo.InvariantCulture),
            "--duration", seconds.ToString(CultureInfo.InvariantCulture), "--client", "1");
        if (!load.WaitForExit(TimeSpan.FromSeconds(seconds + 60)))
        {
            throw new InvalidOperationException("the load did not finish");
        }
        return string.Join("; ", load.Output.Split('\n').Where(l => l.Contains("latency", StringComparison.Ordinal) || l.Contains("throughput", StringComparison.Ordinal)).Select(l => l.Trim()));
    }
}
