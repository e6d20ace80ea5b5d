using System.Runtime.InteropServices;
using Engine.Core.Chain;
using Engine.Protocol;

namespace Engine.Core.Journaling;

/// <summary>
/// Makes the <see cref="InclusionProof"/> of one transaction (and the <see cref="ConsistencyProof"/> of two heads) from a journal directory (the archive
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
            if ((fault = Check(verifier, entry, address, blockLeaves.Count, out BlockHeader header)) is not null)
            {
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

    /// <summary>
    /// The proof that <paramref name="newHead"/> extends <paramref name="oldHead"/>, from the journal
    /// both sign (its chain verified on the way); null and why when there is none: a head larger than
    /// the journal, or one whose root is not the journal's tree of its size (for the old head: the
    /// ledger was rewritten since it was signed, which is what the proof is there to catch).
    /// </summary>
    public static ConsistencyProof? ProveConsistency(JournalReader reader, SignedHead oldHead, SignedHead newHead, out string? why)
    {
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(oldHead);
        ArgumentNullException.ThrowIfNull(newHead);
        if (oldHead.ClusterId != newHead.ClusterId || oldHead.TreeSize > newHead.TreeSize)
        {
            why = oldHead.ClusterId != newHead.ClusterId ? "the heads are of two clusters" : $"the old head signs {oldHead.TreeSize:N0} blocks, more than the new head's {newHead.TreeSize:N0}";
            return null;
        }
        var blockLeaves = new List<Hash32>();
        var verifier = new ChainVerifier(newHead.ClusterId);
        string? fault = null;
        reader.Scan((entry, address) =>
        {
            if ((fault = Check(verifier, entry, address, blockLeaves.Count, out BlockHeader header)) is not null)
            {
                return false;
            }
            blockLeaves.Add(SignedHead.BlockLeaf(BlockFormat.StoredHash(entry, in header)));
            return blockLeaves.Count < newHead.TreeSize;
        });
        why = fault ?? (blockLeaves.Count < newHead.TreeSize ? $"the new head covers {newHead.TreeSize:N0} blocks, the journal holds {blockLeaves.Count:N0}" : null);
        if (why is not null)
        {
            return null;
        }
        Span<Hash32> tree = CollectionsMarshal.AsSpan(blockLeaves);
        if (Merkle.Root(tree) != newHead.Root)
        {
            why = $"the new head's root is not the root of this journal's blocks 0…{newHead.TreeSize - 1:N0}: a head of another history";
            return null;
        }
        if (oldHead.TreeSize > 0 && Merkle.Root(tree[..(int)oldHead.TreeSize]) != oldHead.Root)
        {
            why = $"the old head's root is not the root of this journal's blocks 0…{oldHead.TreeSize - 1:N0}: the ledger it signed is not this one's first {oldHead.TreeSize:N0} blocks (rewritten, or another history)";
            return null;
        }
        why = null;
        return new ConsistencyProof(newHead.ClusterId, oldHead, newHead, Merkle.ConsistencyProof(tree, oldHead.TreeSize));
    }

    /// <summary>The next block of a scan from genesis, verified: null, or why the scan stops.</summary>
    private static string? Check(ChainVerifier verifier, ReadOnlySpan<byte> entry, long address, int seen, out BlockHeader header)
    {
        if (seen == 0 && BlockFormat.TryReadHeader(entry, out BlockHeader first) is null && first.BlockNo != BlockFormat.GenesisBlockNo)
        {
            header = first;
            return $"the journal starts at block {first.BlockNo}: a head covers every block from genesis, and the blocks before it are not here (compacted without an archive?)";
        }
        return verifier.Check(entry, address, out header) is { } bad ? $"the journal does not verify: {bad}" : null;
    }
}
