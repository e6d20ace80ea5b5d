using Engine.Core.Chain;

namespace Engine.Core.Journaling;

/// <summary>
/// The journal on a <see cref="SimulatedJournalDevice"/>, for the deterministic simulator: the
/// contract of <see cref="IJournal"/>, kept as <see cref="Journal"/> keeps it on FasterLog, with no
/// thread, timer or clock of its own. Opening recovers through the same code as
/// <see cref="Journal.Open"/> (<see cref="JournalRecovery"/>).
/// </summary>
/// <remarks>
/// <para><b>Where it is stricter than <see cref="Journal"/>.</b> Commits happen only when the
/// simulator completes them (<see cref="SimulatedJournalDevice.CommitPending"/>, or a wait, see
/// <see cref="SimulatedJournalDevice.BlockUntil"/>), never in the background, so a crash loses
/// exactly what was appended after the last commit; the real journal's committer may have committed
/// some of it by then. The contract promises only the weaker: a crash keeps every committed block,
/// and at most the blocks appended after them.</para>
/// <para><b>What it does not model.</b> FasterLog's pages (an entry that does not fit the rest of a
/// page moves to the next, see <see cref="SimulatedJournalDevice"/>) and its memory limit (the
/// commit lag is kept, through <see cref="SimulatedJournalDevice.BlockUntil"/>); the commit
/// statistics (<see cref="Journal.Commits"/>: see <see cref="SimulatedJournalDevice.Commits"/>).</para>
/// <para>One thread: the simulator's.</para>
/// </remarks>
public sealed class SimulatedJournal : IJournal
{
    private readonly SimulatedJournalDevice _device;
    private readonly CancellationTokenSource _faulted = new();
    private readonly BlockIndex _index;
    private Exception? _fault;
    private bool _closed;
    private bool _crashed;

    private SimulatedJournal(SimulatedJournalDevice device, JournalSettings settings, ChainHead head, BlockIndex index, JournalOpening opening)
    {
        _index = index;
        Opening = opening;
        _device = device;
        Settings = settings;
        Head = head;
    }

    public JournalSettings Settings { get; }

    public ChainHead Head { get; }

    /// <summary>The cluster whose chain this is (its genesis's, equal to <see cref="JournalSettings.ClusterId"/>).</summary>
    public ClusterId ClusterId => Head.ClusterId;

    public SimulatedJournalDevice Device => _device;

    public JournalOpening Opening { get; }

    public JournalAnchor? Base => _device.Base;

    /// <remarks>On the simulated device the base moves at once (as journal.json is rewritten) and nothing is freed; there is no archive.</remarks>
    public Compaction? Compact(JournalAnchor newBase, BlockArchive? archive)
    {
        ThrowIfClosed();
        ulong from = Base?.BlockNo ?? BlockFormat.GenesisBlockNo;
        if (newBase.BlockNo <= from || this.FindBlock(newBase) is null)
        {
            return null;
        }
        _device.MoveBase(newBase);
        return new Compaction(from, newBase.BlockNo, 0, 0);
    }

    public long LocateFrom(ulong blockNo)
    {
        ThrowIfClosed();
        return _index.LocateFrom(blockNo, _device.OpenEntries, SimulatedJournalDevice.BeginAddress, CommittedUntil);
    }

    public long CommittedUntil => _device.CommittedUntil;

    public IEntryCursor OpenCursor(long fromAddress)
    {
        ThrowIfClosed();
        return _device.OpenEntries(fromAddress, CommittedUntil);
    }

    public IEntryCursor OpenFollower(long fromAddress)
    {
        ThrowIfClosed();
        return new Follower(this, fromAddress);
    }

    /// <summary>Follows the simulated medium: a bounded cursor at a time, another when more was committed.</summary>
    private sealed class Follower(SimulatedJournal journal, long from) : IEntryCursor
    {
        private IEntryCursor? _current;
        private long _next = from;
        private long _until = -1;

        public bool TryNext(out ReadOnlySpan<byte> entry, out long address, out long nextAddress)
        {
            while (true)
            {
                if (_current is not null && _current.TryNext(out entry, out address, out nextAddress))
                {
                    _next = nextAddress;
                    return true;
                }
                long committed = journal.CommittedUntil;
                if (committed <= _until || committed <= _next)
                {
                    entry = default;
                    address = nextAddress = _next;
                    return false;
                }
                _current?.Dispose();
                _current = journal._device.OpenEntries(_next, committed);
                _until = committed;
            }
        }

        public void Release() => _current?.Release();

        public void Dispose() => _current?.Dispose();
    }

    public long TailAddress => _device.TailAddress;

    public long Commits => _device.Commits;

    public long CommitStalls => 0;

    public Exception? Fault => _fault;

    public CancellationToken FaultToken => _faulted.Token;

    /// <summary>
    /// Opens the journal on <paramref name="device"/>, as <see cref="Journal.Open"/> opens a directory:
    /// cuts what follows the last commit (a torn write), refuses a device that was created but holds
    /// no commit, another cluster's chain or another format version, re-hashes the chain from genesis
    /// to the committed end; on a new device, writes and commits the genesis block of
    /// <see cref="JournalSettings.ClusterId"/> and <see cref="JournalSettings.Epoch"/>.
    /// <see cref="JournalSettings.Directory"/> is not used (the device has a name of its own); the
    /// device's page size, once created, wins over the settings' as the geometry on disk does.
    /// </summary>
    /// <exception cref="JournalCorruptException">The chain does not verify, or the commits are lost (and its two kinds, <see cref="JournalClusterMismatchException"/> and <see cref="JournalFormatException"/>).</exception>
    /// <exception cref="InvalidOperationException">A journal is open on the device already.</exception>
    /// <exception cref="IOException">The commit of a new journal's genesis block was armed to fail.</exception>
    public static SimulatedJournal Open(SimulatedJournalDevice device, JournalSettings settings, JournalAnchor? anchor = null, byte[]? startBlock = null)
    {
        ArgumentNullException.ThrowIfNull(device);
        settings.Validate();
        if (device.IsOpen)
        {
            throw new InvalidOperationException($"a journal is open on the device '{device.Name}' already: dispose it, or crash the device, before opening another");
        }
        if (device.Created)
        {
            settings = (settings with { PageSizeBits = device.PageSizeBits }).Validate();
        }
        device.Recover();
        BlockIndex index = BlockIndex.InMemory();
        ChainHead? verified = JournalRecovery.RecoverHead(device.OpenEntries, SimulatedJournalDevice.BeginAddress, device.CommittedUntil, settings.PageSizeBits,
            empty: device.CommittedUntil == SimulatedJournalDevice.BeginAddress, device.Created ? "the device was created" : null, device.Name, settings.ClusterId,
            index, anchor, device.Base, out JournalOpening opening);
        ChainHead head;
        if (verified is { } existing)
        {
            head = existing;
        }
        else
        {
            // As Journal.Open: a genesis of its own, or the block it is installed at.
            byte[] first = JournalStart.FirstBlock(settings, startBlock, out head);
            long address = device.Enqueue(first);
            index.Note(head.BlockNo, address);
            device.CommitGenesis(settings.PageSizeBits, head.BlockNo == BlockFormat.GenesisBlockNo ? null : new JournalAnchor(head.BlockNo, head.Hash));
            opening = JournalStart.Opened(opening, head, address, anchor);
        }
        var journal = new SimulatedJournal(device, settings, head, index, opening);
        device.Attach(journal);
        return journal;
    }

    /// <inheritdoc/>
    /// <remarks>
    /// Fails, as <see cref="Journal.Append"/> does, when an append fault is armed
    /// (<see cref="SimulatedJournalDevice.FailNextWrite"/>) or the entry does not fit a page (FasterLog
    /// refuses it). In memory durability, an append over the commit lag waits (see
    /// <see cref="SimulatedJournalDevice.BlockUntil"/>).
    /// </remarks>
    public long Append(ReadOnlySpan<byte> block)
    {
        ThrowIfClosed();
        ThrowIfFaulted();
        if (_device.TakeAppendFault())
        {
            Fail(new IOException($"simulated: the device '{_device.Name}' failed an append ({nameof(SimulatedJournalDevice)}.{nameof(SimulatedJournalDevice.FailNextWrite)})"));
            ThrowIfFaulted();
        }
        if (Settings.Durability == Durability.Memory && _device.TailAddress - CommittedUntil > Settings.MaxCommitLagBytes)
        {
            Await(() => _device.TailAddress - CommittedUntil <= Settings.MaxCommitLagBytes, "an append waits for the commit lag to shrink");
        }
        if (SimulatedJournalDevice.Allocated(block.Length) > 1L << Settings.PageSizeBits)
        {
            Fail(new IOException($"simulated: an entry of {block.Length} bytes does not fit a page of {1L << Settings.PageSizeBits} (FasterLog refuses it)"));
            ThrowIfFaulted();
        }
        long address = _device.Enqueue(block);
        _index.Note(block, address);
        return address;
    }

    public bool IsDurable(long address) =>
        Settings.Durability == Durability.Memory || CommittedUntil > address;

    public void WaitDurable(long address)
    {
        ThrowIfClosed();
        ThrowIfFaulted();
        if (!IsDurable(address))
        {
            Await(() => CommittedUntil > address, $"waiting for the block at {address} to be committed");
        }
    }

    public void Flush()
    {
        ThrowIfClosed();
        long tail = _device.TailAddress;
        if (CommittedUntil < tail)
        {
            Await(() => CommittedUntil >= tail, $"a flush waits for a commit up to {tail}");
        }
    }

    public void Scan(BlockVisitor visit) => Scan(SimulatedJournalDevice.BeginAddress, visit);

    public void Scan(long fromAddress, BlockVisitor visit)
    {
        ThrowIfClosed();
        if (fromAddress < SimulatedJournalDevice.BeginAddress || fromAddress > CommittedUntil)
        {
            throw new ArgumentOutOfRangeException(nameof(fromAddress), fromAddress, $"not in the committed journal ({SimulatedJournalDevice.BeginAddress}..{CommittedUntil})");
        }
        using IEntryCursor cursor = _device.OpenEntries(fromAddress, CommittedUntil);
        while (cursor.TryNext(out ReadOnlySpan<byte> entry, out long address, out _))
        {
            if (!visit(entry, address))
            {
                return;
            }
        }
    }

    /// <summary>A clean close, as <see cref="Journal.Dispose"/>: commits what was appended (unless faulted), then lets go of the device. Nothing after a crash.</summary>
    public void Dispose()
    {
        if (_closed)
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
            _closed = true;
            _device.Detach(this);
        }
    }

    /// <summary>
    /// Where the real journal blocks until the committer's commit: the simulator runs until
    /// <paramref name="done"/> (or a fault, or a crash), or, with no simulator hooked, the pending
    /// commit completes now.
    /// </summary>
    private void Await(Func<bool> done, string what)
    {
        if (_device.BlockUntil is { } block)
        {
            block(() => done() || _fault is not null || _crashed);
        }
        else
        {
            _device.CommitPending();
        }
        ThrowIfClosed();
        ThrowIfFaulted();
        if (!done())
        {
            throw new InvalidOperationException($"simulated journal '{_device.Name}': {what}, and the simulation returned without it: the real journal would wait forever here");
        }
    }

    /// <summary>
    /// Makes <paramref name="error"/> the sticky fault (the first one wins) and cancels
    /// <see cref="FaultToken"/> (its callbacks run here), as <see cref="Journal"/> does.
    /// </summary>
    internal void Fail(Exception error)
    {
        if (_fault is not null)
        {
            return;
        }
        _fault = error;
        try
        {
            _faulted.Cancel();
        }
        catch (AggregateException)
        {
            // A listener's callback failed: the fault stands, and the others were told.
        }
    }

    /// <summary>The device crashed under this journal: the process that held it is gone.</summary>
    internal void Crashed()
    {
        _crashed = true;
        _closed = true;
    }

    private void ThrowIfClosed()
    {
        if (_closed)
        {
            throw new ObjectDisposedException(nameof(SimulatedJournal), _crashed
                ? $"the device '{_device.Name}' crashed under this journal: the process that held it is gone; open the device again"
                : $"this journal on the device '{_device.Name}' was disposed");
        }
    }

    private void ThrowIfFaulted()
    {
        if (_fault is { } fault)
        {
            throw new JournalFaultException($"the journal failed and accepts nothing more: {fault.Message}", fault);
        }
    }

    public override string ToString() => $"simulated journal '{_device.Name}' — head {Head}, committed until {CommittedUntil}, tail {TailAddress}";
}
