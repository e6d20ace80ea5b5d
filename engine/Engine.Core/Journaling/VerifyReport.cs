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

    public double BytesPerSecond => Elapsed.TotalSeconds > 0 ? Bytes / Elapsed.TotalSeconds : 0;
}
