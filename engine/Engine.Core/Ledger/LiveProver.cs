using System.Runtime.InteropServices;
using Engine.Core.Journaling;
using Engine.Protocol;

namespace Engine.Core.Ledger;

/// <summary>
/// Makes the <see cref="InclusionProof"/> of one transaction on a running node, for the client
/// whose order it is: the block through the journal's index, the block whose records-root section
/// covers it a few blocks later, the records of the blocks that root covers (for the record's path),
/// and the block's path to the newest signed head from <see cref="BlockHashTree"/>. Reads a bounded
/// stretch of the journal (<see cref="MaxRootDistance"/> blocks), never a pass over the ledger;
/// <see cref="InclusionProver"/> is the offline one, from a journal directory.
/// </summary>
/// <remarks>One instance per thread: it keeps its leaf buffer between proofs.</remarks>
public sealed class LiveProver(IJournal journal, HeadSigner heads)
{
    /// <summary>How far after the transaction's block the block with its records root is looked for (a root is written within a few intervals of ~10 ms).</summary>
    public const int MaxRootDistance = 1 << 16;

    private readonly List<Hash32> _leaves = [];

    /// <summary>
    /// The proof that the transaction at <paramref name="lsn"/> in block <paramref name="blockNo"/> (its
    /// receipt's) is in the ledger, if it is an order request of <paramref name="clientId"/>; else null,
    /// with <paramref name="refusal"/> and why (<see cref="RejectReason.NoSuchTransaction"/> alike for a
    /// transaction that is not there and one that is another client's: need to know).
    /// </summary>
    public InclusionProof? Prove(uint clientId, ulong lsn, ulong blockNo, out RejectReason refusal, out string why)
    {
        refusal = RejectReason.ProofUnavailable;
        if (heads.Latest is not { } head)
        {
            why = "no signed head yet: retry in a second";
            return null;
        }
        ulong covered = (ulong)head.TreeSize;
        if (journal.Base is { } compactedTo && blockNo < compactedTo.BlockNo)
        {
            why = $"block {blockNo} is before this node's journal (compacted to block {compactedTo.BlockNo}): `engine log prove` with the archive proves it";
            return null;
        }
        if (blockNo >= covered)
        {
            why = $"block {blockNo} is not under a signed head yet (the newest covers blocks 0…{covered - 1}): retry in a second";
            return null;
        }

        byte[]? record = null;
        RecordsRoot root = default;
        byte[]? rootBlock = null;
        ulong rootBlockNo = 0;
        journal.Scan(journal.LocateFrom(blockNo), (entry, _) =>
        {
            if (BlockFormat.TryReadHeader(entry, out BlockHeader header) is not null || header.BlockNo >= covered || header.BlockNo > blockNo + MaxRootDistance)
            {
                return false;
            }
            if (header.BlockNo < blockNo)
            {
                return true;
            }
            if (header.BlockNo == blockNo)
            {
                if (header.Kind != BlockKind.Transactions || lsn < header.FirstLsn || lsn > header.LastLsn)
                {
                    return false;
                }
                record = BlockFormat.Body(entry, in header).Slice((int)(lsn - header.FirstLsn) * LedgerRecord.Bytes, LedgerRecord.Bytes).ToArray();
                if (!IsOrderOf(record, clientId))
                {
                    record = null;
                    return false;
                }
            }
            if (BlockFormat.TryReadRecordsRoot(entry, in header, out RecordsRoot section) && section.FirstBlock <= blockNo && blockNo <= section.LastBlock)
            {
                root = section;
                rootBlock = entry.ToArray();
                rootBlockNo = header.BlockNo;
                return false;
            }
            return true;
        });
        if (record is null)
        {
            refusal = RejectReason.NoSuchTransaction;
            why = $"no order of client {clientId} with LSN {lsn} in block {blockNo}";
            return null;
        }
        if (rootBlock is null)
        {
            why = $"no records root under the newest signed head covers block {blockNo} yet (heads cover blocks 0…{covered - 1}): retry in a second";
            return null;
        }

        long recordIndex = CollectLeaves(root, blockNo, lsn);
        if (recordIndex < 0 || _leaves.Count != root.Records)
        {
            why = $"the records of {root} do not read back as the root counts them";
            return null;
        }
        var proof = new InclusionProof(head.ClusterId, lsn, blockNo, record, recordIndex,
            Merkle.InclusionPath(CollectionsMarshal.AsSpan(_leaves), recordIndex), rootBlock,
            head, heads.Tree.InclusionPath((long)rootBlockNo, head.TreeSize));
        _leaves.Clear();
        // The signature is the head's own (checked where it was made); the rest is checked here, so a
        // damaged tree file or journal read gives a refusal, never a proof that fails its client.
        if (proof.Verify((_, _) => true) is { } broken)
        {
            why = $"the proof made does not verify ({broken})";
            return null;
        }
        refusal = RejectReason.None;
        why = "";
        return proof;
    }

    /// <summary>Reads the leaves of the blocks <paramref name="root"/> covers into <see cref="_leaves"/>; returns the index of the transaction's, or -1.</summary>
    private long CollectLeaves(RecordsRoot root, ulong blockNo, ulong lsn)
    {
        _leaves.Clear();
        long recordIndex = -1;
        ulong first = root.FirstBlock, last = root.LastBlock;
        journal.Scan(journal.LocateFrom(first), (entry, _) =>
        {
            if (BlockFormat.TryReadHeader(entry, out BlockHeader header) is not null || header.BlockNo > last)
            {
                return false;
            }
            if (header.BlockNo < first)
            {
                return true;
            }
            if (header.BlockNo == blockNo)
            {
                recordIndex = _leaves.Count + (long)(lsn - header.FirstLsn);
            }
            ReadOnlySpan<byte> body = BlockFormat.Body(entry, in header);
            for (int at = 0; at < body.Length && _leaves.Count <= root.Records; at += LedgerRecord.Bytes)
            {
                _leaves.Add(Merkle.LeafHash(body.Slice(at, LedgerRecord.Bytes)));
            }
            return _leaves.Count <= root.Records;
        });
        return recordIndex;
    }

    /// <summary>Whether <paramref name="record"/> is an order request (new, cancel, replace) of <paramref name="clientId"/>: admin transactions are no client's.</summary>
    private static bool IsOrderOf(ReadOnlySpan<byte> record, uint clientId)
    {
        RecordKind kind = LedgerRecord.KindOf(record);
        if (LedgerRecord.FamilyOf(kind) != RecordFamily.OrderRequest || !LedgerRecord.IsKnown(kind))
        {
            return false;
        }
        LedgerRecord.Read(record, out Transaction tx);
        return tx.ClientId == clientId;
    }
}
