using System.Security.Cryptography;
using Engine.Protocol;

namespace Engine.Core.Chain;

/// <summary>The first block that does not verify, where it is and why.</summary>
/// <param name="BlockNo">The block number expected at that position.</param>
/// <param name="Address">The entry's address in the log.</param>
/// <param name="Reason">What is wrong with it.</param>
public sealed record BlockFault(ulong BlockNo, long Address, string Reason)
{
    public override string ToString() => $"block {BlockNo} at address {Address}: {Reason}";
}

/// <summary>
/// Checks a chain one entry at a time, in log order: shape (version, kind, flags, reserved bytes,
/// sizes), numbering, dense LSNs, record kinds, the cluster id, the link to the previous block, the
/// block's own SHA-256, and the records-root sections' coverage (and, with <see cref="CheckRoots"/>,
/// their Merkle roots). Stops trusting at the first fault.
/// </summary>
/// <remarks>
/// The chain's format version and cluster id are those of its genesis block (or of the trusted head
/// it continues); every later block must carry the same: a chain never changes version, and a block
/// of another cluster never joins it.
/// </remarks>
public sealed class ChainVerifier
{
    /// <summary>The most records (and blocks) held for records-root sections still to come: 64 MiB of leaf hashes.</summary>
    public const int MaxPendingRecords = 1 << 21;

    private readonly ClusterId? _expectedCluster;
    private ChainHead _head;
    private bool _expectGenesis;

    // Records-root coverage: the blocks after the last one a section covered, with their record counts
    // (and, when roots are checked, their records' leaf hashes), oldest first; bounded by MaxPendingRecords.
    private readonly Queue<int> _pendingCounts = new();
    private readonly List<Hash32> _pendingLeaves = [];
    private int _leafStart;
    private long _pendingRecords;
    private ulong _pendingFirstBlock;

    /// <summary>
    /// Verifies a chain from its genesis block: version 2, or version 1 (read for audit). With
    /// <paramref name="expectedCluster"/>, genesis must name that cluster; without, the chain's
    /// cluster is whatever genesis names, and every block must name the same.
    /// </summary>
    public ChainVerifier(ClusterId? expectedCluster = null)
    {
        _expectGenesis = true;
        _expectedCluster = expectedCluster;
        _pendingFirstBlock = BlockFormat.GenesisBlockNo + 1;
    }

    /// <summary>Verifies a version 2 chain that continues after a head already trusted, of the head's cluster.</summary>
    public ChainVerifier(ChainHead trusted)
    {
        _head = trusted;
        _expectedCluster = trusted.ClusterId;
        FormatVersion = BlockFormat.Version;
        _pendingFirstBlock = trusted.BlockNo + 1;
    }

    /// <summary>
    /// Recompute every records-root section's Merkle root from the records it covers (an auditor's
    /// verification, ~2 small hashes a record); without, a section's coverage (no gap, no overlap, its
    /// block and record counts) is still checked, but not its root.
    /// </summary>
    public bool CheckRoots { get; init; }

    /// <summary>
    /// Hears every records root recomputed and matched (with <see cref="CheckRoots"/>), with the leaf
    /// hashes of the records it covers, in order (valid during the call): what a prover needs for a
    /// record's path, from the one place that holds a run's records.
    /// </summary>
    public RecordsRootChecked? OnRootChecked { get; init; }

    /// <summary>The last block a records-root section covered; null before the first section.</summary>
    public ulong? RootsCoverUntil { get; private set; }

    /// <summary>The first block the first section seen covered (where this chain's roots begin, as far as this verifier saw).</summary>
    public ulong? RootsCoverFrom { get; private set; }

    /// <summary>Sections whose root was recomputed and matched (with <see cref="CheckRoots"/>).</summary>
    public long RootsChecked { get; private set; }

    /// <summary>Sections that cover blocks this verifier did not see (before where it started, or more than it holds): coverage taken, root not checked.</summary>
    public long RootsUnchecked { get; private set; }

    /// <summary>The last verified block.</summary>
    public ChainHead Head => _head;

    /// <summary>The chain's block format version: its genesis's (0 before genesis is verified).</summary>
    public ushort FormatVersion { get; private set; }

    public long Blocks { get; private set; }

    public long Transactions { get; private set; }

    public long Bytes { get; private set; }

    /// <summary>Checks the next entry; null if it verifies (and the head moves to it), else the fault.</summary>
    public BlockFault? Check(ReadOnlySpan<byte> entry, long address, out BlockHeader header)
    {
        ulong expectedNo = _expectGenesis ? BlockFormat.GenesisBlockNo : _head.BlockNo + 1;
        // Version 1 is parsed here so that a chain switching version is named as such; a version 1
        // chain itself is only ever verified from its genesis (audit), never continued.
        string? shape = BlockFormat.TryReadHeader(entry, out header, acceptVersion1: true);
        if (shape is not null)
        {
            return new BlockFault(expectedNo, address, shape);
        }
        if (!_expectGenesis && header.Version != FormatVersion)
        {
            return new BlockFault(expectedNo, address, $"block format version {header.Version} in a chain of version {FormatVersion}: a chain never changes version");
        }
        if (header.BlockNo != expectedNo)
        {
            return new BlockFault(expectedNo, address, $"block number {header.BlockNo} where {expectedNo} was expected");
        }
        if (_expectGenesis)
        {
            if (header.Kind != BlockKind.Genesis || header.Count != 0 || header.FirstLsn != 1 || header.PrevHash != Hash32.Zero)
            {
                return new BlockFault(expectedNo, address, "the genesis block must be of kind genesis, empty, start at LSN 1 and chain to 32 zero bytes");
            }
            if (_expectedCluster is { } expected && header.ClusterId != expected)
            {
                return new BlockFault(expectedNo, address, header.Version == BlockFormat.Version1
                    ? $"a version 1 chain has no cluster id; cluster {expected.Describe()} was expected"
                    : $"genesis names cluster {header.ClusterId.Describe()}, not {expected.Describe()}: another cluster's chain");
            }
        }
        else
        {
            if (header.Kind != BlockKind.Transactions)
            {
                return new BlockFault(expectedNo, address, $"block of kind {header.Kind} after genesis: only genesis is of that kind");
            }
            if (header.ClusterId != _head.ClusterId)
            {
                return new BlockFault(expectedNo, address, $"cluster id {header.ClusterId.Describe()} in a chain of cluster {_head.ClusterId.Describe()}: a block of another cluster's chain");
            }
            if (header.Epoch < _head.Epoch)
            {
                return new BlockFault(expectedNo, address, $"epoch {header.Epoch} after epoch {_head.Epoch}");
            }
            if (header.FirstLsn != _head.LastLsn + 1)
            {
                return new BlockFault(expectedNo, address, $"first LSN {header.FirstLsn} where {_head.LastLsn + 1} was expected");
            }
            if (header.PrevHash != _head.Hash)
            {
                return new BlockFault(expectedNo, address, $"previous hash {header.PrevHash.ToShortString()} does not match block {_head.BlockNo}'s hash {_head.Hash.ToShortString()}");
            }
        }
        Hash32 computed = default;
        SHA256.HashData(BlockFormat.Hashed(entry, in header), computed);
        if (computed != BlockFormat.StoredHash(entry, in header))
        {
            return new BlockFault(expectedNo, address, $"hash mismatch: computed {computed.ToShortString()}, stored {BlockFormat.StoredHash(entry, in header).ToShortString()}");
        }
        // The hash matched, so the records are as sealed; the dense LSNs and known kinds still
        // catch a faulty sealer, and a kind this reader does not know is refused, never skipped.
        // The record reader checks both, as it does for every other reader of blocks.
        var records = BlockRecords.Of(entry, in header);
        string? recordFault;
        while (records.TryMoveNext(out recordFault))
        {
        }
        if (recordFault is not null)
        {
            return new BlockFault(expectedNo, address, recordFault);
        }
        if (BlockFormat.TryReadRecordsRoot(entry, in header, out RecordsRoot root) && CheckSection(in root) is { } sectionFault)
        {
            return new BlockFault(expectedNo, address, sectionFault);
        }
        if (header.Kind == BlockKind.Transactions)
        {
            HoldForRoots(entry, in header);
        }
        if (_expectGenesis)
        {
            FormatVersion = header.Version;
            _expectGenesis = false;
        }
        _head = new ChainHead(header.Epoch, header.BlockNo, header.LastLsn, computed) { ClusterId = header.ClusterId };
        Blocks++;
        Transactions += header.Count;
        Bytes += entry.Length;
        return null;
    }

    /// <summary>
    /// A section covers the blocks after the last one covered, none twice and none skipped (the first
    /// section of a chain may begin anywhere: roots begin where a writer began computing them); its
    /// counts must be the blocks'; its root, when checked, the records'. Null: it holds.
    /// </summary>
    private string? CheckSection(in RecordsRoot root)
    {
        if (RootsCoverUntil is { } covered && root.FirstBlock != covered + 1)
        {
            return $"records-root section covers {root}, but the sections before it covered up to block {covered}: " +
                (root.FirstBlock <= covered ? "an overlap" : "a gap");
        }
        RootsCoverFrom ??= root.FirstBlock;
        RootsCoverUntil = root.LastBlock;
        if (root.FirstBlock < _pendingFirstBlock)
        {
            // Blocks before this verifier began (or no longer held): their records were not seen.
            RootsUnchecked++;
            DropPendingThrough(root.LastBlock);
            return null;
        }
        DropPendingThrough(root.FirstBlock - 1); // only before the first section: blocks no root covers
        long records = 0;
        int blocks = 0;
        foreach (int count in _pendingCounts)
        {
            if (blocks == root.Blocks)
            {
                break;
            }
            records += count;
            blocks++;
        }
        if (blocks != root.Blocks || records != root.Records)
        {
            return $"records-root section covers {root}, but those blocks hold {records} records";
        }
        if (CheckRoots)
        {
            Hash32 computed = Merkle.Root(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_pendingLeaves).Slice(_leafStart, (int)records));
            if (computed != root.Root)
            {
                return $"records-root section covers {root}, but the root of those records is {computed.ToShortString()}";
            }
            RootsChecked++;
            OnRootChecked?.Invoke(in root, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_pendingLeaves).Slice(_leafStart, (int)records));
        }
        DropPendingThrough(root.LastBlock);
        return null;
    }

    private void HoldForRoots(ReadOnlySpan<byte> entry, in BlockHeader header)
    {
        _pendingCounts.Enqueue(header.Count);
        _pendingRecords += header.Count;
        if (CheckRoots)
        {
            ReadOnlySpan<byte> body = BlockFormat.Body(entry, in header);
            for (int at = 0; at < body.Length; at += LedgerRecord.Bytes)
            {
                _pendingLeaves.Add(Merkle.LeafHash(body.Slice(at, LedgerRecord.Bytes)));
            }
        }
        while (_pendingRecords > MaxPendingRecords || _pendingCounts.Count > MaxPendingRecords)
        {
            DropPendingThrough(_pendingFirstBlock); // the oldest: a section covering it will be unchecked
        }
    }

    private void DropPendingThrough(ulong lastBlock)
    {
        while (_pendingFirstBlock <= lastBlock)
        {
            if (_pendingCounts.TryDequeue(out int count))
            {
                _pendingRecords -= count;
                if (CheckRoots)
                {
                    _leafStart += count;
                }
            }
            _pendingFirstBlock++;
        }
        if (_leafStart > 4096 && _leafStart * 2 > _pendingLeaves.Count)
        {
            _pendingLeaves.RemoveRange(0, _leafStart);
            _leafStart = 0;
        }
    }
}

/// <summary>A records root a <see cref="ChainVerifier"/> recomputed and matched, and the leaf hashes of its records.</summary>
public delegate void RecordsRootChecked(in RecordsRoot root, ReadOnlySpan<Hash32> leaves);
