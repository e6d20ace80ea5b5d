using System.Buffers;
using Engine.Core.Book;
using Engine.Core.Chain;
using Engine.Core.Ledger;
using Engine.Protocol;

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
    private long _resumeAddress;
    private Hash32 _appliedHash;
    private Hash32 _lastChecksum;

    /// <param name="journal">The node's journal (open; its committed blocks are read).</param>
    /// <param name="store">Where snapshots go.</param>
    /// <param name="intervalBlocks">A snapshot after every block whose number is a multiple of this; 0: only when asked (<see cref="TakeSnapshot"/>).</param>
    /// <param name="from">A snapshot to start from (its state is taken over, not copied), or null to apply the journal from genesis.</param>
    /// <param name="fromAddress">Where the first scan starts: <paramref name="from"/>'s block's address (its block is skipped), or the journal's first; -1: the journal's first.</param>
    public SnapshotReplica(IJournal journal, SnapshotStore store, ulong intervalBlocks, LoadedSnapshot? from = null, long fromAddress = -1)
    {
        ArgumentNullException.ThrowIfNull(journal);
        ArgumentNullException.ThrowIfNull(store);
        _journal = journal;
        _store = store;
        IntervalBlocks = intervalBlocks;
        _applier = new BlockApplier(from?.Exchange ?? new Exchange());
        AppliedBlockNo = from?.Header.BlockNo;
        LastSnapshotBlockNo = from?.Header.BlockNo;
        _appliedHash = from?.Header.BlockHash ?? default;
        _resumeAddress = fromAddress;
    }

    public ulong IntervalBlocks { get; }

    /// <summary>
    /// When the state checksum is computed and given to <see cref="StateChecksums"/>: the whole-state
    /// walk the pair compares, done here instead of on the apply thread (default: never).
    /// </summary>
    public ChecksumSchedule Checksums { get; init; } = new(ChecksumCadence.Never);

    /// <summary>Where the checksums go (block, checksum), on this replica's thread; null: not computed.</summary>
    public Action<ulong, Hash32>? StateChecksums { get; set; }

    /// <summary>The last block applied (null before genesis).</summary>
    public ulong? AppliedBlockNo { get; private set; }

    /// <summary>The block the newest snapshot this replica wrote (or started from) stands after; null if none.</summary>
    public ulong? LastSnapshotBlockNo { get; private set; }

    /// <summary>Snapshots this replica wrote.</summary>
    public long Written { get; private set; }

    /// <summary>The last snapshot written: its size and how long writing it took (serializing, the file, the prune).</summary>
    public (long Bytes, TimeSpan Took)? LastWrite { get; private set; }

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
        bool snapshotDue = false, checksumDue = false, stoppedShort = false;
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
            _appliedHash = records.StoredHash;
            _resumeAddress = address;
            applied++;
            snapshotDue = IntervalBlocks != 0 && blockNo % IntervalBlocks == 0 && blockNo != BlockFormat.GenesisBlockNo;
            checksumDue = Checksums.After(blockNo, records.Header.TimestampNs) && StateChecksums is not null;
            // A snapshot or a checksum due: the scan ends here, and they are done after it. Never inside
            // it: a FasterLog scan holds the log's epoch while it is on an entry, so a long snapshot would
            // hold back every other reader (and eviction), and a checksum handed to the pair (which takes
            // the pair's lock) while another thread, under that lock, scans for a catch-up waiting on
            // this epoch deadlocked the two (seen: a 20 M-order catch-up that never ended).
            bool more = !snapshotDue && !checksumDue && applied < maxBlocks;
            stoppedShort |= !more;
            return more;
        };
        if (_resumeAddress >= 0)
        {
            _journal.Scan(_resumeAddress, visit);
        }
        else
        {
            _journal.Scan(visit);
        }
        if (snapshotDue && TakeSnapshot() && checksumDue)
        {
            StateChecksums!(AppliedBlockNo!.Value, _lastChecksum); // the snapshot computed it
        }
        else if (checksumDue)
        {
            StateChecksums!(AppliedBlockNo!.Value, _applier.Exchange.ComputeChecksum());
        }
        Level = !stoppedShort;
        return applied;
    }

    /// <summary>After a <see cref="Step"/>: it applied everything committed (it did not stop at its bound or at a block due for a snapshot or a checksum).</summary>
    public bool Level { get; private set; }

    /// <summary>
    /// Writes a snapshot of the state after the last block applied (and prunes the store); false when
    /// there is nothing new since the last one (or nothing applied yet).
    /// </summary>
    /// <exception cref="IOException">The snapshot could not be written.</exception>
    public bool TakeSnapshot()
    {
        if (AppliedBlockNo is not { } blockNo || blockNo == LastSnapshotBlockNo)
        {
            return false;
        }
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        _buffer.ResetWrittenCount();
        _lastChecksum = _applier.Exchange.WriteSnapshot(_buffer, blockNo, _appliedHash).StateChecksum;
        _store.Save(_buffer.WrittenSpan, blockNo);
        _store.Prune();
        LastSnapshotBlockNo = blockNo;
        Written++;
        LastWrite = (_buffer.WrittenCount, System.Diagnostics.Stopwatch.GetElapsedTime(started));
        return true;
    }
}
