using Engine.Core.Ledger;

namespace Engine.Core.Journaling;

/// <summary>When a node snapshots and where the snapshots go.</summary>
/// <param name="Store">The node's snapshot directory and retention.</param>
/// <param name="EveryBlocks">After every block whose number is a multiple of this (0: not by blocks).</param>
/// <param name="Every">When this long has passed since the last one and blocks came since (zero: not by time).</param>
public sealed record SnapshotSchedule(SnapshotStore Store, ulong EveryBlocks, TimeSpan Every)
{
    /// <summary>What becomes of the blocks before the oldest retained snapshot once <see cref="SnapshotStore.Retain"/> snapshots exist (<see cref="IJournal.Compact"/>).</summary>
    public JournalRetention Retention { get; init; } = JournalRetention.Keep;

    /// <summary>Where <see cref="JournalRetention.Archive"/> writes them.</summary>
    public BlockArchive? Archive { get; init; }

    public override string ToString() =>
        $"every {(EveryBlocks == 0 ? "" : $"{EveryBlocks:N0} blocks")}{(EveryBlocks != 0 && Every > TimeSpan.Zero ? " or " : "")}{(Every > TimeSpan.Zero ? $"{Every.TotalSeconds:N0} s" : "")}, keep {Store.Retain}, in {Store.Directory}; " +
        $"older blocks {Retention switch { JournalRetention.Archive => $"archived to {Archive?.Directory}", JournalRetention.Delete => "deleted", _ => "kept in the journal" }}";
}

/// <summary>What becomes of the journal's blocks before the oldest retained snapshot.</summary>
public enum JournalRetention
{
    /// <summary>They stay in the journal: it grows with the history.</summary>
    Keep,

    /// <summary>They move to the <see cref="BlockArchive"/> (our own verifiable files), and the journal's segments before them are freed.</summary>
    Archive,

    /// <summary>The journal's segments before them are freed; nothing keeps them (the snapshots stand for them).</summary>
    Delete,
}

/// <summary>What /status shows of a node's snapshots.</summary>
/// <param name="SnapshotBlock">The newest snapshot's block (written, or recovered from); null if none.</param>
/// <param name="AppliedBlock">The last block the snapshot replica has applied (it follows the journal; the gap to the head is its lag).</param>
/// <param name="Taken">Snapshots written since the node started.</param>
/// <param name="LastBytes">The last one's size.</param>
/// <param name="LastWriteMs">How long the last one took to write, on the replica's thread (the apply thread does not pause for it).</param>
/// <param name="LastError">Why the last attempt failed, if it did (the next one tries again).</param>
public sealed record SnapshotStatus(ulong? SnapshotBlock, ulong? AppliedBlock, long Taken, long? LastBytes, double? LastWriteMs, string? LastError)
{
    /// <summary>The block the journal starts at (genesis: 0): compaction moves it up to the oldest retained snapshot's.</summary>
    public ulong JournalBaseBlock { get; init; }

    /// <summary>Compactions since the node started.</summary>
    public long Compactions { get; init; }
}

/// <summary>
/// Runs a <see cref="SnapshotReplica"/> on a thread of its own (or, in the simulator, when stepped) for one open journal: it starts
/// from the snapshot the journal was anchored at (or from genesis), follows the committed blocks, and
/// writes a snapshot after every block due by <see cref="SnapshotSchedule.EveryBlocks"/>, when
/// <see cref="SnapshotSchedule.Every"/> has passed, when asked (<see cref="RequestAsync"/>: <c>engine
/// admin snapshot</c>), and once level after a recovery that replayed more than the interval.
/// </summary>
/// <remarks>
/// <para><b>Why a replica, not a copy.</b> .NET has no fork(), and the book is a graph of mutable
/// objects: a consistent copy on the apply thread costs time proportional to the state (~50 ms for
/// 1 M resting orders just to walk it), which is the pause the snapshot must not cause. A second
/// state machine fed from the journal pauses the apply thread for nothing at all; it costs a second
/// application of every transaction (off the hot path, on the other core) and the state's memory
/// twice. It may lag; a snapshot stands after whatever block it has applied.</para>
/// <para>Owned by whoever closes the journal: dispose this first (it joins its thread), then the journal.
/// Nothing spins: when level, the thread waits 50 ms (or a request) before looking again.</para>
/// </remarks>
public sealed class SnapshotTaker : IDisposable
{
    private const int PollMs = 50;
    private const int MaxBlocksPerStep = 4096;

    /// <summary>A recovery this slow is what snapshots are for: one is taken as soon as the replica is level, whatever the interval.</summary>
    public static readonly TimeSpan SlowRecovery = TimeSpan.FromSeconds(1);

    private readonly IJournal _journal;
    private readonly SnapshotSchedule _schedule;
    private readonly TimeProvider _clock;
    private readonly Action<string> _log;
    private readonly Thread? _thread;
    private SnapshotReplica? _replica;
    private long _lastAt;
    private readonly AutoResetEvent _wake = new(false);
    private readonly object _gate = new();
    private readonly List<TaskCompletionSource<ulong>> _requests = [];
    private volatile bool _stopping;
    private bool _ended;
    private bool _dueAfterRecovery;
    private volatile SnapshotStatus _status;

    /// <param name="journal">The node's journal, open (its <see cref="IJournal.Opening"/> says where to start).</param>
    /// <param name="schedule">When and where.</param>
    /// <param name="recovered">What the node's recovery did: if it replayed more blocks than the interval, or took <see cref="SlowRecovery"/> or more (large blocks: few of them, many transactions), a snapshot is taken as soon as the replica is level.</param>
    /// <param name="clock">For the time-based interval.</param>
    /// <param name="log">Where snapshots and failures are told.</param>
    /// <param name="checksums">When the state checksum goes to <see cref="StateChecksums"/> (default: never).</param>
    /// <param name="ownThread">Run on a thread of its own (a node); false: only when <see cref="Step"/> is called (the simulator, on its one thread).</param>
    public SnapshotTaker(IJournal journal, SnapshotSchedule schedule, Server.RecoveryReport recovered, TimeProvider clock, Action<string> log,
        ChecksumCadence checksums = default, bool ownThread = true)
    {
        Checksums = checksums;
        _journal = journal;
        _schedule = schedule;
        _clock = clock;
        _log = log;
        ArgumentNullException.ThrowIfNull(recovered);
        _dueAfterRecovery = (schedule.EveryBlocks != 0 && (ulong)recovered.ReplayedBlocks > schedule.EveryBlocks) || recovered.TotalMs >= SlowRecovery.TotalMilliseconds;
        _status = new SnapshotStatus(journal.Opening.AnchorBlockNo, journal.Opening.AnchorBlockNo, 0, null, null, null);
        if (ownThread)
        {
            _thread = new Thread(Run) { IsBackground = true, Name = "snapshot-replica", Priority = ThreadPriority.BelowNormal };
            _thread.Start();
        }
    }

    public SnapshotStatus Status => _status;

    /// <summary>
    /// The state checksum after every block whose number is a multiple of this is computed by the
    /// replica, off the apply thread (0: not here).
    /// </summary>
    public ChecksumCadence Checksums { get; }

    /// <summary>
    /// Where the replica's checksums go, on its thread: a backup keeps them to compare with the
    /// primary's; a primary sends them to its backup. Changes hands with the journal at a takeover;
    /// null: dropped.
    /// </summary>
    public Action<ulong, Protocol.Hash32>? StateChecksums
    {
        get => Volatile.Read(ref _stateChecksums);
        set => Volatile.Write(ref _stateChecksums, value);
    }

    private Action<ulong, Protocol.Hash32>? _stateChecksums;

    /// <summary>Asks for a snapshot of the state once the replica is level with the journal; completes with its block (an existing one's, when nothing came since).</summary>
    public Task<ulong> RequestAsync()
    {
        var request = new TaskCompletionSource<ulong>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            if (_stopping || _ended)
            {
                request.SetException(new InvalidOperationException(_stopping ? "the node's journal is closing" : $"snapshots stopped: {_status.LastError}"));
                return request.Task;
            }
            _requests.Add(request);
            _wake.Set(); // under the lock: Dispose closes the handle under it, after setting _stopping
        }
        return request.Task;
    }

    private void Run()
    {
        try
        {
            while (!_stopping)
            {
                if (Step())
                {
                    _wake.WaitOne(PollMs);
                }
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            if (!_stopping)
            {
                // The journal failed or closed under us: the node halts or stops on its own account; no snapshots from here.
                _log($"snapshots stopped: {e.GetType().Name}: {e.Message}");
                _status = _status with { LastError = $"stopped: {e.Message}" };
            }
        }
        finally
        {
            lock (_gate)
            {
                _ended = true;
            }
            Complete(r => r.TrySetException(new InvalidOperationException("the snapshot replica stopped before taking the snapshot")));
        }
    }

    /// <summary>
    /// One round: applies what is committed and new (a bounded amount), takes a snapshot if one is due,
    /// answers requests; true when the replica is level with the journal (nothing more to do now).
    /// The thread's loop, or the simulator's call.
    /// </summary>
    public bool Step()
    {
        if (_replica is null)
        {
            _replica = Resume();
            _lastAt = _clock.GetTimestamp();
        }
        SnapshotReplica replica = _replica;
        ulong? before = replica.LastSnapshotBlockNo;
        bool level = StepOrSayWhy(replica);
        bool timeDue = _schedule.Every > TimeSpan.Zero && _clock.GetElapsedTime(_lastAt) >= _schedule.Every;
        bool requested;
        lock (_gate)
        {
            requested = _requests.Count > 0;
        }
        ulong? answer = null;
        if (level && (requested || timeDue || _dueAfterRecovery))
        {
            TryTake(replica);
            _dueAfterRecovery = false;
            answer = requested ? replica.LastSnapshotBlockNo : null;
        }
        if (replica.LastSnapshotBlockNo != before)
        {
            Took(replica);
        }
        if (replica.LastSnapshotBlockNo != before || timeDue)
        {
            _lastAt = _clock.GetTimestamp();
        }
        Publish(replica, _status.LastError);
        if (answer is { } block)
        {
            // After the status says so: whoever asked reads it next (a test did, and saw the count before).
            Complete(r => r.TrySetResult(block));
        }
        return level;
    }

    /// <summary>A step of the replica; true when it is level with the journal. A snapshot due in it that could not be written is told, and the step counts as not level (it goes on at once).</summary>
    private bool StepOrSayWhy(SnapshotReplica replica)
    {
        try
        {
            replica.Step(MaxBlocksPerStep);
            return replica.Level;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Failed(replica, e);
            return false;
        }
    }

    private void TryTake(SnapshotReplica replica)
    {
        try
        {
            replica.TakeSnapshot();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Failed(replica, e);
            Complete(r => r.TrySetException(e));
        }
    }

    private void Failed(SnapshotReplica replica, Exception e)
    {
        _log($"snapshot after block {replica.AppliedBlockNo} failed: {e.Message}; trying again at the next one due");
        Publish(replica, e.Message);
    }

    private void Took(SnapshotReplica replica)
    {
        (long bytes, TimeSpan took) = replica.LastWrite!.Value;
        _log($"snapshot after block {replica.LastSnapshotBlockNo:N0}: {bytes:N0} bytes in {took.TotalMilliseconds:F0} ms ({replica.State.OpenOrders:N0} open orders)");
        Publish(replica, Compact());
    }

    /// <summary>
    /// Once <see cref="SnapshotStore.Retain"/> snapshots exist, moves the journal's base up to the
    /// oldest one's block (archiving or deleting what precedes it, per <see cref="SnapshotSchedule.Retention"/>):
    /// every snapshot kept stands at or after the base, so recovery still has one to fall back on
    /// when the newest does not verify. Null when done or not due, else why it failed (tried again
    /// after the next snapshot).
    /// </summary>
    private string? Compact()
    {
        if (_schedule.Retention == JournalRetention.Keep)
        {
            return null;
        }
        IReadOnlyList<(ulong BlockNo, string Path)> retained = _schedule.Store.List();
        if (retained.Count < _schedule.Store.Retain)
        {
            return null;
        }
        ulong oldest = retained[^1].BlockNo;
        try
        {
            if (oldest <= (_journal.Base?.BlockNo ?? 0) || _journal.HashOf(oldest) is not { } hash)
            {
                return null;
            }
            if (_journal.Compact(new JournalAnchor(oldest, hash), _schedule.Retention == JournalRetention.Archive ? _schedule.Archive : null) is { } done)
            {
                _compactions++;
                _log($"journal compacted: it starts at block {done.BaseBlock:N0} now (was {done.FromBlock:N0})" +
                    (_schedule.Retention == JournalRetention.Archive ? $"; {done.ArchivedBlocks:N0} blocks ({done.ArchivedBytes:N0} bytes) archived in {_schedule.Archive?.Directory}" : "; the blocks before it are deleted"));
            }
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            _log($"compaction to block {oldest} failed: {e.Message}; trying again after the next snapshot");
            return $"compaction: {e.Message}";
        }
    }

    private long _compactions;

    private void Publish(SnapshotReplica replica, string? error) =>
        _status = new SnapshotStatus(replica.LastSnapshotBlockNo, replica.AppliedBlockNo, replica.Written,
            replica.LastWrite?.Bytes, replica.LastWrite is { } w ? Math.Round(w.Took.TotalMilliseconds, 1) : null, error)
        {
            JournalBaseBlock = _journal.Base?.BlockNo ?? 0,
            Compactions = _compactions,
        };

    /// <summary>The replica from the snapshot the journal was anchored at (loaded again: the node's own copy is the live state), else from genesis.</summary>
    private SnapshotReplica Resume()
    {
        JournalOpening opening = _journal.Opening;
        LoadedSnapshot? from = null;
        if (opening.AnchorBlockNo is { } anchor)
        {
            // The anchor's hash: the block at ReplayFrom is the anchor block.
            Protocol.Hash32 hash = default;
            _journal.Scan(opening.ReplayFrom, (entry, _) =>
            {
                hash = Chain.BlockRecords.Open(entry).StoredHash;
                return false;
            });
            from = _schedule.Store.Load(anchor, hash, _log);
        }
        if (from is null && _journal.Base is { } journalBase)
        {
            // With no genesis in the journal, a replica from nothing would apply the base's successors to an empty state.
            throw new InvalidDataException($"the snapshot replica cannot start: the journal starts at block {journalBase.BlockNo} and the snapshot it opened at did not load again");
        }
        var replica = new SnapshotReplica(_journal, _schedule.Store, _schedule.EveryBlocks, from, from is null ? -1 : opening.ReplayFrom)
        {
            Checksums = new ChecksumSchedule(Checksums),
            StateChecksums = (blockNo, checksum) => StateChecksums?.Invoke(blockNo, checksum),
        };
        if (from is null && opening.AnchorBlockNo is not null)
        {
            _log("the snapshot replica starts from genesis: the snapshot the journal opened at did not load again");
        }
        return replica;
    }

    private void Complete(Action<TaskCompletionSource<ulong>> how)
    {
        TaskCompletionSource<ulong>[] done;
        lock (_gate)
        {
            done = [.. _requests];
            _requests.Clear();
        }
        foreach (TaskCompletionSource<ulong> request in done)
        {
            how(request);
        }
    }

    /// <summary>Stops the thread (a snapshot being written completes first) and waits for it.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_stopping)
            {
                return;
            }
            _stopping = true;
        }
        _wake.Set();
        _thread?.Join();
        if (_thread is null)
        {
            Complete(r => r.TrySetException(new InvalidOperationException("the snapshot replica stopped before taking the snapshot")));
        }
        lock (_gate)
        {
            _wake.Dispose();
        }
    }
}
