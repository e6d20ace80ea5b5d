using System.Security.Cryptography;
using Engine.Core.Chain;
using Engine.Protocol;

namespace Engine.Core.Journaling;

/// <summary>The first block of a new journal: a genesis of its own, or the block it is installed at (a snapshot's).</summary>
public static class JournalStart
{
    /// <summary>
    /// Checks that <paramref name="block"/> can start a journal of <paramref name="cluster"/>: it reads
    /// as a block of the current format, of that cluster, hashes to what it stores, and is the
    /// block <paramref name="expected"/> names. Null when it can, else why not.
    /// </summary>
    public static string? Check(ReadOnlySpan<byte> block, ClusterId cluster, JournalAnchor expected)
    {
        if (BlockFormat.TryReadHeader(block, out BlockHeader header) is { } shape)
        {
            return $"it does not read as a block: {shape}";
        }
        Hash32 stored = BlockFormat.StoredHash(block, in header);
        Hash32 computed = default;
        SHA256.HashData(BlockFormat.Hashed(block, in header), computed);
        if (computed != stored)
        {
            return $"block {header.BlockNo} does not hash to what it stores";
        }
        if (header.ClusterId != cluster)
        {
            return $"block {header.BlockNo} is of cluster {header.ClusterId.Describe()}, not {cluster.Describe()}";
        }
        if (header.BlockNo != expected.BlockNo || stored != expected.Hash)
        {
            return $"it is block {header.BlockNo} of hash {stored.ToShortString()}, not block {expected.BlockNo} of hash {expected.Hash.ToShortString()}";
        }
        return null;
    }

    /// <summary>
    /// Takes <paramref name="block"/> as a trusted starting point (a journal's first block, its base, an
    /// anchor, an archive's first block): it must pass <see cref="Check"/> against <paramref name="expected"/>
    /// (else against its own stored hash) and be of <paramref name="cluster"/> (else of any); null then, and
    /// <paramref name="head"/> is the chain's head at it; else why not.
    /// </summary>
    internal static string? Trust(ReadOnlySpan<byte> block, ClusterId? cluster, JournalAnchor? expected, out ChainHead head)
    {
        head = default;
        if (BlockFormat.TryReadHeader(block, out BlockHeader header) is { } shape)
        {
            return $"it does not read as a block: {shape}";
        }
        Hash32 stored = BlockFormat.StoredHash(block, in header);
        if (Check(block, cluster ?? header.ClusterId, expected ?? new JournalAnchor(header.BlockNo, stored)) is { } wrong)
        {
            return wrong;
        }
        head = new ChainHead(header.Epoch, header.BlockNo, header.LastLsn, stored) { ClusterId = header.ClusterId };
        return null;
    }

    /// <summary>
    /// What opening a new journal that starts at <paramref name="head"/> (at <paramref name="address"/>)
    /// verified: nothing; when it is installed at the block <paramref name="anchor"/> names (the
    /// snapshot just saved), replay starts there, as for any journal holding its snapshot's block.
    /// </summary>
    internal static JournalOpening Opened(JournalOpening opening, ChainHead head, long address, JournalAnchor? anchor)
    {
        if (head.BlockNo == BlockFormat.GenesisBlockNo)
        {
            return opening;
        }
        return anchor is { } a && a.BlockNo == head.BlockNo && a.Hash == head.Hash
            ? opening with { AnchorBlockNo = head.BlockNo, ReplayFrom = address, AnchorRefused = null, BaseBlockNo = head.BlockNo }
            : opening with { ReplayFrom = address, BaseBlockNo = head.BlockNo };
    }

    /// <summary>The block a new journal starts with, and the head it makes: <paramref name="startBlock"/> when given (checked), else a new genesis.</summary>
    internal static byte[] FirstBlock(JournalSettings settings, byte[]? startBlock, out ChainHead head)
    {
        if (startBlock is null)
        {
            // Timestamp 0: the genesis block depends on nothing but the cluster id and the
            // epoch, so two new journals of one cluster (the two nodes of a new pair) start
            // from the same chain, and two clusters' chains differ from block 0 on.
            return BlockBuilder.Genesis(settings.ClusterId, settings.Epoch, 0, out head);
        }
        if (Trust(startBlock, settings.ClusterId, null, out head) is { } refused)
        {
            throw new ArgumentException($"a journal cannot start at this block: {refused}", nameof(startBlock));
        }
        return startBlock;
    }
}
