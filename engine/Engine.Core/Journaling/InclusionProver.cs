using System.Runtime.InteropServices;
using Engine.Core.Chain;
using Engine.Protocol;

namespace Engine.Core.Journaling;

/// <summary>
/// Makes the <see cref="InclusionProof"/> of one transaction from a journal directory (the archive
/// and the live journal, read-only) and a signed head of it: one pass in which a
/// <see cref="ChainVerifier"/> checks the chain and recomputes the records roots (and hands over the
/// leaves of the root that covers the transaction's block, for its path), and every block's leaf is
/// kept (32 bytes a block) for the head's path.
/// </summary>
public static class InclusionProver
{
    /// <summary>The proof of the transaction with LSN <paramref name="lsn"/> under <paramref name="head"/>; null and why when there is none.</summary>
    public static InclusionProof? Prove(JournalReader reader, SignedHead head, ulong lsn, out string? why)
    {
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(head);
        var blockLeaves = new List<Hash32>();
        ulong? target = null;
        byte[]? record = null;
        long recordIndex = -1;
        Hash32[]? recordPath = null;
        byte[]? rootBlock = null;
        ulong rootBlockNo = 0;
        string? fault = null;
        var verifier = new ChainVerifier(head.ClusterId)
        {
            CheckRoots = true,
            OnRootChecked = (in RecordsRoot root, ReadOnlySpan<Hash32> leaves) =>
            {
                if (recordPath is null && target is { } b && b >= root.FirstBlock && b <= root.LastBlock)
                {
                    recordIndex = leaves.IndexOf(Merkle.LeafHash(record!)); // a record's leaf is unique: it holds its LSN
                    recordPath = Merkle.InclusionPath(leaves, recordIndex);
                }
            },
        };
        reader.Scan((entry, address) =>
        {
            if (blockLeaves.Count == 0 && BlockFormat.TryReadHeader(entry, out BlockHeader first) is null && first.BlockNo != BlockFormat.GenesisBlockNo)
            {
                fault = $"the journal starts at block {first.BlockNo}: a head covers every block from genesis, and the blocks before it are not here (compacted without an archive?)";
                return false;
            }
            if (verifier.Check(entry, address, out BlockHeader header) is { } bad)
            {
                fault = $"the journal does not verify: {bad}";
                return false;
            }
            blockLeaves.Add(SignedHead.BlockLeaf(BlockFormat.StoredHash(entry, in header)));
            if (recordPath is not null && rootBlock is null)
            {
                rootBlock = entry.ToArray(); // the block whose section the verifier just matched
                rootBlockNo = header.BlockNo;
            }
            if (target is null && header.Kind == BlockKind.Transactions && lsn >= header.FirstLsn && lsn <= header.LastLsn)
            {
                target = header.BlockNo;
                record = BlockFormat.Body(entry, in header).Slice((int)(lsn - header.FirstLsn) * LedgerRecord.Bytes, LedgerRecord.Bytes).ToArray();
            }
            return blockLeaves.Count < head.TreeSize || rootBlock is null;
        });
        why = fault
            ?? (target is null ? $"no transaction with LSN {lsn} in this journal"
            : rootBlock is null ? $"no records root covers block {target} yet (a root is committed in a later block; try again shortly)"
            : (ulong)head.TreeSize <= rootBlockNo ? $"the records root of block {target} is in block {rootBlockNo}, which the newest signed head (blocks 0…{head.TreeSize - 1}) does not cover yet; try again after the next head"
            : blockLeaves.Count < head.TreeSize ? $"the head covers {head.TreeSize} blocks, the journal holds {blockLeaves.Count}"
            : null);
        if (why is not null)
        {
            return null;
        }
        Span<Hash32> tree = CollectionsMarshal.AsSpan(blockLeaves)[..(int)head.TreeSize];
        if (Merkle.Root(tree) != head.Root)
        {
            why = $"the signed head's root is not the root of this journal's blocks 0…{head.TreeSize - 1}: a head of another history";
            return null;
        }
        return new InclusionProof(head.ClusterId, lsn, target!.Value, record!, recordIndex, recordPath!, rootBlock!, head, Merkle.InclusionPath(tree, (long)rootBlockNo));
    }
}
