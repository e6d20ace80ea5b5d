using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Engine.Core.Book;
using Engine.Core.Ledger;
using Engine.Protocol;

namespace Engine.Bench.Book;

/// <summary>
/// <c>snapshot</c>: how long writing and loading a snapshot of the whole state takes with N resting
/// orders, next to the state checksum's walk of the same state in the same run (the baseline: both
/// visit every order once).
/// </summary>
public static class SnapshotHarness
{
    public const string Usage = """
        snapshot [--orders N] [--rounds N] [--json]
          Writes and loads a snapshot of a book with N resting GTC orders (default 1000000) over 4 clients
          and 10,000 levels a side; the state checksum's walk is the baseline.
          --orders  resting orders (default 1000000)
          --rounds  measured rounds (default 5); the median is reported
          --json    one JSON object instead of the table
        """;

    public static int Run(string[] args)
    {
        int orders = 1_000_000;
        int rounds = 5;
        bool json = false;
        for (int i = 0; i < args.Length; i++)
        {
            string? Value() => i + 1 < args.Length ? args[++i] : null;
            switch (args[i])
            {
                case "--orders" when int.TryParse(Value(), out int o) && o > 0: orders = o; break;
                case "--rounds" when int.TryParse(Value(), out int r) && r > 0: rounds = r; break;
                case "--json": json = true; break;
                default:
                    Console.Error.WriteLine($"snapshot: bad or unknown option '{args[i]}'\n{Usage}");
                    return 2;
            }
        }
        var reference = new ReferenceData(
            new InstrumentTable([new Instrument(1, "ACME", 1)]),
            new Dictionary<uint, AccountLimits> { [1] = new(1_000_000, long.MaxValue, int.MaxValue) },
            [.. Enumerable.Range(1, 4).Select(c => new ClientEntitlement((uint)c, "bench", [1]))],
            "bench");
        Exchange exchange = Build(reference, orders);
        var buffer = new ArrayBufferWriter<byte>();
        var write = new List<double>();
        var load = new List<double>();
        var checksum = new List<double>();
        for (int r = 0; r <= rounds; r++) // round 0 warms up
        {
            buffer.ResetWrittenCount();
            var clock = Stopwatch.StartNew();
            exchange.ComputeChecksum();
            double checksumMs = clock.Elapsed.TotalMilliseconds;
            clock.Restart();
            exchange.WriteSnapshot(buffer, 1, default);
            double writeMs = clock.Elapsed.TotalMilliseconds;
            clock.Restart();
            Exchange.ReadSnapshot(buffer.WrittenSpan, out _);
            double loadMs = clock.Elapsed.TotalMilliseconds;
            if (r > 0)
            {
                (checksum, write, load) = ([.. checksum, checksumMs], [.. write, writeMs], [.. load, loadMs]);
                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  round {r}/{rounds}: checksum {checksumMs:F1} ms, write {writeMs:F1} ms, load {loadMs:F1} ms"));
            }
        }
        static double Median(List<double> values) => Math.Round(values.Order().ElementAt(values.Count / 2), 1);
        var line = new Dictionary<string, object>
        {
            ["resting_orders"] = exchange.OpenOrders,
            ["snapshot_bytes"] = buffer.WrittenCount,
            ["checksum_ms"] = Median(checksum),
            ["write_ms"] = Median(write),
            ["load_ms"] = Median(load),
            ["write_to_checksum"] = Math.Round(Median(write) / Median(checksum), 2),
        };
        Console.WriteLine(json
            ? JsonSerializer.Serialize(line)
            : string.Join(Environment.NewLine, line.Select(kv => string.Create(CultureInfo.InvariantCulture, $"{kv.Key,-20} {kv.Value}"))));
        return 0;
    }

    /// <summary>N resting GTC orders, bids below and asks above, 10,000 levels a side, none crossing.</summary>
    private static Exchange Build(ReferenceData reference, int orders)
    {
        var exchange = new Exchange(reference);
        var sink = new NullSink();
        var seqs = new ulong[5];
        for (int i = 0; i < orders; i++)
        {
            uint client = 1 + (uint)(i % 4);
            bool buy = i % 2 == 0;
            long price = buy ? 1_000_000 - (i / 2 % 10_000) : 2_000_000 + (i / 2 % 10_000);
            ulong seq = ++seqs[client];
            Transaction tx = Transaction.NewOrder(client, seq, 1, 1, seq, buy ? Side.Buy : Side.Sell, OrderType.Limit, TimeInForce.Gtc, price, 1 + (i % 100));
            exchange.Apply(in tx, (ulong)i + 1, 1, default, ref sink);
        }
        return exchange;
    }
}
