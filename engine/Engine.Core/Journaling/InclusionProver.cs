using System.Runtime.InteropServices;
using Engine.Core.Chain;
using Engine.Protocol;

namespace Engine.Core.Journaling;

/// <summary>
/// Makes the <see cref="InclusionProof"/> of one transaction from a journal directory (the archive
/// and the live journal, read-only) and a signed head of it: one pass over the blocks, keeping every
/// block's leaf (32 bytes a block) for the head's path and the records' leaves since the last records
/// root (dropped at each root) for the record's path.
/// </summary>
public static class InclusionProver
{
    /// <summary>The proof of the transaction with LSN <paramref name="lsn"/> under <paramref name="head"/>; null and why when there is none.</summary>
    public static InclusionProof? Prove(JournalReader reader, SignedHead head, ulong lsn, out string? why)
    {
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(head);
        var blockLeaves = new List<Hash32>();
        var pendingLeaves = new List<Hash32>();
        var pendingCounts = new List<int>();
        ulong pendingFirst = BlockFormat.GenesisBlockNo + 1;
        ulong? target = null;
        byte[]? record = null;
        long recordIndex = -1;
        Hash32[]? recordPath = null;
        byte[]? rootBlock = null;
        ulong rootBlockNo = 0;
        string? fault = null;
        reader.Scan((entry, _) =>
        {
            if (BlockFormat.TryReadHeader(entry, out BlockHeader header) is { } shape)
            {
                fault = $"block {blockLeaves.Count}: {shape}";
                return false;
            }
            if (header.BlockNo != (ulong)blockLeaves.Count)
            {
                fault = $"the journal holds block {header.BlockNo} where block {blockLeaves.Count} was expected: a head covers every block from genesis, and the blocks before it are not here (compacted without an archive?)";
                return false;
            }
            blockLeaves.Add(SignedHead.BlockLeaf(BlockFormat.StoredHash(entry, in header)));
            if (rootBlock is null && BlockFormat.TryReadRecordsRoot(entry, in header, out RecordsRoot root))
            {
                while (pendingFirst < root.FirstBlock && pendingCounts.Count > 0)
                {
                    pendingLeaves.RemoveRange(0, pendingCounts[0]);
                    pendingCounts.RemoveAt(0);
                    pendingFirst++;
                }
                if (target is { } b && b >= root.FirstBlock && b <= root.LastBlock && pendingFirst == root.FirstBlock)
                {
                    long before = 0;
                    for (ulong k = root.FirstBlock; k < b; k++)
                    {
                        before += pendingCounts[(int)(k - root.FirstBlock)];
                    }
                    recordIndex += before; // it held the record's index within its block
                    Span<Hash32> run = CollectionsMarshal.AsSpan(pendingLeaves)[..(int)root.Records];
                    if (Merkle.Root(run) != root.Root)
                    {
                        fault = $"block {header.BlockNo}'s records root does not match the records of {root}: the journal does not verify";
                        return false;
                    }
                    recordPath = Merkle.InclusionPath(run, recordIndex);
                    rootBlock = entry.ToArray();
                    rootBlockNo = header.BlockNo;
                }
                int drop = (int)Math.Min((ulong)pendingCounts.Count, root.LastBlock + 1 - Math.Min(pendingFirst, root.LastBlock + 1));
                int leaves = 0;
                for (int i = 0; i < drop; i++)
                {
                    leaves += pendingCounts[i];
                }
                pendingLeaves.RemoveRange(0, leaves);
                pendingCounts.RemoveRange(0, drop);
                pendingFirst = root.LastBlock + 1;
            }
            if (header.Kind == BlockKind.Transactions && rootBlock is null)
            {
                var records = BlockRecords.Of(entry, in header);
                int index = 0;
                foreach (BlockRecord r in records)
                {
                    pendingLeaves.Add(Merkle.LeafHash(r.Bytes));
                    if (r.Lsn == lsn)
                    {
                        target = header.BlockNo;
                        record = r.Bytes.ToArray();
                        recordIndex = index;
                    }
                    index++;
                }
                pendingCounts.Add(header.Count);
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
