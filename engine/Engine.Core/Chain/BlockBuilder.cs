using System.Security.Cryptography;
using Engine.Protocol;

namespace Engine.Core.Chain;

/// <summary>
/// Packs accepted transactions into the next block of the chain and seals it: header (with the
/// records root of earlier blocks, when one is ready), SHA-256 over header and body in one call,
/// hash after the body. Single-threaded (the sealer stage owns it);
/// one preallocated buffer, no allocation per transaction or per block. Every block carries the
/// cluster id of the head it continues (<see cref="ChainHead.ClusterId"/>): a builder cannot seal
/// a block of another cluster onto a chain.
/// </summary>
public sealed class BlockBuilder
{
    private readonly byte[] _buffer;
    private ChainHead _head;
    private int _count;
    private int _bodyOffset = BlockFormat.HeaderBytes;
    private RecordsRoot _root;
    private BlockSections _sections;
    private bool _rootOnly; // the open block holds no transaction, only a records root (TryOpenForRoot)

    /// <summary>Continues the chain after <paramref name="head"/>.</summary>
    public BlockBuilder(ChainHead head, int maxTransactionsPerBlock)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTransactionsPerBlock, 1);
        MaxTransactions = maxTransactionsPerBlock;
        _buffer = new byte[BlockFormat.MaxEntryBytes(maxTransactionsPerBlock)];
        _head = head;
        Epoch = head.Epoch;
    }

    public int MaxTransactions { get; }

    /// <summary>
    /// Where finished records roots come from (<see cref="Ledger.RecordsRootBuilder"/>, on its own thread):
    /// a block takes the one ready when its first transaction is added, in its records-root section.
    /// Null: the blocks carry no roots (a backup's builder never seals; tests of other things).
    /// </summary>
    public IRecordsRootSource? RootSource { get; set; }

    /// <summary>The epoch written into the blocks sealed from now on (raised at a takeover).</summary>
    public ulong Epoch { get; set; }

    /// <summary>Transactions in the block being built.</summary>
    public int Count => _count;

    public bool IsFull => _count == MaxTransactions;

    /// <summary>The number the block being built will have.</summary>
    public ulong NextBlockNo => _head.BlockNo + 1;

    /// <summary>The end of the chain as sealed so far.</summary>
    public ChainHead Head => _head;

    /// <summary>Appends a transaction to the open block; returns its LSN. The block must not be full.</summary>
    public ulong Add(in Transaction tx)
    {
        if (_count == MaxTransactions)
        {
            throw new InvalidOperationException("the block is full: seal it first");
        }
        if (_count == 0 && !_rootOnly)
        {
            // The block's shape is fixed when it opens: its records go after the sections it carries.
            _sections = RootSource is { } source && source.TryTake(out _root) ? BlockSections.RecordsRoot : BlockSections.None;
            _bodyOffset = BlockFormat.HeaderBytesWith(_sections);
        }
        ulong lsn = _head.LastLsn + 1 + (ulong)_count;
        LedgerRecord.Write(in tx, lsn, _buffer.AsSpan(_bodyOffset + _count * LedgerRecord.Bytes));
        _count++;
        return lsn;
    }

    /// <summary>
    /// Opens a block with no transaction for the records root that is ready, if one is and no block
    /// is open: on an idle ledger the last transactions' root would otherwise wait for the next
    /// transaction, and their proofs with it. False (nothing opened) when no root is ready.
    /// </summary>
    public bool TryOpenForRoot()
    {
        if (_count != 0 || _rootOnly || RootSource is not { } source || !source.TryTake(out _root))
        {
            return false;
        }
        _sections = BlockSections.RecordsRoot;
        _bodyOffset = BlockFormat.HeaderBytesWith(_sections);
        _rootOnly = true;
        return true;
    }

    /// <summary>
    /// Seals the open block (at least one transaction, or a root: <see cref="TryOpenForRoot"/>) and
    /// moves the head to it. The returned entry is valid until the next <see cref="Add"/>.
    /// </summary>
    public ReadOnlySpan<byte> Seal(long timestampNs, out ChainHead sealedHead)
    {
        if (_count == 0 && !_rootOnly)
        {
            throw new InvalidOperationException("an empty block is only sealed as the genesis block, or to carry a records root");
        }
        _rootOnly = false;
        if (_sections != BlockSections.None)
        {
            BlockFormat.WriteRecordsRoot(_buffer, in _root);
        }
        int length = SealInto(_buffer, new BlockHeader(Epoch, _head.BlockNo + 1, _head.LastLsn + 1, _count,
            _count * LedgerRecord.Bytes, timestampNs, _head.Hash) { ClusterId = _head.ClusterId, Sections = _sections, HeaderBytes = _bodyOffset }, out Hash32 hash);
        _head = new ChainHead(Epoch, _head.BlockNo + 1, _head.LastLsn + (ulong)_count, hash) { ClusterId = _head.ClusterId };
        _count = 0;
        sealedHead = _head;
        return _buffer.AsSpan(0, length);
    }

    /// <summary>
    /// The genesis block: block 0 of kind genesis, no transactions, previous hash 32 zero bytes,
    /// the cluster's id; written once when a journal is created. Its hash anchors the chain, and
    /// depends on the cluster id: two clusters' chains differ from their first block on.
    /// </summary>
    public static byte[] Genesis(ClusterId clusterId, ulong epoch, long timestampNs, out ChainHead head)
    {
        var entry = new byte[BlockFormat.EntryBytes(0)];
        SealInto(entry, new BlockHeader(epoch, BlockFormat.GenesisBlockNo, 1, 0, 0, timestampNs, Hash32.Zero)
        {
            Kind = BlockKind.Genesis,
            ClusterId = clusterId,
        }, out Hash32 hash);
        head = new ChainHead(epoch, BlockFormat.GenesisBlockNo, 0, hash) { ClusterId = clusterId };
        return entry;
    }

    /// <summary>Writes the header, hashes header and body, stores the hash after them; returns the entry's length.</summary>
    private static int SealInto(Span<byte> buffer, BlockHeader header, out Hash32 hash)
    {
        BlockFormat.WriteHeader(buffer, in header);
        int hashed = header.HeaderBytes + header.BodyBytes;
        hash = default;
        SHA256.HashData(buffer[..hashed], hash);
        ((ReadOnlySpan<byte>)hash).CopyTo(buffer[hashed..]);
        return hashed + BlockFormat.HashBytes;
    }
}
