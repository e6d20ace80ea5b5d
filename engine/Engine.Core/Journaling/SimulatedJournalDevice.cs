using System.Buffers.Binary;

namespace Engine.Core.Journaling;

/// <summary>Which write <see cref="SimulatedJournalDevice.FailNextWrite"/> fails.</summary>
public enum SimulatedWriteFault
{
    /// <summary>The next <see cref="SimulatedJournal.Append"/> (as <see cref="JournalFaultPoint"/> fails one on the real journal).</summary>
    Append = 0,

    /// <summary>The next commit (as a full or broken disk fails FasterLog's commit).</summary>
    Commit = 1,
}

/// <summary>
/// The disk under a <see cref="SimulatedJournal"/>, for the deterministic simulator: an object that
/// outlives the simulated process, and that nothing changes behind the simulator's back (no threads,
/// no timers, no clock, no randomness but the <see cref="Random"/> given to <see cref="Crash"/>).
/// </summary>
/// <remarks>
/// <para><b>Layout.</b> Entries are laid out as FasterLog lays them out: from address 64, each a
/// 4-byte little-endian length, the block, padding to 4 bytes; an entry's address is where its length
/// is. (FasterLog also moves an entry that does not fit the rest of a page to the next page; this
/// device has no pages, so its addresses are FasterLog's only while a journal stays within one page.)</para>
/// <para><b>What is where.</b> An appended entry is in the process's memory (volatile) until a
/// commit writes it to the medium and then writes the commit record (<see cref="CommittedUntil"/>).
/// Commits happen only when the simulator says so: <see cref="CommitPending"/>, or a wait of the
/// journal (see <see cref="BlockUntil"/>). <see cref="Crash"/> loses the volatile part; a torn crash
/// also leaves part of it on the medium after the commit record, which the next
/// <see cref="SimulatedJournal.Open"/> cuts, as FasterLog recovers to its last commit and writes over
/// whatever follows it.</para>
/// <para>One thread: the simulator's.</para>
/// </remarks>
public sealed class SimulatedJournalDevice
{
    /// <summary>The first entry's address (FasterLog's first valid address).</summary>
    public const long BeginAddress = 64;

    private const int LengthBytes = 4;

    // [0, _tail) as one array: the medium holds [BeginAddress, _mediumEnd), the process's memory
    // [_committedUntil, _tail). Past _mediumEnd and _tail the bytes are zero.
    private byte[] _bytes = new byte[4096];
    private long _committedUntil = BeginAddress;
    private long _mediumEnd = BeginAddress;
    private long _tail = BeginAddress;
    private bool _failNextAppend;
    private bool _failNextCommit;

    public SimulatedJournalDevice(string name = "simulated-journal")
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        Name = name;
    }

    /// <summary>Names the device in messages (where <see cref="Journal"/> names its directory).</summary>
    public string Name { get; }

    /// <summary>The commit record: every entry below it is on the medium and survives a crash.</summary>
    public long CommittedUntil => _committedUntil;

    /// <summary>The end of what the open journal appended (committed or not).</summary>
    public long TailAddress => _tail;

    /// <summary>Appended and not committed: what <see cref="CommitPending"/> would commit and <see cref="Crash"/> would lose.</summary>
    public bool HasPending => _tail > _committedUntil;

    /// <summary>Bytes on the medium past the commit record: the torn write a crash left, until the next open cuts it.</summary>
    public long BytesBeyondCommit => _mediumEnd - _committedUntil;

    /// <summary>Bytes the last <see cref="SimulatedJournal.Open"/> cut after the commit record (a torn write); 0 when there were none.</summary>
    public long LastRecoveryCut { get; private set; }

    /// <summary>Commits that completed, genesis included.</summary>
    public long Commits { get; private set; }

    /// <summary>Crashes so far.</summary>
    public long Crashes { get; private set; }

    /// <summary>The genesis block was committed once (the <c>journal.json</c> of this device): from then on the chain must be recovered, never started afresh.</summary>
    public bool Created { get; private set; }

    /// <summary>The block the journal starts at when not genesis (installed from a snapshot, or compacted): what <see cref="JournalGeometry.Base"/> records on disk.</summary>
    public JournalAnchor? Base { get; private set; }

    /// <summary>The page size the journal was created with (its geometry); 0 before.</summary>
    public int PageSizeBits { get; private set; }

    /// <summary>True while a <see cref="SimulatedJournal"/> is open on the device.</summary>
    public bool IsOpen => Attached is not null;

    /// <summary>
    /// Where the real journal blocks (<see cref="IJournal.WaitDurable"/> and
    /// <see cref="IJournal.Flush"/> before their commit, an append over the commit lag), the simulated
    /// one calls this with the condition it waits for; the simulator runs its other steps (among them
    /// <see cref="CommitPending"/>) until the condition holds, and returns. If it returns with the
    /// condition still false and no fault, the wait throws <see cref="InvalidOperationException"/>
    /// (it would never end). Null, the default: the pending commit completes at once, as on a disk
    /// that commits the moment it is asked.
    /// </summary>
    public Action<Func<bool>>? BlockUntil { get; set; }

    internal SimulatedJournal? Attached { get; private set; }

    /// <summary>
    /// Commits everything appended: it reaches the medium, then the commit record moves to the tail.
    /// Does nothing and returns false when nothing is pending, no journal is open, or the journal has
    /// faulted (the real committer stops at the first fault). A commit armed to fail
    /// (<see cref="FailNextWrite"/>) fails instead: nothing is committed, the journal's
    /// <see cref="IJournal.Fault"/> is set, false is returned.
    /// </summary>
    public bool CommitPending()
    {
        if (Attached is not { } journal || journal.Fault is not null || !HasPending)
        {
            return false;
        }
        if (_failNextCommit)
        {
            _failNextCommit = false;
            journal.Fail(new IOException($"simulated: the device '{Name}' failed a commit of [{_committedUntil}, {_tail}) ({nameof(SimulatedJournalDevice)}.{nameof(FailNextWrite)})"));
            return false;
        }
        CommitAll();
        return true;
    }

    /// <summary>
    /// Arms a fault: the next write of that kind fails as the real journal's would (see
    /// <see cref="SimulatedWriteFault"/>), once. It stays armed, across crashes and reopenings, until a
    /// write takes it; the genesis block of a new journal is not an append, but its commit is a commit.
    /// </summary>
    public void FailNextWrite(SimulatedWriteFault kind)
    {
        switch (kind)
        {
            case SimulatedWriteFault.Append:
                _failNextAppend = true;
                break;
            case SimulatedWriteFault.Commit:
                _failNextCommit = true;
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, "append or commit");
        }
    }

    /// <summary>
    /// The process dies now. The open journal is gone (every later call on it throws
    /// <see cref="ObjectDisposedException"/>); what was appended and not committed is lost. With
    /// <paramref name="tearLastWrite"/> and something pending, the write that was carrying it to the
    /// medium is cut short: the pending entries before a randomly chosen one reach the medium, that one
    /// only in part (from one byte of its length to all but its last byte), and the commit record does
    /// not move. <paramref name="rng"/> decides which entry and where, and nothing else.
    /// </summary>
    public void Crash(Random rng, bool tearLastWrite)
    {
        ArgumentNullException.ThrowIfNull(rng);
        Attached?.Crashed();
        Attached = null;
        Crashes++;
        long lost = _tail;
        _mediumEnd = _committedUntil;
        if (tearLastWrite && HasPending)
        {
            var entries = new List<(long Address, int Length)>();
            for (long address = _committedUntil; address < _tail; address += Allocated(LengthAt(address)))
            {
                entries.Add((address, LengthAt(address)));
            }
            (long start, int length) = entries[rng.Next(entries.Count)];
            _mediumEnd = start + rng.NextInt64(1, LengthBytes + length);
        }
        Clear(_mediumEnd, lost);
        _tail = _committedUntil;
    }

    /// <summary>Disarms the faults <see cref="FailNextWrite"/> armed and no write has taken yet (the disk was fixed).</summary>
    public void Disarm()
    {
        _failNextAppend = false;
        _failNextCommit = false;
    }

    /// <summary>
    /// For the simulator's checks, which must change nothing: visits the entries the process holds now
    /// (committed, or appended and still in its memory) from <paramref name="from"/> (an entry's
    /// address, or the value an earlier call returned) until <paramref name="visit"/> returns false;
    /// returns the address after the last entry visited (<paramref name="from"/> if none). No commit
    /// happens, unlike a journal's flush-then-scan.
    /// </summary>
    public long VisitHeld(long from, BlockVisitor visit)
    {
        ArgumentNullException.ThrowIfNull(visit);
        ArgumentOutOfRangeException.ThrowIfLessThan(from, BeginAddress);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(from, _tail);
        var cursor = new Cursor(_bytes, from, _tail);
        long next = from;
        while (cursor.TryNext(out ReadOnlySpan<byte> entry, out long address, out long after))
        {
            next = after;
            if (!visit(entry, address))
            {
                break;
            }
        }
        return next;
    }

    /// <summary>Flips bits of one byte on the medium (<paramref name="mask"/> XOR): damage a recovery must refuse.</summary>
    public void FlipByte(long address, byte mask = 0x20)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(address, BeginAddress);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(address, _mediumEnd);
        _bytes[address] ^= mask;
    }

    /// <summary>Opening: nothing of the process's memory is left; what follows the commit record on the medium (a torn write) is cut.</summary>
    internal void Recover()
    {
        _tail = _committedUntil;
        LastRecoveryCut = _mediumEnd - _committedUntil;
        Clear(_committedUntil, _mediumEnd);
        _mediumEnd = _committedUntil;
    }

    internal void Attach(SimulatedJournal journal)
    {
        if (Attached is not null)
        {
            throw new InvalidOperationException($"a journal is open on the device '{Name}' already: dispose it, or crash the device, before opening another");
        }
        Attached = journal;
    }

    /// <summary>A clean close: the process lets go of its memory (the journal committed what it could first).</summary>
    internal void Detach(SimulatedJournal journal)
    {
        if (Attached == journal)
        {
            Attached = null;
            Clear(_committedUntil, _tail);
            _tail = _committedUntil;
        }
    }

    /// <summary>Takes an armed append fault: true if this append must fail.</summary>
    internal bool TakeAppendFault()
    {
        bool fail = _failNextAppend;
        _failNextAppend = false;
        return fail;
    }

    /// <summary>The bytes an entry of <paramref name="length"/> takes: its length, itself, padding to 4.</summary>
    internal static long Allocated(int length) => LengthBytes + ((length + 3L) & ~3L);

    /// <summary>Appends one entry to the process's memory; returns its address.</summary>
    internal long Enqueue(ReadOnlySpan<byte> entry)
    {
        long address = _tail;
        long next = address + Allocated(entry.Length);
        if (next > _bytes.Length)
        {
            Array.Resize(ref _bytes, (int)Math.Min(Array.MaxLength, Math.Max(next, 2L * _bytes.Length)));
        }
        BinaryPrimitives.WriteInt32LittleEndian(_bytes.AsSpan((int)address, LengthBytes), entry.Length);
        entry.CopyTo(_bytes.AsSpan((int)address + LengthBytes));
        _tail = next;
        return address;
    }

    /// <summary>Creating a journal: its genesis block is committed at once, as <see cref="Journal.Open"/> waits for that commit.</summary>
    /// <exception cref="IOException">A commit was armed to fail: nothing is committed, the device is not created.</exception>
    internal void CommitGenesis(int pageSizeBits, JournalAnchor? installedAt = null)
    {
        if (_failNextCommit)
        {
            _failNextCommit = false;
            Clear(_committedUntil, _tail);
            _tail = _committedUntil;
            throw new IOException($"simulated: the device '{Name}' failed the commit of a new journal's genesis block ({nameof(SimulatedJournalDevice)}.{nameof(FailNextWrite)})");
        }
        CommitAll();
        Created = true;
        PageSizeBits = pageSizeBits;
        Base = installedAt;
    }

    /// <summary>Compaction moved the journal's base (what journal.json records on disk: it survives a crash).</summary>
    internal void MoveBase(JournalAnchor newBase) => Base = newBase;

    /// <summary>A cursor over the entries in [<paramref name="from"/>, <paramref name="until"/>), which must be on the medium.</summary>
    internal IEntryCursor OpenEntries(long from, long until)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(from, BeginAddress);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(until, _mediumEnd);
        return new Cursor(_bytes, from, until);
    }

    private void CommitAll()
    {
        _committedUntil = _tail;
        _mediumEnd = _tail;
        Commits++;
    }

    private int LengthAt(long address) => BinaryPrimitives.ReadInt32LittleEndian(_bytes.AsSpan((int)address, LengthBytes));

    private void Clear(long from, long until)
    {
        if (until > from)
        {
            Array.Clear(_bytes, (int)from, (int)(until - from));
        }
    }

    /// <summary>
    /// Reads entries as FasterLog's scan does; stops at <c>until</c>, or where a length does not
    /// describe an entry that ends by <c>until</c> (the verification then reports the entries ending
    /// before the committed end).
    /// </summary>
    private sealed class Cursor(byte[] bytes, long from, long until) : IEntryCursor
    {
        private long _next = from;

        public bool TryNext(out ReadOnlySpan<byte> entry, out long address, out long nextAddress)
        {
            entry = default;
            address = _next;
            nextAddress = _next;
            if (_next + LengthBytes > until)
            {
                return false;
            }
            int length = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan((int)_next, LengthBytes));
            if (length <= 0 || _next + LengthBytes + length > until)
            {
                return false;
            }
            entry = bytes.AsSpan((int)_next + LengthBytes, length);
            nextAddress = _next + Allocated(length);
            _next = nextAddress;
            return true;
        }

        public void Release()
        {
        }

        public void Dispose()
        {
        }
    }
}
