namespace Engine.Core.Ledger;

/// <summary>
/// Where sealed blocks are mirrored (the backup of a process pair). The sealer sends every block
/// as it seals it; the journal gate lets a transaction on only once the mirror has acknowledged
/// its block, so nobody hears "accepted" before both processes hold it.
/// </summary>
public interface IBlockMirror
{
    /// <summary>True while a backup is connected and in step.</summary>
    bool IsConnected { get; }

    /// <summary>
    /// True when the node may acknowledge now: a backup is in step, or the node holds the solo
    /// lease. When false the gateway answers "no backup".
    /// </summary>
    bool MayAcknowledge { get; }

    /// <summary>Queues a sealed block for the backup (never waits on the network); <paramref name="sealedHead"/> is the chain's head it makes (its number and hash, as the sealer has them).</summary>
    void Send(ReadOnlySpan<byte> block, in Chain.ChainHead sealedHead);

    /// <summary>Queues the state checksum after block <paramref name="blockNo"/>, for the backup to compare with its own.</summary>
    void SendStateChecksum(ulong blockNo, Protocol.Hash32 checksum);

    /// <summary>
    /// True once the backup has acknowledged <paramref name="blockNo"/> (or the node holds the solo
    /// lease and no backup is in step). Asked by the ack gate's thread without waiting; while no backup
    /// is connected the answer stays false: a primary without its backup acknowledges nothing.
    /// <paramref name="never"/> says why it never will be true (halted, or stopping with no backup).
    /// </summary>
    bool IsAcknowledged(ulong blockNo, out string? never);

    /// <summary>
    /// Called once, by the pipeline, with how to wake its ack gate: the mirror calls <paramref name="wake"/>
    /// whenever <see cref="IsAcknowledged"/>'s answer may have changed (an acknowledgement, a lease, a
    /// state change, the stop). Cheap when nobody waits; called on the mirror's own threads.
    /// </summary>
    void OnAckProgress(Action wake);

    /// <summary>
    /// The node is stopping: from now on <see cref="IsAcknowledged"/> says "never" when no
    /// backup is in step (and no lease held), so the drain does not wait for an ack that cannot come;
    /// what was not acknowledged stays unacknowledged, and clients resend it elsewhere.
    /// </summary>
    void BeginStop();
}
