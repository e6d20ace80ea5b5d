using Engine.Core.Chain;

namespace Engine.Core.Journaling;

/// <summary>
/// The ledger's journal as the pair and the node use it: blocks appended in chain order, made
/// durable by commits, read back in order. <see cref="Journal"/> keeps it on a FasterLog;
/// <see cref="SimulatedJournal"/> keeps it on an in-memory device for the deterministic simulator.
/// One contract test suite (tests/Engine.Tests/Journaling/JournalContractTests) runs against both.
/// </summary>
/// <remarks>
/// <para><b>Addresses.</b> <see cref="Append"/> returns the block's address: strictly greater than
/// every earlier block's, never reused while the journal is open, the same address
/// <see cref="Scan(BlockVisitor)"/> reports for it. Nothing else is promised about their values (they are
/// FasterLog's logical addresses, with gaps).</para>
/// <para><b>Committed.</b> A block is committed once <see cref="CommittedUntil"/> is greater than its
/// address. A committed block survives a crash of the process; a block that is not may or may not
/// (see <see cref="Append"/>). The journal opens (see the implementations' <c>Open</c>) on
/// a chain re-hashed from genesis to the committed end, and <see cref="Head"/> is that chain's last
/// block.</para>
/// <para><b>Faults.</b> The first append or commit that fails becomes <see cref="Fault"/>, for good:
/// from then on nothing more is committed (what was appended and not committed before it is
/// lost, as a failing device loses what it had not written; what was committed stays), and
/// <see cref="Append"/>, <see cref="WaitDurable"/> and a <see cref="Flush"/> that would have to
/// wait throw <see cref="JournalFaultException"/>.</para>
/// <para><b>Dispose.</b> A clean close: commits what was appended (unless the journal has faulted),
/// then releases the journal. A crash is not a dispose: it is the implementation's (a killed
/// process, <see cref="SimulatedJournalDevice.Crash"/>).</para>
/// <para><b>Threads.</b> Appends come from one thread. <see cref="Journal"/> is thread-safe
/// otherwise; <see cref="SimulatedJournal"/> is driven from the simulator's one thread.</para>
/// </remarks>
public interface IJournal : IDisposable
{
    /// <summary>
    /// What the journal was opened with. <see cref="JournalSettings.Durability"/> decides
    /// <see cref="IsDurable"/>; <see cref="JournalSettings.MaxTransactionsPerBlock"/> bounds the
    /// blocks the sealer may append.
    /// </summary>
    JournalSettings Settings { get; }

    /// <summary>
    /// The end of the chain when the journal was opened (genesis for a new one): the verified
    /// block the next appended block must continue. It does not move with appends.
    /// </summary>
    ChainHead Head { get; }

    /// <summary>
    /// Every block whose address is below this is committed (survives a crash). It never moves
    /// back, moves only when a commit completes, and no longer moves once the journal has faulted.
    /// </summary>
    long CommittedUntil { get; }

    /// <summary>The first append or commit that failed; sticky. Null while the journal works.</summary>
    Exception? Fault { get; }

    /// <summary>
    /// Cancelled once, the moment <see cref="Fault"/> is set, on the thread that saw the failure:
    /// callbacks must be short and must not wait on the journal. Never cancelled otherwise.
    /// </summary>
    CancellationToken FaultToken { get; }

    /// <summary>
    /// Appends one sealed block (the caller continues the chain: the journal does not check it);
    /// returns its address. The block is not committed when this returns: a later commit covers it
    /// (<see cref="Journal"/>'s committer is asked for one at once; on the simulated device the
    /// simulator decides when), and until then a crash may lose it. In
    /// <see cref="Durability.Memory"/>, may wait while the uncommitted tail exceeds
    /// <see cref="JournalSettings.MaxCommitLagBytes"/>.
    /// </summary>
    /// <exception cref="JournalFaultException">The journal has failed, now or before: nothing of the block was appended, and <see cref="Fault"/> is set.</exception>
    long Append(ReadOnlySpan<byte> block);

    /// <summary>
    /// True when the block at <paramref name="address"/> counts as journaled: in
    /// <see cref="Durability.Memory"/> once appended (a crash may still lose it: the backup's copy
    /// covers it), in <see cref="Durability.Disk"/> once committed. Does not look at <see cref="Fault"/>.
    /// </summary>
    bool IsDurable(long address);

    /// <summary>
    /// Returns once the block at <paramref name="address"/> is durable (<see cref="IsDurable"/>),
    /// asking for the commit that makes it so if needed.
    /// </summary>
    /// <exception cref="JournalFaultException">The journal has failed, before or during the wait, even when the block itself is durable: once failed, nothing passes the node's ack gate.</exception>
    void WaitDurable(long address);

    /// <summary>
    /// Returns once everything appended before the call is committed (in either durability),
    /// committing it if needed. Returns at once when it already is, even after a fault.
    /// </summary>
    /// <exception cref="JournalFaultException">The journal failed before what was appended could be committed.</exception>
    void Flush();

    /// <summary>
    /// Visits the committed blocks, in chain order from genesis, each with the address
    /// <see cref="Append"/> returned for it (the span is valid during the call only), until
    /// <paramref name="visit"/> returns false. Blocks appended but not yet committed when the scan
    /// starts are not visited: flush first to see them. Works after a fault too.
    /// </summary>
    void Scan(BlockVisitor visit);

    /// <summary>
    /// As <see cref="Scan(BlockVisitor)"/>, from <paramref name="fromAddress"/>: an address
    /// <see cref="Append"/> or a scan gave for a committed block (an index kept by the caller).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="fromAddress"/> is not in the committed journal.</exception>
    void Scan(long fromAddress, BlockVisitor visit);

    /// <summary>
    /// The block the journal starts at when it does not start at genesis (installed from a snapshot,
    /// or compacted): blocks before it are not in the journal; null: genesis.
    /// </summary>
    JournalAnchor? Base { get; }

    /// <summary>
    /// A cursor over the blocks committed when it opens, from <paramref name="fromAddress"/> (an address
    /// a scan or <see cref="LocateFrom"/> gave): for a reader that goes on where it stopped (a catch-up's
    /// batches) without a new scan each time. <see cref="IEntryCursor.Release"/> it before its thread
    /// moves on; dispose it before the journal.
    /// </summary>
    IEntryCursor OpenCursor(long fromAddress);

    /// <summary>
    /// A cursor that follows the journal from <paramref name="fromAddress"/>: at the committed end
    /// <see cref="IEntryCursor.TryNext"/> answers false, and later goes on with what was committed
    /// since. One reader's for its lifetime (a background reader of new blocks: records roots, signed
    /// heads): opening a cursor is not free (FasterLog allocates its read frames), so it is kept.
    /// </summary>
    IEntryCursor OpenFollower(long fromAddress);

    /// <summary>
    /// Moves the journal's base up to <paramref name="newBase"/>, a committed block it holds (the
    /// oldest retained snapshot's): recovery, catch-ups and readers start there from now on, and the
    /// blocks before it are freed (FasterLog: whole segments, at the next commit; on the simulated
    /// device: not modelled). With <paramref name="archive"/>, the blocks from the old base up to it
    /// are written there first. From one thread at a time (the snapshot taker's).
    /// </summary>
    /// <returns>What was done; null when <paramref name="newBase"/> is not after the base or not in the journal with that hash.</returns>
    Compaction? Compact(JournalAnchor newBase, BlockArchive? archive);

    /// <summary>What opening the journal verified, and from where (an anchor, or genesis): replay starts at <see cref="JournalOpening.ReplayFrom"/>.</summary>
    JournalOpening Opening { get; }

    /// <summary>
    /// An address of a committed block from which <see cref="Scan(long, BlockVisitor)"/> reaches block
    /// <paramref name="blockNo"/> (if the journal holds it) within <see cref="BlockIndex.Every"/> blocks,
    /// through the journal's <see cref="BlockIndex"/>: a seek, not a scan from genesis. The scan
    /// still starts before the block; the visitor skips what precedes it.
    /// </summary>
    long LocateFrom(ulong blockNo);

    /// <summary>Commits that completed (for the node's status).</summary>
    long Commits { get; }

    /// <summary>Commits that did not complete in time and were issued again (should stay 0; the simulated journal has no committer of its own, so none).</summary>
    long CommitStalls { get; }
}

/// <summary>What one compaction did: the base moved from <paramref name="FromBlock"/> to <paramref name="BaseBlock"/>, and what went to the archive.</summary>
public sealed record Compaction(ulong FromBlock, ulong BaseBlock, long ArchivedBlocks, long ArchivedBytes);

/// <summary>Reads of single blocks, the same on every journal.</summary>
public static class JournalBlocks
{
    /// <summary>The address of <paramref name="block"/> in <paramref name="journal"/> if it holds it committed with that hash (a seek through its block index); null if not.</summary>
    public static long? FindBlock(this IJournal journal, JournalAnchor block) =>
        journal.Locate(block.BlockNo) is { } found && found.Hash == block.Hash ? found.Address : null;

    /// <summary>The hash of block <paramref name="blockNo"/> if <paramref name="journal"/> holds it committed; null if not.</summary>
    public static Protocol.Hash32? HashOf(this IJournal journal, ulong blockNo) => journal.Locate(blockNo)?.Hash;

    /// <summary>Where block <paramref name="blockNo"/> is in the committed journal, and its hash; null if the journal does not hold it.</summary>
    private static (long Address, Protocol.Hash32 Hash)? Locate(this IJournal journal, ulong blockNo)
    {
        ArgumentNullException.ThrowIfNull(journal);
        (long, Protocol.Hash32)? found = null;
        journal.Scan(journal.LocateFrom(blockNo), (entry, address) =>
        {
            if (BlockFormat.TryReadHeader(entry, out BlockHeader header) is not null || header.BlockNo > blockNo)
            {
                return false;
            }
            if (header.BlockNo == blockNo)
            {
                found = (address, BlockFormat.StoredHash(entry, in header));
                return false;
            }
            return true;
        });
        return found;
    }
}
