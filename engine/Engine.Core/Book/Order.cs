using Engine.Protocol;

namespace Engine.Core.Book;

/// <summary>A resting order, in a pooled array slot; linked into its price level by index.</summary>
internal struct Order
{
    public ulong ClientOrderId;
    public ulong ClientSeq;
    public long Price;
    public long Leaves;
    public long Cum;
    public uint ClientId;
    public uint Account;
    public uint Instrument;
    public Side Side;

    /// <summary>Index of its level in its side's pool.</summary>
    public int Level;

    /// <summary>Neighbours in time order within the level; -1 at the ends. Next also links the free list.</summary>
    public int Prev;
    public int Next;
}

/// <summary>A price level: orders at one price, oldest first.</summary>
internal struct Level
{
    public long Price;
    public int Head;
    public int Tail;
    public long Quantity;
    public int Count;
}

/// <summary>Identity of an order: clientOrderId is unique per client among live orders.</summary>
internal readonly record struct OrderKey(uint ClientId, ulong ClientOrderId);

/// <summary>Pooled order slots with a free list: no allocation per order once warmed up (it grows by doubling).</summary>
internal sealed class OrderStore
{
    private Order[] _orders = new Order[1024];
    private int _free = -1;
    private int _used;

    public int Live { get; private set; }

    public ref Order this[int index] => ref _orders[index];

    /// <summary>Makes room for <paramref name="orders"/> slots in all (a snapshot being loaded), so that the array does not double its way there.</summary>
    public void EnsureCapacity(int orders)
    {
        if (orders > _orders.Length)
        {
            Array.Resize(ref _orders, orders);
        }
    }

    public int Allocate()
    {
        int index;
        if (_free >= 0)
        {
            index = _free;
            _free = _orders[index].Next;
        }
        else
        {
            if (_used == _orders.Length)
            {
                Array.Resize(ref _orders, _orders.Length * 2);
            }
            index = _used++;
        }
        Live++;
        return index;
    }

    public void Free(int index)
    {
        _orders[index] = default;
        _orders[index].Next = _free;
        _free = index;
        Live--;
    }
}
