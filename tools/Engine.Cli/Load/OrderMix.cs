using Engine.Core.Ledger;
using Engine.Protocol;

namespace Engine.Cli.Load;

/// <summary>
/// A realistic order mix for one connection, seeded: limit orders around a moving mid that rest
/// and cross (GTC and IOC), cancels and replaces of its own live orders, over every instrument.
/// </summary>
internal sealed class OrderMix
{
    private readonly Random _random;
    private readonly IReadOnlyList<Instrument> _instruments;
    private readonly uint _account;
    private readonly List<(ulong Id, uint Instrument)> _live = [];
    private readonly long[] _mid;
    private ulong _nextOrderId;

    public OrderMix(int seed, IReadOnlyList<Instrument> instruments, uint account, ulong firstOrderId)
    {
        _random = new Random(seed);
        _instruments = instruments;
        _account = account;
        _nextOrderId = firstOrderId;
        _mid = [.. instruments.Select(_ => 1000L)];
    }

    public Transaction Next()
    {
        int roll = _random.Next(100);
        if (roll < 15 && _live.Count > 0)
        {
            int k = _random.Next(_live.Count);
            var (id, instrument) = _live[k];
            _live.RemoveAt(k);
            return Transaction.Cancel(0, 0, _account, instrument, _nextOrderId++, id);
        }
        int which = _random.Next(_instruments.Count);
        Instrument inst = _instruments[which];
        _mid[which] = Math.Clamp(_mid[which] + _random.Next(-1, 2), 900, 1100);
        long price = (_mid[which] + _random.Next(-10, 11)) * inst.TickSize;
        long quantity = _random.Next(1, 50) * 10;
        if (roll < 30 && _live.Count > 0)
        {
            int k = _random.Next(_live.Count);
            var (id, instrument) = _live[k];
            Instrument target = _instruments.First(i => i.Id == instrument);
            ulong newId = _nextOrderId++;
            _live[k] = (newId, instrument);
            long targetPrice = (_mid[_instruments.ToList().IndexOf(target)] + _random.Next(-10, 11)) * target.TickSize;
            return Transaction.Replace(0, 0, _account, instrument, newId, id, targetPrice, quantity);
        }
        var side = _random.Next(2) == 0 ? Side.Buy : Side.Sell;
        var tif = roll < 40 ? TimeInForce.Ioc : TimeInForce.Gtc;
        ulong orderId = _nextOrderId++;
        if (tif == TimeInForce.Gtc)
        {
            _live.Add((orderId, inst.Id));
            if (_live.Count > 2000)
            {
                _live.RemoveAt(0); // forget the oldest: it has most likely traded by now
            }
        }
        return Transaction.NewOrder(0, 0, _account, inst.Id, orderId, side, OrderType.Limit, tif, price, quantity);
    }
}
