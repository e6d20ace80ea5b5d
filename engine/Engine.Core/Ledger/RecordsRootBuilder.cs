using System.Runtime.InteropServices;
using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Protocol;

namespace Engine.Core.Ledger;

/// <summary>
/// Computes the records roots of the journal's blocks off the sealer: a thread of its own reads the
/// committed blocks as they come, hashes their records into an RFC 6962 tree, and hands the root of
/// every run of blocks it has read to the sealer (<see cref="IRecordsRootSource"/>), which writes it
/// into the records-root section of the next block it opens. The sections then cover every block
/// once, in order, from where this builder started.
/// </summary>
/// <remarks>
/// <para><b>Off the order path.</b> A tree costs about two small SHA-256 calls a record (~0.3 µs
/// each here): on the sealing thread that would cap it near 1-2 M transactions/s. Here the sealer's
/// only cost is one volatile read when a block opens, and 48 header bytes in the block that takes a
/// root. The builder reads the journal (what is committed), not the ring, so it never holds up a
/// producer, and under a load it cannot follow it falls behind in the journal and catches up later.
/// It wakes every <see cref="JournalFollower.Interval"/> (not per order): a root covers whatever arrived in that time,
/// one section per interval at most (a block per order at moderate rates: one section per ~100 blocks
/// at 10k/s).</para>
/// <para><b>Where it starts.</b> After the last block a section in the journal covers (a takeover or a
/// restart continues the coverage the old primary left: it flushes the journal first, so that a
/// section appended but not committed is seen); in a journal with no section in its last
/// <see cref="StartWindowBlocks"/> blocks (one written before roots existed, or by a node running
/// without them), after the journal's head: older blocks are never covered.</para>
/// <para><b>One hand-over in flight.</b> A root waits in a single slot until the sealer takes it; the
/// builder reads on meanwhile and hands over the next run (starting after the last) once the slot is
/// free. The slot is written by this thread and emptied by the sealer's: a flag with release/acquire
/// order, no lock, no allocation.</para>
/// </remarks>
public sealed class RecordsRootBuilder : JournalFollower, IRecordsRootSource
{
    /// <summary>How far back the start looks for the last section.</summary>
    public const int StartWindowBlocks = 1 << 16;

    /// <summary>The most records held for one run (a sealer that stops taking roots stops the reading here): 32 MiB of leaf hashes.</summary>
    public const int MaxRunRecords = 1 << 20;

    private readonly List<Hash32> _leaves = [];

    private RecordsRoot _ready;
    private int _readyFull; // 1: _ready holds a root the sealer has not taken

    private bool _started;
    private ulong _nextBlock;  // the next block to read
    private ulong _runFirst;   // the first block whose records are in _leaves
    private long _readFrom;    // where in the journal the next block is (at or before it)

    /// <param name="journal">The journal whose blocks it covers.</param>
    /// <param name="interval">How often it reads what was committed (zero: never on its own; <see cref="Poll"/> is called by the owner, as the simulator and tests do).</param>
    /// <param name="log">Where it says where it started, and a fault.</param>
    /// <param name="yieldToOrderPath">See <see cref="JournalFollower"/>: false only for a test that waits for the thread.</param>
    public RecordsRootBuilder(IJournal journal, TimeSpan interval, Action<string>? log = null, bool yieldToOrderPath = true)
        : base(journal, interval, log, "records roots", yieldToOrderPath) => Start();

    /// <summary>
    /// Called (on this builder's thread) when a root has waited a whole interval for the sealer to
    /// take it and someone wants it (<see cref="WantRoot"/>: a client asked for a proof it would give):
    /// no transaction came to open a block, so the owner asks the sealer for a block that carries only
    /// the root (<see cref="StateProbe.SealRoot"/>). Only on demand: an idle ledger does not grow by
    /// itself (the pair's two journals end on the same block when the orders stop), and the last
    /// transactions' root waits for the next order or the first proof asked of them.
    /// </summary>
    public Action? RootWaiting { get; set; }

    private int _waitingPolls;
    private int _wanted;

    /// <summary>A root is wanted now (a proof was asked that waits for one): the next one that waits goes into a block of its own. From any thread.</summary>
    public void WantRoot() => Volatile.Write(ref _wanted, 1);

    /// <summary>Roots handed to the sealer so far.</summary>
    public long RootsBuilt { get; private set; }

    /// <summary>The first block not yet in a root handed over (what the next root starts at); 0 before the start.</summary>
    public ulong CoveredBefore => Volatile.Read(ref _runFirst);

    /// <summary>The sealer's side: the root ready, if any, taken out of the slot.</summary>
    public bool TryTake(out RecordsRoot root)
    {
        if (Volatile.Read(ref _readyFull) == 0)
        {
            root = default;
            return false;
        }
        root = _ready;
        Volatile.Write(ref _readyFull, 0);
        Volatile.Write(ref _wanted, 0); // into a block now: what was wanted of it is done
        return true;
    }

    /// <summary>
    /// Reads the blocks committed since the last call and hands over the root of those read when
    /// the slot is free; returns the blocks read. Called by the builder's thread, or (with a zero
    /// interval) by its owner; never by two threads at once.
    /// </summary>
    public override int Poll()
    {
        if (!_started)
        {
            FindStart();
            _started = true;
        }
        int read = 0;
        Cursor ??= Journal.OpenFollower(_readFrom);
        try
        {
            while (_leaves.Count < MaxRunRecords && Cursor.TryNext(out ReadOnlySpan<byte> entry, out _, out long next))
            {
                if (BlockFormat.TryReadHeader(entry, out BlockHeader header) is { } wrong)
                {
                    throw new InvalidDataException($"records roots: a block the journal holds does not read: {wrong}");
                }
                if (header.BlockNo < _nextBlock)
                {
                    _readFrom = next; // before the start (the scan began at an indexed address before it)
                    continue;
                }
                if (header.BlockNo != _nextBlock)
                {
                    throw new InvalidDataException($"records roots: block {header.BlockNo} where {_nextBlock} was expected");
                }
                ReadOnlySpan<byte> body = BlockFormat.Body(entry, in header);
                for (int at = 0; at < body.Length; at += LedgerRecord.Bytes)
                {
                    _leaves.Add(Merkle.LeafHash(body.Slice(at, LedgerRecord.Bytes)));
                }
                _nextBlock++;
                _readFrom = next;
                read++;
            }
        }
        finally
        {
            Cursor.Release();
        }
        HandOver();
        if (Volatile.Read(ref _readyFull) == 1)
        {
            if (_waitingPolls++ >= 1 && Interlocked.Exchange(ref _wanted, 0) == 1)
            {
                RootWaiting?.Invoke();
            }
        }
        else
        {
            _waitingPolls = 0;
        }
        return read;
    }

    private void HandOver()
    {
        // A run of blocks without records (those that carried only a root) waits for one with: handed
        // over alone, its root would ask for another empty block, and that for another.
        if (_nextBlock == _runFirst || _leaves.Count == 0 || Volatile.Read(ref _readyFull) == 1)
        {
            return;
        }
        _ready = new RecordsRoot(_runFirst, checked((uint)(_nextBlock - _runFirst)), checked((uint)_leaves.Count), Merkle.Root(CollectionsMarshal.AsSpan(_leaves)));
        Volatile.Write(ref _readyFull, 1);
        _leaves.Clear();
        Volatile.Write(ref _runFirst, _nextBlock);
        RootsBuilt++;
    }

    /// <summary>After the last block a section covers (looked for in the last <see cref="StartWindowBlocks"/> blocks), else after the head.</summary>
    private void FindStart()
    {
        Journal.Flush(); // a section appended but not committed must be seen: the next root starts after it
        ulong head = Journal.Head.BlockNo;
        ulong windowStart = head > StartWindowBlocks ? head - StartWindowBlocks : 0;
        ulong firstLive = (Journal.Base?.BlockNo ?? BlockFormat.GenesisBlockNo) + 1;
        ulong from = Math.Max(windowStart, firstLive);
        ulong? coveredUntil = null;
        Journal.Scan(Journal.LocateFrom(from), (entry, _) =>
        {
            if (BlockFormat.TryReadHeader(entry, out BlockHeader header) is null && BlockFormat.TryReadRecordsRoot(entry, in header, out RecordsRoot root))
            {
                coveredUntil = root.LastBlock;
            }
            return true;
        });
        // A journal whose whole live part was searched, without a section: every block of it.
        _nextBlock = coveredUntil is { } last ? last + 1 : windowStart < firstLive ? firstLive : head + 1;
        Volatile.Write(ref _runFirst, _nextBlock);
        _readFrom = Journal.LocateFrom(_nextBlock);
        Log($"records roots start at block {_nextBlock} ({(coveredUntil is { } c ? $"sections cover up to block {c}" : "no section found")}), every {Interval.TotalMilliseconds:0.#} ms");
    }
}
