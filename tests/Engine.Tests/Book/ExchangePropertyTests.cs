using Engine.Core.Book;
using Engine.Core.Ledger;
using Engine.Protocol;

namespace Engine.Tests.Book;

/// <summary>Seeded random order flow: the book never stays crossed, quantities add up, replay is deterministic.</summary>
public class ExchangePropertyTests
{
    /// <summary>A mix over one instrument and three clients, prices in a narrow band so orders cross often.</summary>
    internal static List<Transaction> Flow(int seed, int count)
    {
        var random = new Random(seed);
        var seqs = new ulong[4];
        var live = new List<(uint Client, ulong Id)>();
        ulong nextId = 1;
        var flow = new List<Transaction>(count);
        for (int i = 0; i < count; i++)
        {
            int kind = random.Next(100);
            long price = random.Next(95, 106);
            long qty = random.Next(1, 20);
            if (kind < 30 && live.Count > 0)
            {
                // Cancel or replace one of the orders placed so far (it may be gone: UnknownOrder).
                int k = random.Next(live.Count);
                var (c, id) = live[k];
                ulong newId = nextId++;
                if (kind < 15)
                {
                    flow.Add(Transaction.Cancel(c, ++seqs[c], 2, 1, newId, id));
                }
                else
                {
                    flow.Add(Transaction.Replace(c, ++seqs[c], 2, 1, newId, id, price, qty + random.Next(0, 10)));
                    live[k] = (c, newId);
                }
                continue;
            }
            uint client = (uint)random.Next(1, 4);
            var tif = kind < 40 ? TimeInForce.Ioc : kind < 45 ? TimeInForce.Fok : TimeInForce.Gtc;
            var type = kind < 33 ? OrderType.Market : OrderType.Limit;
            if (type == OrderType.Market && tif == TimeInForce.Gtc)
            {
                tif = TimeInForce.Ioc;
            }
            ulong orderId = nextId++;
            flow.Add(Transaction.NewOrder(client, ++seqs[client], 2, 1, orderId, random.Next(2) == 0 ? Side.Buy : Side.Sell, type, tif, type == OrderType.Market ? 0 : price, qty));
            live.Add((client, orderId));
        }
        return flow;
    }

    internal static ReferenceData Reference() => new(
        new InstrumentTable([new Instrument(1, "ACME", 1) { ReferencePrice = 100 }]),
        new Dictionary<uint, AccountLimits> { [2] = new(1_000_000, 1_000_000_000, 1_000_000) },
        [new ClientEntitlement(1, "a", [2]), new ClientEntitlement(2, "b", [2]), new ClientEntitlement(3, "c", [2])],
        "test");

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    public void Quantities_add_up_and_the_book_never_stays_crossed(int seed)
    {
        var exchange = new Exchange(Reference());
        var outcomes = new Outcomes();
        var sink = new RecordingSink(outcomes);
        // (client, order id) → total quantity, filled so far, finished
        var orders = new Dictionary<(uint, ulong), (long Total, long Filled, bool Done)>();
        ulong lsn = 0;
        foreach (Transaction tx in Flow(seed, 20_000))
        {
            int replies = outcomes.Replies.Count, reports = outcomes.Reports.Count;
            exchange.Apply(in tx, ++lsn, 1, default, ref sink);
            bool accepted = outcomes.Replies[replies].Reason == RejectReason.None;
            if (accepted && tx.Kind == MessageType.NewOrder)
            {
                orders[(tx.ClientId, tx.ClientOrderId)] = (tx.Quantity, 0, false);
            }
            if (accepted && tx.Kind == MessageType.Replace)
            {
                var old = orders[(tx.ClientId, tx.OrigClientOrderId)];
                orders.Remove((tx.ClientId, tx.OrigClientOrderId));
                orders[(tx.ClientId, tx.ClientOrderId)] = (tx.Quantity, old.Filled, false);
            }
            foreach (ExecutionReport report in outcomes.Reports.Skip(reports))
            {
                var key = (report.ClientId, report.ClientOrderId);
                var o = orders[key];
                Assert.That(o.Done, Is.False, $"seed {seed}: a report for finished order {key}");
                if (report.TradeId != 0)
                {
                    o.Filled += report.LastQuantity;
                    Assert.That(report.CumQuantity, Is.EqualTo(o.Filled), $"seed {seed}: cum of {key}");
                }
                if (report.ExecType is ExecType.Fill or ExecType.Cancelled)
                {
                    o.Done = true;
                    // filled + cancelled = submitted: what a cancel takes is exactly what was open.
                    long cancelled = report.ExecType == ExecType.Cancelled ? o.Total - o.Filled : 0;
                    Assert.That(o.Filled + cancelled, Is.EqualTo(o.Total), $"seed {seed}: order {key}");
                    Assert.That(report.LeavesQuantity, Is.Zero);
                }
                orders[key] = o;
            }
            if (lsn % 500 == 0)
            {
                exchange.AssertInvariants();
            }
        }
        exchange.AssertInvariants();
        foreach (var (key, o) in orders.Where(kv => !kv.Value.Done))
        {
            Assert.That(exchange.TryGetOrder(key.Item1, key.Item2, out long leaves, out long cum, out _), Is.True, $"seed {seed}: open order {key} is on the book");
            Assert.That(cum, Is.EqualTo(o.Filled));
            Assert.That(leaves + cum, Is.EqualTo(o.Total), $"seed {seed}: filled + open = submitted for {key}");
        }
        Assert.That(exchange.TradeCount, Is.GreaterThan(1000UL), "the flow trades a lot");
    }

    [Test]
    public void The_same_log_gives_the_same_checksum_and_another_log_another()
    {
        Hash32 Run(List<Transaction> flow)
        {
            var exchange = new Exchange(Reference());
            var sink = new NullSink();
            ulong lsn = 0;
            foreach (Transaction tx in flow)
            {
                exchange.Apply(in tx, ++lsn, lsn / 10, default, ref sink);
            }
            return exchange.ComputeChecksum();
        }
        List<Transaction> flow = Flow(7, 10_000);
        Hash32 first = Run(flow);
        Assert.That(Run(flow), Is.EqualTo(first));
        List<Transaction> altered = [.. flow];
        altered.RemoveAt(5_000);
        Assert.That(Run(altered), Is.Not.EqualTo(first));
    }
}
