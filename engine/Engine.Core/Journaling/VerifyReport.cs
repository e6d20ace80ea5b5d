using Engine.Core.Chain;

namespace Engine.Core.Journaling;

/// <summary>What re-hashing a journal's chain found.</summary>
/// <param name="Blocks">Blocks that verified, genesis included.</param>
/// <param name="Transactions">Transactions in those blocks.</param>
/// <param name="Bytes">Bytes of those blocks.</param>
/// <param name="Head">The last block that verified; null for an empty journal.</param>
/// <param name="Fault">The first block that did not; null if the whole chain is intact.</param>
/// <param name="CommittedUntil">The committed end of the log: everything before it was checked.</param>
/// <param name="Elapsed">How long the check took.</param>
public sealed record VerifyReport(long Blocks, long Transactions, long Bytes, ChainHead? Head, BlockFault? Fault, long CommittedUntil, TimeSpan Elapsed)
{
    /// <summary>The chain's block format version (its genesis's; 0 when not even genesis verified).</summary>
    public ushort FormatVersion { get; init; }

    /// <summary>The chain's cluster (every block's, as its genesis names it); null when nothing verified.</summary>
    public ClusterId? ClusterId => Head?.ClusterId;

    public bool Intact => Fault is null;

    /// <summary>Of <see cref="Blocks"/>, those read from the archive (compacted out of the live journal).</summary>
    public long ArchivedBlocks { get; init; }

    /// <summary>
    /// The block verification started at when it was not genesis: the journal's base, trusted as
    /// <c>journal.json</c> names it, because the blocks before it are not here (deleted by compaction,
    /// or a journal installed from a snapshot); null: verified from genesis.
    /// </summary>
    public ulong? StartedAtBase { get; init; }

    /// <summary>The blocks the chain's records-root sections cover, first to last (null: no section).</summary>
    public (ulong First, ulong Last)? RootsCover { get; init; }

    /// <summary>Records-root sections whose Merkle root was recomputed from the records and matched.</summary>
    public long RootsChecked { get; init; }

    /// <summary>Records-root sections over blocks the verification did not see (before its start): coverage checked, root not.</summary>
    public long RootsUnchecked { get; init; }

    /// <summary>This report with <paramref name="verifier"/>'s records-root findings.</summary>
    public VerifyReport WithRoots(ChainVerifier verifier) => this with
    {
        RootsCover = verifier.RootsCoverFrom is { } from && verifier.RootsCoverUntil is { } until ? (from, until) : null,
        RootsChecked = verifier.RootsChecked,
        RootsUnchecked = verifier.RootsUnchecked,
    };

    public double BytesPerSecond => Elapsed.TotalSeconds > 0 ? Bytes / Elapsed.TotalSeconds : 0;
}
