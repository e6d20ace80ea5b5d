using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Protocol;

namespace Engine.Replication.Pair;

/// <summary>
/// The connections a <see cref="PairNode"/> uses, as numbers: the host (real TCP and the secure
/// channel, or the simulator's network) makes them, carries whole frames and tells the node what
/// happened through <see cref="PairNode.OnConnected"/>, <see cref="PairNode.OnAccepted"/>,
/// <see cref="PairNode.OnFrame"/> and <see cref="PairNode.OnClosed"/>. Nothing here blocks or waits.
/// </summary>
public interface IPairTransport
{
    /// <summary>Starts a connection to the other node's replication endpoint; the answer comes as <see cref="PairNode.OnConnected"/> or <see cref="PairNode.OnClosed"/>.</summary>
    int Connect();

    /// <summary>Queues one whole frame on <paramref name="connection"/> (dropped if it is closed).</summary>
    void Send(int connection, ReadOnlySpan<byte> frame);

    /// <summary>Queues one frame of <paramref name="type"/> around <paramref name="payload"/> (the transport writes the header where it queues it: nothing is allocated per frame).</summary>
    void Send(int connection, ReplicationType type, ReadOnlySpan<byte> payload);

    /// <summary>Who is at the other end of <paramref name="connection"/> (authenticated), for events; "?" if it is gone.</summary>
    string PeerName(int connection);

    /// <summary>Closes <paramref name="connection"/>; no <see cref="PairNode.OnClosed"/> follows for it.</summary>
    void Close(int connection);
}

/// <summary>
/// The witness, as seen by a node: a request goes out, its answer (or
/// <see cref="WitnessAnswer.NoAnswer"/> after the host's timeout) comes back through
/// <see cref="PairNode.OnWitnessAnswer"/> with the same number.
/// </summary>
public interface IWitnessPort
{
    void Ask(int request, WitnessRequest what);
}

/// <summary>
/// The node's ledger (its journal and its state machine), as the pair needs it. The host's is the
/// FASTER journal and the <c>Exchange</c>; the simulator's a simulated journal and the same
/// <c>Exchange</c>.
/// </summary>
public interface IPairLedger
{
    /// <summary>Where this node's chain ends (its last journaled block).</summary>
    ChainHead Head { get; }

    /// <summary>Whether block <paramref name="blockNo"/> of this node's chain has <paramref name="hash"/> (block 0: the genesis).</summary>
    bool HasBlock(ulong blockNo, in Hash32 hash);

    /// <summary>
    /// Visits this node's blocks after <paramref name="afterBlockNo"/> up to <paramref name="throughBlockNo"/>, in order, as journaled,
    /// until <paramref name="visit"/> returns false (a streamed catch-up reads a batch at a time: the next read starts at the block declined).
    /// The visitor must not call back into the node or its transport: it runs inside the journal's scan.
    /// </summary>
    void ReadBlocks(ulong afterBlockNo, ulong throughBlockNo, BlockVisitor visit);

    /// <summary>
    /// A backup's block from the primary: verified against this node's chain, journaled and applied;
    /// null then, else why it was refused (nothing journaled or applied).
    /// </summary>
    /// <exception cref="Core.Journaling.JournalFaultException">This node's journal failed.</exception>
    string? AppendReplicated(ReadOnlySpan<byte> block);

    /// <summary>The state checksum after block <paramref name="blockNo"/> if this node kept it (a backup keeps the recent ones it computed), else null.</summary>
    Hash32? StateChecksumAfter(ulong blockNo);

    /// <summary>This node's chain is not on the primary's: its suffix was never acknowledged. Discards the journal (kept aside) and starts again from genesis.</summary>
    void DiscardDivergedChain();

    /// <summary>
    /// Primary: the snapshot a joining backup whose chain ends at <paramref name="backupHead"/> must
    /// install instead of the blocks, because this node's journal no longer holds them (its head is
    /// before the journal's base), with the block it stands after; null: send blocks. Never while the
    /// blocks are here: a snapshot in their place would leave the backup's journal without the history
    /// before it, and should this node later lose its own (a diverged chain set aside), no live journal
    /// of the pair would hold it.
    /// </summary>
    CatchUpSnapshot? SnapshotFor(ulong backupHead);

    /// <summary>
    /// Backup: replaces this node's journal and state with <paramref name="snapshot"/> (the
    /// primary's) and a journal that starts at <paramref name="anchorBlock"/>, the block it stands
    /// after (the old journal is kept aside). Null then, else why it was refused (nothing changed).
    /// </summary>
    string? InstallSnapshot(byte[] snapshot, ReadOnlySpan<byte> anchorBlock);
}

/// <summary>A snapshot a primary sends a joining backup: its bytes, and the block it stands after (which starts the backup's new journal).</summary>
public sealed record CatchUpSnapshot(byte[] Content, ulong BlockNo, Hash32 BlockHash, byte[] AnchorBlock);
