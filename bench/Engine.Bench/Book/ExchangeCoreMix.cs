using Engine.Core.Book;
using Engine.Core.Ledger;
using Engine.Protocol;

namespace Engine.Bench.Book;

/// <summary>
/// The command mix exchange-core publishes its order book numbers with, rebuilt here, seeded: one
/// instrument, about 1,000 resting orders over about 750 price levels, 1,000 accounts; commands
/// 9 % GTC limit, 3 % IOC, 6 % cancel, 82 % move (a replace to a new price); about 6 % of
/// commands trade. Generated up front so that the timed loop only applies.
/// </summary>
public static class ExchangeCoreMix
{
    public const int Accounts = 1000;
    public const int TargetResting = 1000;
    public const int PriceLevels = 750;
    public const long Mid = 100_000;

    public static ReferenceData Reference()
    {
        var limits = new AccountLimits(1_000_000_000, long.MaxValue, 1_000_000);
        var accounts = Enumerable.Range(1, Accounts).ToDictionary(a => (uint)a, _ => limits);
        var clients = Enumerable.Range(1, Accounts).Select(a => new ClientEntitlement((uint)a, $"t{a}", [(uint)a]));
        return new ReferenceData(new InstrumentTable([new Instrument(1, "XCORE", 1)]), accounts, clients, "exchange-core mix");
    }

    /// <summary>
    /// The commands, after a warm-up prefix that fills the book to its target depth. A shadow book
    /// applies them as they are made, so cancels and moves always name orders that are live then.
    /// </summary>
    public static (Transaction[] Warmup, Transaction[] Commands) Generate(int count, int seed = 1)
    {
        var random = new Random(seed);
        var shadow = new Exchange(Reference());
        var sink = new NullSink();
        ulong shadowLsn = 0;
        var seqs = new ulong[Accounts + 1];
        var live = new List<(uint Client, ulong Id, Side Side)>();
        ulong nextId = 1;

        Transaction Place(uint client, Side side, long price, long qty, TimeInForce tif) =>
            Transaction.NewOrder(client, ++seqs[client], client, 1, nextId++, side, OrderType.Limit, tif, price, qty);

        // Passive prices: bids below the mid, asks above, spread over the levels.
        long Passive(Side side) => side == Side.Buy ? Mid - 1 - random.Next(PriceLevels / 2) : Mid + 1 + random.Next(PriceLevels / 2);

        var warmup = new List<Transaction>();
        for (int i = 0; i < TargetResting; i++)
        {
            uint client = (uint)random.Next(1, Accounts + 1);
            var side = i % 2 == 0 ? Side.Buy : Side.Sell;
            ulong id = nextId;
            warmup.Add(Place(client, side, Passive(side), random.Next(1, 100), TimeInForce.Gtc));
            live.Add((client, id, side));
        }

        foreach (Transaction tx in warmup)
        {
            shadow.Apply(in tx, ++shadowLsn, 1, default, ref sink);
        }
        var commands = new Transaction[count];
        for (int i = 0; i < count; i++)
        {
            if (i > 0)
            {
                shadow.Apply(in commands[i - 1], ++shadowLsn, 1, default, ref sink);
            }
            // Forget orders that traded away; checking a few at random keeps the list honest cheaply.
            for (int probe = 0; probe < 4 && live.Count > 0; probe++)
            {
                int k = random.Next(live.Count);
                if (!shadow.TryGetOrder(live[k].Client, live[k].Id, out _, out _, out _))
                {
                    live[k] = live[^1];
                    live.RemoveAt(live.Count - 1);
                }
            }
            int roll = random.Next(100);
            uint client = (uint)random.Next(1, Accounts + 1);
            // Keep the book near its target depth, as exchange-core's generator does: a GTC when the
            // book is thin, a cancel in its place when it is thick.
            if (roll < 9 && shadow.OpenOrders > TargetResting * 11 / 10)
            {
                roll = 12;
            }
            if (roll < 9 || shadow.OpenOrders < TargetResting * 9 / 10)
            {
                // GTC limit: mostly passive; one in ten crosses and trades.
                var side = random.Next(2) == 0 ? Side.Buy : Side.Sell;
                bool aggressive = random.Next(10) == 0;
                long price = aggressive ? (side == Side.Buy ? Mid + 5 : Mid - 5) : Passive(side);
                ulong id = nextId;
                commands[i] = Place(client, side, price, random.Next(1, 100), TimeInForce.Gtc);
                live.Add((client, id, side)); // an aggressive one may rest a remainder too

            }
            else if (roll < 12)
            {
                // IOC: crosses, trades against the best levels.
                var side = random.Next(2) == 0 ? Side.Buy : Side.Sell;
                commands[i] = Place(client, side, side == Side.Buy ? Mid + PriceLevels : Mid - PriceLevels, random.Next(1, 50), TimeInForce.Ioc);
            }
            else if (roll < 18 && live.Count > 0)
            {
                int k = random.Next(live.Count);
                var (c, id, _) = live[k];
                live[k] = live[^1];
                live.RemoveAt(live.Count - 1);
                commands[i] = Transaction.Cancel(c, ++seqs[c], c, 1, nextId++, id);
            }
            else if (live.Count > 0)
            {
                // Move: replace to a new passive price (about 2 % land across the spread and trade).
                int k = random.Next(live.Count);
                var (c, id, side) = live[k];
                bool crossing = random.Next(50) == 0;
                long price = crossing ? (side == Side.Buy ? Mid + 1 + random.Next(5) : Mid - 1 - random.Next(5)) : Passive(side);
                ulong newId = nextId++;
                live[k] = (c, newId, side);
                // The new total must exceed what already filled, or the replace is refused and the order orphaned.
                shadow.TryGetOrder(c, id, out _, out long filled, out _);
                commands[i] = Transaction.Replace(c, ++seqs[c], c, 1, newId, id, price, filled + random.Next(1, 100));
            }
            else
            {
                i--;
            }
        }
        return ([.. warmup], commands);
    }
}
