using Engine.Protocol;

namespace Engine.Core.Ledger;

/// <summary>A sealed block as the later stages need it: where it is in the journal and its hash.</summary>
public struct SealedBlock
{
    public ulong BlockNo;
    public long Address;
    public Hash32 Hash;

    /// <summary>When it was sealed (Unix ns, its header's timestamp).</summary>
    public long TimestampNs;
}

/// <summary>
/// The recently sealed blocks, by block number, in a ring. The sealer writes an entry before it
/// advances its sequence; later stages read it after they see that sequence, so the ring's
/// release/acquire ordering publishes the entry.
/// </summary>
/// <remarks>
/// At most one block per ring slot can be in flight between the sealer and the slowest stage, so a
/// capacity larger than the ring is never lapped while an entry is still needed.
/// </remarks>
public sealed class BlockTable
{
    private readonly SealedBlock[] _blocks;
    private readonly ulong _mask;

    public BlockTable(int ringSize)
    {
        int capacity = checked(ringSize * 2);
        _blocks = new SealedBlock[capacity];
        _mask = (ulong)capacity - 1;
    }

    /// <summary>Writes every entry once, so that its pages are faulted in now (a table made ahead of time).</summary>
    internal void Touch()
    {
        for (int i = 0; i < _blocks.Length; i++)
        {
            _blocks[i].BlockNo = 0;
        }
    }

    public void Record(ulong blockNo, long address, in Hash32 hash, long timestampNs)
    {
        ref SealedBlock entry = ref _blocks[blockNo & _mask];
        entry.BlockNo = blockNo;
        entry.Address = address;
        entry.Hash = hash;
        entry.TimestampNs = timestampNs;
    }

    public ref readonly SealedBlock this[ulong blockNo]
    {
        get
        {
            ref readonly SealedBlock entry = ref _blocks[blockNo & _mask];
            if (entry.BlockNo != blockNo)
            {
                throw new InvalidOperationException($"block {blockNo} is no longer (or not yet) in the table, which holds {entry.BlockNo} in its place");
            }
            return ref entry;
        }
    }
}
