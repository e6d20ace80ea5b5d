using Engine.Protocol;

namespace Engine.Core.Book;

/// <summary>
/// One side of a book: price levels kept sorted so that the best one is last (bids ascending,
/// asks descending), which makes taking and emptying the best level O(1); finding a level is a
/// binary search, adding or removing one elsewhere a short memmove.
/// </summary>
internal sealed class BookSide
{
    private readonly bool _isBid;
    private Level[] _levels = new Level[256];
    private int _levelFree = -1;
    private int _levelsUsed;
    private int[] _sorted = new int[256];
    private int _count;

    public BookSide(Side side) => _isBid = side == Side.Buy;

    public int LevelCount => _count;

    /// <summary>Index of the best level, or -1 when the side is empty.</summary>
    public int Best => _count > 0 ? _sorted[_count - 1] : -1;

    public ref Level this[int level] => ref _levels[level];

    /// <summary>The level at sorted position <paramref name="position"/> from the best (0 = best).</summary>
    public int LevelFromBest(int position) => _sorted[_count - 1 - position];

    /// <summary>True when a taker at <paramref name="limit"/> on the other side trades with a level at <paramref name="levelPrice"/>.</summary>
    public bool Crosses(long levelPrice, long limit, bool market) =>
        market || (_isBid ? levelPrice >= limit : levelPrice <= limit);

    /// <summary>Appends an order to the tail of its price level, creating the level if needed.</summary>
    public void Append(int orderIndex, OrderStore orders)
    {
        ref Order order = ref orders[orderIndex];
        int level = FindOrAddLevel(order.Price);
        ref Level l = ref _levels[level];
        order.Level = level;
        order.Prev = l.Tail;
        order.Next = -1;
        if (l.Tail >= 0)
        {
            orders[l.Tail].Next = orderIndex;
        }
        else
        {
            l.Head = orderIndex;
        }
        l.Tail = orderIndex;
        l.Quantity += order.Leaves;
        l.Count++;
    }

    /// <summary>Unlinks an order from its level, removing the level if it empties.</summary>
    public void Remove(int orderIndex, OrderStore orders)
    {
        ref Order order = ref orders[orderIndex];
        ref Level l = ref _levels[order.Level];
        if (order.Prev >= 0)
        {
            orders[order.Prev].Next = order.Next;
        }
        else
        {
            l.Head = order.Next;
        }
        if (order.Next >= 0)
        {
            orders[order.Next].Prev = order.Prev;
        }
        else
        {
            l.Tail = order.Prev;
        }
        l.Quantity -= order.Leaves;
        if (--l.Count == 0)
        {
            RemoveLevel(order.Level);
        }
    }

    /// <summary>Takes <paramref name="quantity"/> off the level's total (a fill of its head order).</summary>
    public void Reduce(int level, long quantity) => _levels[level].Quantity -= quantity;

    private int FindOrAddLevel(long price)
    {
        int position = Search(price);
        if (position >= 0)
        {
            return _sorted[position];
        }
        position = ~position;
        int level;
        if (_levelFree >= 0)
        {
            level = _levelFree;
            _levelFree = _levels[level].Head;
        }
        else
        {
            if (_levelsUsed == _levels.Length)
            {
                Array.Resize(ref _levels, _levels.Length * 2);
            }
            level = _levelsUsed++;
        }
        _levels[level] = new Level { Price = price, Head = -1, Tail = -1 };
        if (_count == _sorted.Length)
        {
            Array.Resize(ref _sorted, _sorted.Length * 2);
        }
        Array.Copy(_sorted, position, _sorted, position + 1, _count - position);
        _sorted[position] = level;
        _count++;
        return level;
    }

    private void RemoveLevel(int level)
    {
        int position = _count - 1;
        if (_sorted[position] != level)
        {
            position = Search(_levels[level].Price);
            Array.Copy(_sorted, position + 1, _sorted, position, _count - position - 1);
        }
        _count--;
        _levels[level] = default;
        _levels[level].Head = _levelFree;
        _levelFree = level;
    }

    /// <summary>Binary search by key (price for bids, -price for asks, so the best is the largest key).</summary>
    private int Search(long price)
    {
        long key = _isBid ? price : -price;
        int lo = 0;
        int hi = _count - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            long p = _levels[_sorted[mid]].Price;
            long k = _isBid ? p : -p;
            if (k == key)
            {
                return mid;
            }
            if (k < key)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }
        return ~lo;
    }

    /// <summary>Checks what must hold; throws naming the broken relationship (tests and debug).</summary>
    public void AssertInvariants(OrderStore orders)
    {
        for (int i = 0; i < _count; i++)
        {
            ref Level l = ref _levels[_sorted[i]];
            // Levels are strictly ordered, best last.
            if (i > 0)
            {
                long previous = _levels[_sorted[i - 1]].Price;
                if (_isBid ? previous >= l.Price : previous <= l.Price)
                {
                    throw new InvalidOperationException($"levels out of order at {l.Price}");
                }
            }
            // A level's quantity and count are the sums over its orders, and no level is empty.
            long quantity = 0;
            int count = 0;
            for (int o = l.Head; o >= 0; o = orders[o].Next)
            {
                if (orders[o].Price != l.Price || orders[o].Leaves <= 0)
                {
                    throw new InvalidOperationException($"order at index {o} does not belong on level {l.Price}");
                }
                quantity += orders[o].Leaves;
                count++;
            }
            if (count == 0 || count != l.Count || quantity != l.Quantity)
            {
                throw new InvalidOperationException($"level {l.Price}: {count} orders / {quantity} units, level says {l.Count} / {l.Quantity}");
            }
        }
    }
}
