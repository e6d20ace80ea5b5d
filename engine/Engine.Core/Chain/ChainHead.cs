using Engine.Protocol;

namespace Engine.Core.Chain;

/// <summary>Where a chain ends: its last block and the LSN of its last transaction.</summary>
/// <param name="Epoch">The epoch of the last block.</param>
/// <param name="BlockNo">The last block's number.</param>
/// <param name="LastLsn">The last transaction's LSN (0 when there is none yet).</param>
/// <param name="Hash">The last block's hash: what the next block chains to.</param>
public readonly record struct ChainHead(ulong Epoch, ulong BlockNo, ulong LastLsn, Hash32 Hash)
{
    /// <summary>
    /// The cluster the chain belongs to (every block header carries it): the next block must carry
    /// the same. Default: the development cluster (all zeros).
    /// </summary>
    public ClusterId ClusterId { get; init; }

    public override string ToString() =>
        $"block {BlockNo}, lsn {LastLsn}, epoch {Epoch}, head {Hash}{(ClusterId.IsDevelopment ? "" : $", cluster {ClusterId}")}";
}
