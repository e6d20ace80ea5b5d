using System.Buffers;
using Engine.Core.Book;
using Engine.Core.Chain;
using Engine.Core.Ledger;

namespace Engine.Core.Journaling;

/// <summary>
/// The state machine a second time, off the apply thread, so that taking a snapshot never pauses
/// matching: it follows the node's journal (committed blocks only, read with
/// <see cref="IJournal.Scan(long, BlockVisitor)"/> from where it stopped), applies each block with the
/// same <see cref="BlockApplier"/> as replay and the backup, and after every
/// <see cref="IntervalBlocks"/>th block writes a snapshot of its own state to the store (and prunes
/// it). The price: every transaction is applied twice (the second time off the hot path, and it may
/// lag), and the state is held twice in memory. Writing a snapshot of 1 M resting orders takes
/// ~100 ms here, which this thread spends instead of the apply thread.
/// </summary>
/// <remarks>
/// Step-driven: <see cref="Step"/> does a bounded amount of work and returns; a host calls it from a
/// thread of its own (or the simulator from its loop). It trusts the journal as replay does: the
/// chain was verified when the journal opened, and every block appended since was sealed by this
/// node or verified before the backup journaled it. Not thread-safe: one caller.
/// </remarks>
public sealed class SnapshotReplica
{
    private readonly IJournal _journal;
    private readonly SnapshotStore _store;
    private readonly BlockApplier _applier;
    private readonly ArrayBufferWriter<byte> _buffer = new();
    private long _resumeAddress = -1;

    /// <param name="journal">The node's journal (open; its committed blocks are read).</param>
    /// <param name="store">Where snapshots go.</param>
    /// <param name="reference">The node's reference data, for a state that starts empty.</param>
    /// <param name="intervalBlocks">A snapshot after every block whose number is a multiple of this.</param>
    /// <param name="from">A snapshot to start from (its state is taken over, not copied), or null to apply the journal from genesis.</param>
    public SnapshotReplica(IJournal journal, SnapshotStore store, ReferenceData reference, ulong intervalBlocks, LoadedSnapshot? from = null)
    {
        ArgumentNullException.ThrowIfNull(journal);
        ArgumentNullException.ThrowIfNull(store);
        ArgumentOutOfRangeException.ThrowIfZero(intervalBlocks);
        _journal = journal;
        _store = store;
        IntervalBlocks = intervalBlocks;
        _applier = new BlockApplier(from?.Exchange ?? new Exchange(reference));
        AppliedBlockNo = from?.Header.BlockNo;
        LastSnapshotBlockNo = from?.Header.BlockNo;
    }

    public ulong IntervalBlocks { get; }

    /// <summary>The last block applied (null before genesis).</summary>
    public ulong? AppliedBlockNo { get; private set; }

    /// <summary>The block the newest snapshot this replica wrote (or started from) stands after; null if none.</summary>
    public ulong? LastSnapshotBlockNo { get; private set; }

    /// <summary>The replica's state (tests; it belongs to the replica's thread).</summary>
    public Exchange State => _applier.Exchange;

    /// <summary>
    /// Applies up to <paramref name="maxBlocks"/> committed blocks it has not applied yet, writing a
    /// snapshot after each block that is due; returns how many it applied (0: it is level with what is
    /// committed).
    /// </summary>
    /// <exception cref="IOException">A snapshot could not be written (the state is kept; the next due block tries again).</exception>
    public int Step(int maxBlocks = 4096)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBlocks, 1);
        int applied = 0;
        BlockVisitor visit = (entry, address) =>
        {
            BlockRecords records = BlockRecords.Open(entry);
            ulong blockNo = records.Header.BlockNo;
            if (AppliedBlockNo is { } done && blockNo <= done)
            {
                return true; // the block it stopped at (a scan resumes there), or one inside the snapshot it started from
            }
            var sink = new NullSink();
            _applier.ApplyBlock(records, ref sink);
            AppliedBlockNo = blockNo;
            _resumeAddress = address;
            applied++;
            if (blockNo % IntervalBlocks == 0 && blockNo != LastSnapshotBlockNo)
            {
                _buffer.ResetWrittenCount();
                _applier.Exchange.WriteSnapshot(_buffer, blockNo, records.StoredHash);
                _store.Save(_buffer.WrittenSpan, blockNo);
                _store.Prune();
                LastSnapshotBlockNo = blockNo;
            }
            return applied < maxBlocks;
        };
        if (_resumeAddress >= 0)
        {
            _journal.Scan(_resumeAddress, visit);
        }
        else
        {
            _journal.Scan(visit);
        }
        return applied;
    }
}
