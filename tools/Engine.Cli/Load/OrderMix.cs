using Engine.Core.Ledger;
using Engine.Protocol;

namespace Engine.Cli.Load;

/// <summary>
/// A realistic order mix for one connection, seeded: limit orders within ten ticks of a common mid,
/// so that they rest and cross (GTC and IOC), cancels and replaces of its own live orders (as far as
/// the execution reports have told it), over every instrument.
/// </summary>
internal sealed class OrderMix
{
    private readonly Random _random;
    private readonly IReadOnlyList<Instrument> _instruments;
    private readonly uint _account;
    private readonly List<(ulong Id, int Instrument)> _live = [];
    private readonly System.Collections.Concurrent.ConcurrentQueue<ulong> _finished = new();
    private readonly HashSet<ulong> _finishedSet = [];
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

    /// <summary>An order of ours is off the book (filled or cancelled): from the execution reports, on the client's read loop.</summary>
    public void Finished(ulong orderId) => _finished.Enqueue(orderId);

    public Transaction Next()
    {
        ForgetFinished();
        int roll = _random.Next(100);
        if (roll < 15 && _live.Count > 0)
        {
            int k = _random.Next(_live.Count);
            var (id, instrument) = _live[k];
            _live[k] = _live[^1];
            _live.RemoveAt(_live.Count - 1);
            return Transaction.Cancel(0, 0, _account, _instruments[instrument].Id, _nextOrderId++, id);
        }
        int which = _random.Next(_instruments.Count);
        Instrument inst = _instruments[which];
        long price = (_mid[which] + _random.Next(-10, 11)) * inst.TickSize;
        long quantity = _random.Next(1, 50) * 10;
        if (roll < 30 && _live.Count > 0)
        {
            int k = _random.Next(_live.Count);
            var (id, instrument) = _live[k];
            Instrument target = _instruments[instrument];
            ulong newId = _nextOrderId++;
            _live[k] = (newId, instrument);
            long targetPrice = (_mid[instrument] + _random.Next(-10, 11)) * target.TickSize;
            return Transaction.Replace(0, 0, _account, target.Id, newId, id, targetPrice, quantity);
        }
        var side = _random.Next(2) == 0 ? Side.Buy : Side.Sell;
        var tif = roll < 40 ? TimeInForce.Ioc : TimeInForce.Gtc;
        ulong orderId = _nextOrderId++;
        if (tif == TimeInForce.Gtc)
        {
            _live.Add((orderId, which));
            if (_live.Count > 2000)
            {
                _live.RemoveAt(0); // the book holds at most this many of ours: forget the oldest
            }
        }
        return Transaction.NewOrder(0, 0, _account, inst.Id, orderId, side, OrderType.Limit, tif, price, quantity);
    }

    private void ForgetFinished()
    {
        if (_finished.IsEmpty)
        {
            return;
        }
        while (_finished.TryDequeue(out ulong id))
        {
            _finishedSet.Add(id);
        }
        if (_finishedSet.Count > 32)
        {
            _live.RemoveAll(o => _finishedSet.Contains(o.Id));
            _finishedSet.Clear();
        }
    }
}
