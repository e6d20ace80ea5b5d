using Engine.Core.Chain;
using FASTER.core;

namespace Engine.Core.Journaling;

/// <summary>
/// The ledger on disk: one FasterLog entry per block, our own group committer, recovery that
/// verifies the chain before anything is appended.
/// </summary>
/// <remarks>
/// <para><b>Files.</b> <c>log.N</c>: FASTER's segments. <c>commits/</c>: FASTER's commit records.
/// <c>journal.json</c>: the geometry (page and segment size, which a reader must know to find the
/// entries) and the genesis hash, written once the genesis block is committed, so an interrupted
/// creation (no marker, no commit) is told apart from a journal whose commits were lost (marker, no commit).</para>
/// <para><b>Group commit.</b> One committer thread, one commit in flight: appends set a flag and
/// wake it; each commit covers everything appended before it started, so commits coalesce as the
/// rate grows. <c>AutoCommit</c> would commit per entry, and FASTER's spin-waiting commit would
/// steal one of our two cores.</para>
/// <para><b>Recovery rule.</b> FASTER recovers to the last completed commit: entries after it are
/// gone, as they should be (in disk durability nobody was told they were journaled). The chain is
/// then re-hashed from genesis to the committed end; if any block fails, the journal is not opened
/// and <see cref="JournalCorruptException"/> names the first bad block. Nothing is truncated or
/// repaired silently: the operator restores the node from its peer.</para>
/// <para><b>Cluster and version.</b> A new journal's genesis block carries
/// <see cref="JournalSettings.ClusterId"/>. An existing journal whose genesis names another cluster
/// (<see cref="JournalClusterMismatchException"/>) or whose blocks are of another format version
/// (<see cref="JournalFormatException"/>) is refused before it is re-hashed, and never appended to:
/// a node never continues another cluster's chain, and a chain never changes version.</para>
/// <para>Appends come from one thread (the sealer stage). Everything else is thread-safe.</para>
/// </remarks>
public sealed class Journal : IJournal
{
    public const string SegmentPrefix = "log";
    public const string CommitDirectoryName = "commits";
    public const string CreatedMarker = JournalGeometry.FileName;

    private readonly IDevice _device;
    private readonly FasterLog _log;
    private readonly Thread _committer;
    private readonly SemaphoreSlim _commitWanted = new(0, int.MaxValue);
    private readonly object _durableGate = new();
    private readonly BlockIndex _index;

    // 1 while the committer has been asked for a commit it has not started: appends only release
    // the semaphore on the 0 → 1 edge, so a burst of appends costs one wake-up.
    private int _commitRequested;
    private volatile bool _stopping;

    // Set by CrashForTest: the committer issues no further commit.
    private volatile bool _crashed;
    private volatile Exception? _fault;

    // Cancelled once, when _fault is first set: whoever must act on a failed journal at once (the
    // node halts, a backup stops following) registers here instead of polling Fault.
    private readonly CancellationTokenSource _faulted = new();

    // The test-only fault point (JournalFaultPoint): appends that succeed before one fails; −1 when
    // unset. Read and written by the appending thread only.
    private long _appendsBeforeFault;

    // Mirrors FasterLog.CommittedUntilAddress as of the last completed commit; written by the
    // committer under _durableGate, read anywhere.
    private long _committedUntil;
    private long _commits;
    private long _commitStalls;

    /// <summary>How long one FasterLog commit may take before the committer issues another.</summary>
    private const int CommitStallMs = 2000;

    private Journal(JournalSettings settings, IDevice device, FasterLog log, ChainHead head, BlockIndex index, JournalOpening opening)
    {
        _index = index;
        Opening = opening;
        _appendsBeforeFault = JournalFaultPoint.AppendsBeforeFault();
        Settings = settings;
        _device = device;
        _log = log;
        Head = head;
        _committedUntil = log.CommittedUntilAddress;
        _committer = new Thread(CommitLoop) { IsBackground = true, Name = "journal-committer" };
        _committer.Start();
    }

    public JournalSettings Settings { get; }

    /// <summary>The end of the chain when the journal was opened: the sealer continues after it.</summary>
    public ChainHead Head { get; }

    /// <summary>The cluster whose chain this is (its genesis's, equal to <see cref="JournalSettings.ClusterId"/>).</summary>
    public ClusterId ClusterId => Head.ClusterId;

    public JournalOpening Opening { get; }

    public JournalAnchor? Base
    {
        get => _base?.Value;
        private init => _base = value is { } anchor ? new(anchor) : null;
    }

    // Moved by Compact (the snapshot taker's thread), read anywhere: boxed, so that a reader sees a whole anchor.
    private volatile System.Runtime.CompilerServices.StrongBox<JournalAnchor>? _base;

    // journal.json as on disk: Compact rewrites it with the new base.
    private JournalGeometry _geometry = null!;

    public long LocateFrom(ulong blockNo)
    {
        FasterLog log = _log;
        return _index.LocateFrom(blockNo, (from, until) => new EntryScanner(log, from, until), log.BeginAddress, CommittedUntil);
    }

    public long TailAddress => _log.TailAddress;

    public long CommittedUntil => Volatile.Read(ref _committedUntil);

    public long Commits => Interlocked.Read(ref _commits);

    /// <summary>Commits that did not complete within 2 s and were issued again (should stay 0).</summary>
    public long CommitStalls => Interlocked.Read(ref _commitStalls);

    /// <summary>A commit or an append that failed; sticky: once set, every append and every wait throws <see cref="JournalFaultException"/>.</summary>
    public Exception? Fault => _fault;

    /// <summary>
    /// Cancelled the moment the journal faults (see <see cref="Fault"/>), on the thread that saw the
    /// failure (the committer's, or the appender's): callbacks registered here must be short and must
    /// not wait on the journal. A journal that never faults never cancels it.
    /// </summary>
    public CancellationToken FaultToken => _faulted.Token;

    /// <summary>True when <paramref name="directory"/> holds a journal.</summary>
    public static bool Exists(string directory) =>
        File.Exists(Path.Combine(directory, CreatedMarker)) || File.Exists(Path.Combine(directory, SegmentPrefix + ".0"));

    /// <summary>
    /// Opens the journal in <see cref="JournalSettings.Directory"/>, creating it with a genesis block
    /// if there is none, and verifies the chain first: from <paramref name="anchor"/> (a snapshot's
    /// block, found through the <see cref="BlockIndex"/>) when the journal holds it, else from genesis
    /// (<see cref="Opening"/> says which, and why an anchor was not used).
    /// </summary>
    /// <param name="settings">Where and how.</param>
    /// <param name="anchor">A snapshot's block to verify from; null: from the journal's base (genesis, unless compacted or installed).</param>
    /// <param name="startBlock">For a journal that does not exist yet: the block it starts at instead of a new genesis (a backup installing its primary's snapshot: the snapshot's block, <see cref="JournalStart.Check"/>ed); ignored when the journal exists.</param>
    /// <exception cref="JournalCorruptException">The chain does not verify, or the commits are unreadable or lost.</exception>
    public static Journal Open(JournalSettings settings, JournalAnchor? anchor = null, byte[]? startBlock = null)
    {
        settings.Validate();
        string directory = settings.Directory;
        Directory.CreateDirectory(directory);
        JournalGeometry? geometry = JournalGeometry.TryRead(directory);
        bool created = geometry is not null;
        if (created)
        {
            // The geometry on disk wins over the settings: it decides where entries are.
            settings = (settings with { PageSizeBits = geometry!.PageSizeBits, SegmentSizeBits = geometry.SegmentSizeBits }).Validate();
        }
        else
        {
            // Creation never finished (or never started): nothing here was ever journaled.
            foreach (string leftover in Directory.EnumerateFiles(directory, SegmentPrefix + ".*"))
            {
                File.Delete(leftover);
            }
            string commits = Path.Combine(directory, CommitDirectoryName);
            if (Directory.Exists(commits))
            {
                Directory.Delete(commits, recursive: true);
            }
        }

        IDevice device = Devices.CreateLogDevice(Path.Combine(directory, SegmentPrefix), preallocateFile: false, deleteOnClose: false);
        FasterLog? log = null;
        try
        {
            log = new FasterLog(new FasterLogSettings
            {
                LogDevice = device,
                LogCommitDir = Path.Combine(directory, CommitDirectoryName),
                PageSizeBits = settings.PageSizeBits,
                MemorySizeBits = settings.MemorySizeBits,
                SegmentSizeBits = settings.SegmentSizeBits,
                AutoCommit = false,
                // Recover ourselves: the constructor swallows recovery errors and opens empty.
                TryRecoverLatest = false,
            });
            long recoverStarted = System.Diagnostics.Stopwatch.GetTimestamp();
            try
            {
                log.Recover();
            }
            catch (Exception e)
            {
                throw new JournalCorruptException($"FASTER could not recover the commit in '{directory}': {e.Message}", null, e);
            }

            FasterLog recovered = log;
            BlockIndex index = BlockIndex.Load(directory, log.BeginAddress, log.CommittedUntilAddress);
            ChainHead? verified = JournalRecovery.RecoverHead((from, until) => new EntryScanner(recovered, from, until), log.BeginAddress, log.CommittedUntilAddress,
                settings.PageSizeBits, empty: log.TailAddress == log.BeginAddress, created ? $"{CreatedMarker} exists" : null, directory, settings.ClusterId,
                index, anchor, geometry?.Base, out JournalOpening opening);
            opening = opening with { DeviceRecovery = System.Diagnostics.Stopwatch.GetElapsedTime(recoverStarted) - opening.Verify - opening.AnchorSeek };
            ChainHead head;
            if (verified is { } existing)
            {
                head = existing;
            }
            else
            {
                byte[] first = JournalStart.FirstBlock(settings, startBlock, out head);
                long address = log.Enqueue(first);
                index.Note(head.BlockNo, address);
                log.CommitAsync().AsTask().GetAwaiter().GetResult();
                geometry = new JournalGeometry(settings.PageSizeBits, settings.SegmentSizeBits, head.BlockNo == BlockFormat.GenesisBlockNo ? head.Hash.ToString() : null);
                if (head.BlockNo != BlockFormat.GenesisBlockNo)
                {
                    geometry = geometry.WithBase(new JournalAnchor(head.BlockNo, head.Hash));
                }
                opening = JournalStart.Opened(opening, head, address, anchor);
                geometry.Write(directory);
            }
            index.Rewrite();
            return new Journal(settings, device, log, head, index, opening) { Base = geometry!.Base, _geometry = geometry };
        }
        catch
        {
            log?.Dispose();
            device.Dispose();
            throw;
        }
    }

    /// <remarks>
    /// In order, each step safe to crash after: the archive files (whole or none; a crash makes the
    /// next compaction write the same range again), then <c>journal.json</c> with the new base (from
    /// here recovery starts at it, whatever FASTER still holds before it), then FasterLog's
    /// <c>TruncateUntil</c>, which the next commit persists and which frees the segment files wholly
    /// before the new base (the committer issues that commit even when nothing was appended).
    /// </remarks>
    public Compaction? Compact(JournalAnchor newBase, BlockArchive? archive)
    {
        ulong from = Base?.BlockNo ?? BlockFormat.GenesisBlockNo;
        if (newBase.BlockNo <= from || this.FindBlock(newBase) is not { } address)
        {
            return null;
        }
        (long blocks, long bytes) archived = (0, 0);
        if (archive is not null)
        {
            // Blocks an interrupted compaction archived already are not written again.
            ulong start = archive.LastBlock is { } last && last + 1 > from ? last + 1 : from;
            if (start < newBase.BlockNo)
            {
                using IEntryCursor cursor = OpenCursor(LocateFrom(start));
                archived = archive.Write(cursor, start, newBase.BlockNo);
            }
        }
        JournalGeometry moved = _geometry.WithBase(newBase);
        moved.Write(Settings.Directory);
        _geometry = moved;
        _base = new(newBase);
        _log.TruncateUntil(address);
        _index.DropBefore(address);
        RequestCommit();
        lock (_durableGate)
        {
            // The commit that persists the new begin (and after which FASTER deletes the segments before it).
            while (_log.CommittedBeginAddress < address)
            {
                ThrowIfFaulted();
                Monitor.Wait(_durableGate, 100);
            }
        }
        AwaitSegmentsFreedBefore(address);
        return new Compaction(from, newBase.BlockNo, archived.blocks, archived.bytes);
    }

    /// <summary>
    /// FASTER deletes the segment files before a committed begin on a background task, which goes on
    /// after the log is closed: waits (bounded) until they are gone, so that compaction has freed the
    /// disk when it returns and a reader opened after it does not list a file that is being deleted.
    /// </summary>
    private void AwaitSegmentsFreedBefore(long address)
    {
        long firstKept = address >> Settings.SegmentSizeBits << Settings.SegmentSizeBits;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (FirstSegmentStart(Settings.Directory, Settings.SegmentSizeBits) < firstKept && clock.Elapsed < SegmentDeletionWait)
        {
            Thread.Sleep(5); // a file-system condition: nothing signals it
        }
    }

    private static readonly TimeSpan SegmentDeletionWait = TimeSpan.FromSeconds(10);

    /// <summary>
    /// The address of the first segment file in <paramref name="directory"/> that holds bytes. An empty
    /// one is none: FASTER's device creates a segment file it is asked to read, so a reader that raced
    /// the deletion of a freed segment leaves an empty file where it was.
    /// </summary>
    internal static long FirstSegmentStart(string directory, int segmentSizeBits)
    {
        long first = long.MaxValue;
        foreach (string file in Directory.EnumerateFiles(directory, SegmentPrefix + ".*"))
        {
            if (long.TryParse(Path.GetExtension(file).AsSpan(1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long segment)
                && segment < first && FileLength(file) > 0)
            {
                first = segment;
            }
        }
        return first == long.MaxValue ? 0 : first << segmentSizeBits;
    }

    private static long FileLength(string file)
    {
        try
        {
            return new FileInfo(file).Length;
        }
        catch (IOException)
        {
            return 0; // deleted while we looked
        }
    }

    public IEntryCursor OpenCursor(long fromAddress)
    {
        CheckCommitted(fromAddress);
        return new EntryScanner(_log, fromAddress, _log.CommittedUntilAddress);
    }

    private void CheckCommitted(long fromAddress)
    {
        if (fromAddress < _log.BeginAddress || fromAddress > _log.CommittedUntilAddress)
        {
            throw new ArgumentOutOfRangeException(nameof(fromAddress), fromAddress, $"not in the committed journal ({_log.BeginAddress}..{_log.CommittedUntilAddress})");
        }
    }

    public IEntryCursor OpenFollower(long fromAddress)
    {
        CheckCommitted(fromAddress);
        // No end: FasterLog's iterator stops at the committed end and goes on once more is committed.
        return new EntryScanner(_log, fromAddress, long.MaxValue);
    }

    /// <summary>Visits every committed block, in order (the entry span is valid during the call only). Used to replay the state at start-up.</summary>
    public void Scan(BlockVisitor visit) => Scan(_log.BeginAddress, visit);

    /// <summary>Visits every committed block from <paramref name="fromAddress"/> (an address a scan gave for a block), in order.</summary>
    public void Scan(long fromAddress, BlockVisitor visit)
    {
        CheckCommitted(fromAddress);
        using var scanner = new EntryScanner(_log, fromAddress, _log.CommittedUntilAddress);
        while (scanner.TryNext(out ReadOnlySpan<byte> entry, out long address, out _))
        {
            if (!visit(entry, address))
            {
                return;
            }
        }
    }

    /// <summary>Unix time in nanoseconds from <paramref name="clock"/>: the block timestamp.</summary>
    public static long UnixNanos(TimeProvider clock) => (clock.GetUtcNow() - DateTimeOffset.UnixEpoch).Ticks * 100;

    /// <summary>
    /// Appends one sealed block; returns its address. In memory durability, waits while the
    /// uncommitted tail exceeds the lag limit (back-pressure on the sealer).
    /// </summary>
    /// <exception cref="JournalFaultException">The journal has failed (now or before): nothing of the block was enqueued.</exception>
    public long Append(ReadOnlySpan<byte> block)
    {
        ThrowIfFaulted();
        if (_appendsBeforeFault >= 0 && _appendsBeforeFault-- == 0)
        {
            InjectAppendFault();
        }
        if (Settings.Durability == Durability.Memory && _log.TailAddress - CommittedUntil > Settings.MaxCommitLagBytes)
        {
            WaitLagBelowLimit();
        }
        long address;
        try
        {
            address = _log.Enqueue(block);
        }
        catch (Exception e)
        {
            // Whatever FASTER could not take, nothing after it may be taken either: the chain would
            // have a hole. Sticky, like a failed commit.
            Fail(e);
            throw Faulted(_fault ?? e);
        }
        _index.Note(block, address);
        RequestCommit();
        return address;
    }

    /// <summary>The fault point fires: fail as a device would (see <see cref="JournalFaultPoint"/>).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private void InjectAppendFault()
    {
        Fail(new IOException($"injected by {JournalFaultPoint.AppendAfterBlocksVariable}: the device failed an append after {Interlocked.Read(ref _commits)} commits (a test fault point)"));
        ThrowIfFaulted();
    }

    /// <summary>
    /// For tests: arms the fault point of <see cref="JournalFaultPoint"/> now, on this journal only:
    /// <paramref name="appends"/> more appends succeed, the next one fails. From the appending thread.
    /// </summary>
    internal void FailAppendAfter(long appends)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(appends);
        _appendsBeforeFault = appends;
    }

    /// <summary>
    /// For tests: the process dies now, as under SIGKILL, without leaving it. The committer issues
    /// no further commit (one already in flight completes, as it may when a process is killed), and
    /// the log and its files are closed without the commit <see cref="Dispose"/> makes: the next
    /// <see cref="Open"/> recovers to the last completed commit. The journal is unusable afterwards;
    /// <see cref="Dispose"/> does nothing.
    /// </summary>
    internal void CrashForTest()
    {
        if (_stopping)
        {
            return;
        }
        _crashed = true;
        StopAndClose();
    }

    /// <summary>Stops the committer and closes the log and its device (no commit of its own).</summary>
    private void StopAndClose()
    {
        _stopping = true;
        _commitWanted.Release();
        _committer.Join();
        _log.Dispose();
        _device.Dispose();
        _commitWanted.Dispose();
    }

    /// <summary>True when the block at <paramref name="address"/> counts as journaled in this durability.</summary>
    public bool IsDurable(long address) =>
        Settings.Durability == Durability.Memory || CommittedUntil > address;

    /// <summary>Waits until the block at <paramref name="address"/> is journaled; throws the sticky fault if the journal failed.</summary>
    /// <remarks>
    /// Checks the fault first, also in memory durability (where a block counts once appended): once the
    /// journal has failed, nothing more passes the node's ack gate, even what was appended before, so a
    /// failed journal stops the acknowledgements at once rather than at the next append.
    /// </remarks>
    /// <exception cref="JournalFaultException">The journal has failed.</exception>
    public void WaitDurable(long address)
    {
        ThrowIfFaulted();
        if (IsDurable(address))
        {
            return;
        }
        RequestCommit();
        lock (_durableGate)
        {
            while (CommittedUntil <= address)
            {
                ThrowIfFaulted();
                Monitor.Wait(_durableGate);
            }
        }
    }

    /// <summary>Commits everything appended so far and waits for it.</summary>
    public void Flush()
    {
        long tail = _log.TailAddress;
        if (CommittedUntil >= tail)
        {
            return;
        }
        RequestCommit();
        lock (_durableGate)
        {
            while (CommittedUntil < tail)
            {
                ThrowIfFaulted();
                Monitor.Wait(_durableGate);
            }
        }
    }

    private void RequestCommit()
    {
        if (Volatile.Read(ref _commitRequested) == 0 && Interlocked.Exchange(ref _commitRequested, 1) == 0)
        {
            _commitWanted.Release();
        }
    }

    private void WaitLagBelowLimit()
    {
        RequestCommit();
        lock (_durableGate)
        {
            while (_log.TailAddress - CommittedUntil > Settings.MaxCommitLagBytes)
            {
                ThrowIfFaulted();
                Monitor.Wait(_durableGate);
            }
        }
    }

    private void CommitLoop()
    {
        long intervalTicks = Settings.Durability == Durability.Memory ? Settings.MemoryCommitIntervalUs * System.Diagnostics.Stopwatch.Frequency / 1_000_000 : 0;
        long lastCommit = 0;
        while (true)
        {
            _commitWanted.Wait();
            if (_fault is not null)
            {
                return; // an append failed (the device is gone): no commit after it can be trusted either
            }
            // Memory durability: pace the commits (nobody waits on them unless the lag limit is
            // near, and then the lag check below lets it through at once).
            long wait = lastCommit + intervalTicks - System.Diagnostics.Stopwatch.GetTimestamp();
            if (wait > 0 && !_stopping && _log.TailAddress - _log.CommittedUntilAddress < Settings.MaxCommitLagBytes / 2)
            {
                Thread.Sleep(TimeSpan.FromTicks(Math.Max(1, wait * TimeSpan.TicksPerSecond / System.Diagnostics.Stopwatch.Frequency)));
            }
            if (_crashed)
            {
                return; // the process is gone (CrashForTest): no commit after this instant
            }
            lastCommit = System.Diagnostics.Stopwatch.GetTimestamp();
            Volatile.Write(ref _commitRequested, 0);
            if (_stopping && _log.TailAddress <= _log.CommittedUntilAddress && _log.BeginAddress <= _log.CommittedBeginAddress)
            {
                return;
            }
            try
            {
                if (_log.TailAddress > _log.CommittedUntilAddress || _log.BeginAddress > _log.CommittedBeginAddress)
                {
                    // Bounded: a FasterLog commit was once seen never to complete under heavy CPU
                    // contention (the task hung, nothing failed). After the bound we go round again and
                    // issue a new commit, which covers the same tail; a late completion of the old one
                    // is harmless. Counted, so that it shows.
                    Task commit = _log.CommitAsync().AsTask();
                    if (commit.Wait(CommitStallMs))
                    {
                        commit.GetAwaiter().GetResult(); // surfaces a failure
                        Interlocked.Increment(ref _commits);
                    }
                    else
                    {
                        Interlocked.Increment(ref _commitStalls);
                        RequestCommit();
                    }
                }
            }
            catch (Exception e)
            {
                // A device or commit failure is sticky: no later commit can be trusted to cover
                // what this one lost, so every waiter gets it and the pipeline halts.
                Fail(e);
            }
            lock (_durableGate)
            {
                Volatile.Write(ref _committedUntil, _log.CommittedUntilAddress);
                Monitor.PulseAll(_durableGate);
            }
            if (_fault is not null)
            {
                return;
            }
            PersistIndex();
            if (_log.TailAddress > _log.CommittedUntilAddress)
            {
                RequestCommit(); // appended while we committed: go again without sleeping
            }
        }
    }

    /// <summary>Writes the index entries of what the commit covered (a hint: failing to write it costs the next search time, never the journal).</summary>
    private void PersistIndex()
    {
        try
        {
            _index.Persist(CommittedUntil);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The index is re-derived where it is missing; the journal itself is unaffected.
        }
    }

    private void ThrowIfFaulted()
    {
        if (_fault is { } fault)
        {
            ThrowFaulted(fault);
        }
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void ThrowFaulted(Exception fault) => throw Faulted(fault);

    private static JournalFaultException Faulted(Exception fault) =>
        new($"the journal failed and accepts nothing more: {fault.Message}", fault);

    /// <summary>
    /// Makes <paramref name="error"/> the sticky fault (the first one wins), wakes every waiter so it
    /// throws, and cancels <see cref="FaultToken"/> (its callbacks run here, on this thread).
    /// </summary>
    private void Fail(Exception error)
    {
        if (Interlocked.CompareExchange(ref _fault, error, null) is not null)
        {
            return;
        }
        lock (_durableGate)
        {
            Monitor.PulseAll(_durableGate);
        }
        try
        {
            _faulted.Cancel();
        }
        catch (AggregateException)
        {
            // A listener's callback failed: the fault stands, and the others were told.
        }
    }

    /// <summary>Commits what was appended, stops the committer, closes the log.</summary>
    public void Dispose()
    {
        if (_stopping)
        {
            return;
        }
        try
        {
            if (_fault is null)
            {
                Flush();
            }
        }
        finally
        {
            StopAndClose();
        }
    }

    public override string ToString() => $"{Settings} — head {Head}, committed until {CommittedUntil}, tail {TailAddress}";
}
