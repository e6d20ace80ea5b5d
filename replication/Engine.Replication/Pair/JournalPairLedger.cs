using Engine.Core.Book;
using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Core.Ledger;
using Engine.Core.Server;
using Engine.Protocol;

namespace Engine.Replication.Pair;

/// <summary>
/// A node's ledger for its <see cref="PairNode"/>: the journal (FASTER's, or the simulator's on its simulated device) and the <see cref="Exchange"/>
/// replayed from it. As a backup it verifies, journals and applies the primary's blocks (the same
/// <see cref="BlockApplier"/> as replay and the live apply stage) and keeps the state checksums the
/// primary's are compared with; as a primary it only reads its journal (a joining backup's head, the
/// catch-up): the pipeline of the <see cref="EngineNode"/> appends, and that node owns the journal
/// until it stops, after which <see cref="Reopen"/> opens it again for the backup this node becomes.
/// </summary>
/// <remarks>Called under the pair host's lock only.</remarks>
public sealed class JournalPairLedger : IPairLedger, IDisposable
{
    /// <summary>State checksums kept until the primary's for the same block arrives (a few blocks later).</summary>
    private const int KeptChecksums = 64;

    private readonly Func<JournalAnchor?, byte[]?, IJournal> _open;
    private readonly SnapshotSchedule? _snapshots;
    private readonly Func<string> _setAside;
    private readonly string _where;
    private readonly ChecksumCadence _checksumCadence;
    private readonly ChecksumSchedule _checksumSchedule;
    private readonly Func<string, JournalAnchor, CancellationToken, string>? _keepHistory;

    // Keeping the history runs beside the pair (a long copy must not silence the node); stopped before the journal changes again.
    private Task _keeping = Task.CompletedTask;
    private CancellationTokenSource? _keepingCancel;

    // The diverged journal set aside last, whose history an installed snapshot's journal keeps.
    private string? _divergedAside;
    private readonly Action<string> _log;
    private readonly Dictionary<ulong, Hash32> _checksums = [];
    private IJournal _journal = null!;
    private Exchange _exchange = null!;
    private BlockApplier _applier = null!;
    private ChainVerifier _verifier = null!;
    private SnapshotTaker? _taker;
    private readonly TimeProvider _clock;
    private readonly bool _snapshotsOnOwnThread;

    /// <summary>Opens the node's journal with <paramref name="open"/> (which verifies its chain) and recovers its state (<see cref="NodeRecovery"/>).</summary>
    /// <param name="open">Opens the journal, verifying from the anchor given (a snapshot's block; null: genesis): now, after a step-down (<see cref="Reopen"/>) and after a discard;
    /// a journal that does not exist yet starts at the block given (an installed snapshot's), or a new genesis when none.</param>
    /// <param name="setAside">Moves the closed journal aside, kept for forensics, so that <paramref name="open"/> starts a new one from genesis; says where it went.</param>
    /// <param name="where">Names the journal in log lines.</param>
    /// <param name="checksums">When the state checksum is computed (<see cref="ChecksumCadence"/>).</param>
    /// <param name="log">Where the ledger tells what it did.</param>
    /// <param name="snapshots">Where the node's snapshots are and when it takes them (a <see cref="SnapshotTaker"/> follows each journal opened); null: none.</param>
    /// <param name="clock">The snapshots' clock (their time-based interval): the system's, or the simulator's.</param>
    /// <param name="snapshotsOnOwnThread">The snapshot taker runs on its own thread; false: the simulator steps it (<see cref="Snapshots"/>).</param>
    /// <param name="keepHistory">After a snapshot is installed: keeps the blocks before its block that a journal set aside (named as <paramref name="setAside"/> said) holds,
    /// in the new journal's archive, and says what it did (<see cref="JournalHistory.Carry"/>); null: not kept.</param>
    public JournalPairLedger(Func<JournalAnchor?, byte[]?, IJournal> open, Func<string> setAside, string where, ChecksumCadence checksums, Action<string> log,
        SnapshotSchedule? snapshots = null, TimeProvider? clock = null, bool snapshotsOnOwnThread = true, Func<string, JournalAnchor, CancellationToken, string>? keepHistory = null)
    {
        _keepHistory = keepHistory;
        _clock = clock ?? TimeProvider.System;
        _snapshotsOnOwnThread = snapshotsOnOwnThread;
        _open = open;
        _snapshots = snapshots;
        _setAside = setAside;
        _where = where;
        _checksumCadence = checksums;
        _checksumSchedule = new ChecksumSchedule(checksums);
        _log = log;
        Open();
    }

    /// <summary>The ledger of a node on disk: its FASTER journal in <see cref="EngineSettings.JournalDirectory"/>; a diverged one is moved to a sibling directory.</summary>
    public static JournalPairLedger OnDisk(EngineSettings settings, Action<string> log) =>
        new((anchor, startBlock) => Core.Journaling.Journal.Open(settings.JournalSettings(), anchor, startBlock), () =>
        {
            string aside = $"{settings.JournalDirectory}.discarded-{DateTime.UtcNow:yyyyMMddTHHmmssfff}";
            Directory.Move(settings.JournalDirectory, aside);
            return aside;
        }, settings.JournalDirectory, settings.Checksums(), log, settings.Snapshots(),
            keepHistory: (aside, anchor, cancel) => CarryFromAside(aside, anchor, BlockArchive.Of(settings.JournalDirectory), cancel));

    /// <summary>
    /// <see cref="JournalHistory.Carry"/> with the journal set aside under another name while it is read
    /// (<c>journal.carrying-…</c>, its own name back when done): a cleanup of <c>journal.discarded-*</c> (the
    /// drill's, an operator's) does not delete it under its reader. A FasterLog read of a segment deleted
    /// under it never returns: the 300-round drill's pair never re-formed when a node that had to
    /// discard its chain again waited for such a carry to stop.
    /// </summary>
    private static string CarryFromAside(string aside, JournalAnchor anchor, BlockArchive into, CancellationToken cancel)
    {
        string carrying = aside.Replace(".discarded-", ".carrying-", StringComparison.Ordinal);
        Directory.Move(aside, carrying);
        try
        {
            return JournalHistory.Carry(carrying, anchor, into, cancel);
        }
        finally
        {
            try
            {
                Directory.Move(carrying, aside);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // It keeps the in-use name: still there for forensics, and nothing reads it any more.
            }
        }
    }

    /// <summary>The journal: the <see cref="EngineNode"/> this node serves as takes it over (and closes it when it stops).</summary>
    public IJournal Journal => _journal;

    /// <summary>The state replayed and applied so far.</summary>
    public Exchange Exchange => _exchange;

    public ChainHead Head => _verifier.Head;

    /// <summary>What the last opening of the journal recovered.</summary>
    public RecoveryReport Recovery
    {
        get => Volatile.Read(ref _recovery);
        private set => Volatile.Write(ref _recovery, value);
    }

    private RecoveryReport _recovery = null!;

    /// <summary>The snapshots of the journal now open, while this ledger has them (<see cref="LendSnapshots"/>); null when off or lent.</summary>
    public SnapshotTaker? Snapshots => Volatile.Read(ref _taker);

    /// <summary>Hands the journal's snapshot taker to the <see cref="EngineNode"/> that takes the journal over (it stops it before closing the journal).</summary>
    public SnapshotTaker? LendSnapshots()
    {
        SnapshotTaker? taker = _taker;
        _taker = null;
        return taker;
    }

    /// <summary>Snapshots of the primary installed by this ledger (a backup's new journal started from each).</summary>
    public int SnapshotsInstalled { get; private set; }

    /// <summary>The primary's pipeline closed the journal (it stepped down): open it again and replay, as a backup.</summary>
    public void Reopen() => Open();

    /// <param name="startBlock">For a new journal: the block it starts at (an installed snapshot's); null: genesis.</param>
    /// <param name="installed">That snapshot, loaded already.</param>
    private void Open(byte[]? startBlock = null, LoadedSnapshot? installed = null)
    {
        StopSnapshots();
        CloseCursor();
        (_journal, _exchange, RecoveryReport recovered) = NodeRecovery.Recover(anchor => _open(anchor, startBlock), _snapshots?.Store, _where, _log, installed);
        Recovery = recovered;
        _applier = new BlockApplier(_exchange);
        _verifier = new ChainVerifier(_journal.Head);
        lock (_checksums)
        {
            _checksums.Clear();
        }
        _taker = _snapshots is { } schedule ? new SnapshotTaker(_journal, schedule, recovered, _clock, _log, _checksumCadence, _snapshotsOnOwnThread) : null;
        if (_taker is not null)
        {
            // The replica computes the checksums, on its thread, off the path of the blocks.
            _taker.StateChecksums = Keep;
        }
    }

    public bool HasBlock(ulong blockNo, in Hash32 hash)
    {
        // What the pipeline appended and has not committed yet is committed first: a scan reads committed blocks.
        _journal.Flush();
        return _journal.FindBlock(new JournalAnchor(blockNo, hash)) is not null;
    }

    /// <remarks>
    /// A catch-up reads a batch at a time, each continuing where the last stopped: the reader keeps
    /// its journal cursor open between batches (released, as FasterLog wants, before the call
    /// returns), and the block it declined in a copy, so that a batch costs its own bytes, not a new
    /// scan that reads its first pages again (4 MiB each). Any other read, or a read that does not
    /// continue, starts over from the block index.
    /// </remarks>
    public void ReadBlocks(ulong afterBlockNo, ulong throughBlockNo, BlockVisitor visit)
    {
        if (_cursor is null || _cursorNext != afterBlockNo + 1)
        {
            CloseCursor();
            // What the pipeline appended and has not committed yet is committed first: a cursor reads committed blocks.
            _journal.Flush();
            _cursor = _journal.OpenCursor(_journal.LocateFrom(afterBlockNo + 1));
            _cursorNext = afterBlockNo + 1;
        }
        try
        {
            if (_declined.WrittenCount > 0)
            {
                ReadOnlySpan<byte> held = _declined.WrittenSpan;
                BlockFormat.TryReadHeader(held, out BlockHeader heldHeader);
                if (heldHeader.BlockNo > throughBlockNo || !visit(held, _declinedAddress))
                {
                    return;
                }
                _declined.ResetWrittenCount();
                _cursorNext = heldHeader.BlockNo + 1;
            }
            while (true)
            {
                if (!_cursor.TryNext(out ReadOnlySpan<byte> entry, out long address, out _))
                {
                    CloseCursor(); // the committed end when it opened: the next read opens a new one
                    return;
                }
                BlockFormat.TryReadHeader(entry, out BlockHeader header);
                if (header.BlockNo <= afterBlockNo)
                {
                    continue;
                }
                if (header.BlockNo > throughBlockNo || !visit(entry, address))
                {
                    _declined.ResetWrittenCount();
                    System.Buffers.BuffersExtensions.Write(_declined, entry);
                    _declinedAddress = address;
                    _cursorNext = header.BlockNo;
                    return;
                }
                _cursorNext = header.BlockNo + 1;
            }
        }
        finally
        {
            _cursor?.Release();
        }
    }

    /// <summary>The catch-up's cursor, open between its batches; the block it reads next (or holds in <see cref="_declined"/>).</summary>
    private IEntryCursor? _cursor;
    private ulong _cursorNext;
    private readonly System.Buffers.ArrayBufferWriter<byte> _declined = new();
    private long _declinedAddress;

    private void CloseCursor()
    {
        try
        {
            _cursor?.Dispose();
        }
        catch (ObjectDisposedException)
        {
            // the journal under it was closed first (a primary's pipeline closes it at a step-down)
        }
        _cursor = null;
        _declined.ResetWrittenCount();
    }

    public string? AppendReplicated(ReadOnlySpan<byte> block)
    {
        if (_verifier.Check(block, 0, out BlockHeader header) is { } fault)
        {
            return fault.ToString();
        }
        long address = _journal.Append(block);
        _journal.WaitDurable(address);
        var sink = new NullSink();
        // The verifier walked these records with the same reader: none is refused here.
        _applier.ApplyBlock(BlockRecords.Of(block, in header), ref sink);
        if (_taker is null && _checksumSchedule.After(header.BlockNo, header.TimestampNs))
        {
            Keep(header.BlockNo, _exchange.ComputeChecksum());
        }
        return null;
    }

    /// <summary>Keeps this node's checksum after <paramref name="blockNo"/> until the primary's arrives (from the replica's thread, or here when there is no replica).</summary>
    private void Keep(ulong blockNo, Hash32 checksum)
    {
        lock (_checksums)
        {
            _checksums[blockNo] = checksum;
            if (_checksums.Count > KeptChecksums)
            {
                _checksums.Remove(_checksums.Keys.Min());
            }
        }
    }

    public Hash32? StateChecksumAfter(ulong blockNo)
    {
        lock (_checksums)
        {
            return _checksums.Remove(blockNo, out Hash32 checksum) ? checksum : null;
        }
    }

    /// <summary>
    /// FasterLog cannot cut a suffix, so the diverged journal is moved aside (kept for forensics) and
    /// a new one, from genesis, catches up.
    /// </summary>
    public void DiscardDivergedChain()
    {
        StopKeepingHistory();
        StopSnapshots();
        CloseCursor();
        _journal.Dispose();
        string aside = _setAside();
        _divergedAside = aside;
        _log($"backup: moved the diverged journal to {aside}; catching up from genesis");
        Open();
    }

    public CatchUpSnapshot? SnapshotFor(ulong backupHead)
    {
        ulong journalBase = _journal.Base?.BlockNo ?? BlockFormat.GenesisBlockNo;
        if (_snapshots is null || backupHead >= journalBase)
        {
            return null; // our journal holds every block it lacks: those are sent (the history, not a snapshot in its place)
        }
        if (_snapshots.Store.NewestIntact(_log) is not ({ } content, { } header) || header.BlockNo <= backupHead)
        {
            if (backupHead < journalBase)
            {
                _log($"primary: a backup whose chain ends at block {backupHead} needs a snapshot (our journal starts at block {journalBase}), and none is intact");
            }
            return null;
        }
        _journal.Flush();
        byte[]? anchorBlock = null;
        if (_journal.FindBlock(new JournalAnchor(header.BlockNo, header.BlockHash)) is { } address)
        {
            _journal.Scan(address, (entry, _) =>
            {
                anchorBlock = entry.ToArray();
                return false;
            });
        }
        if (anchorBlock is null)
        {
            _log($"primary: the snapshot of block {header.BlockNo} is not of the chain in our journal: not sent");
            return null;
        }
        return new CatchUpSnapshot(content, header.BlockNo, header.BlockHash, anchorBlock);
    }

    public string? InstallSnapshot(byte[] snapshot, ReadOnlySpan<byte> anchorBlock)
    {
        if (_snapshots is null)
        {
            return "this node keeps no snapshots (they are off in its settings), so it cannot start a journal from one";
        }
        SnapshotHeader header;
        Exchange state;
        try
        {
            // Loaded whole before anything of ours is touched: a snapshot that does not load changes nothing.
            state = Exchange.ReadSnapshot(snapshot, out header);
        }
        catch (InvalidDataException e)
        {
            return $"the snapshot does not load: {e.Message}";
        }
        if (JournalStart.Check(anchorBlock, _journal.Head.ClusterId, new JournalAnchor(header.BlockNo, header.BlockHash)) is { } wrong)
        {
            return $"the block sent with it is not the one the snapshot stands after: {wrong}";
        }
        StopKeepingHistory();
        StopSnapshots();
        CloseCursor();
        _journal.Dispose();
        string aside = _setAside();
        _log($"backup: moved the journal to {aside}; installing the primary's snapshot of block {header.BlockNo}");
        // The snapshot first: a crash before the new journal's first commit leaves no journal (a new
        // genesis at the next start, which the primary then sends the snapshot again), never a
        // journal that starts at a block without its state.
        string path;
        try
        {
            path = _snapshots.Store.Save(snapshot, header.BlockNo);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Open(); // no journal now: a new one from genesis, which the next catch-up fills again
            return $"the snapshot could not be written ({e.Message}); this node starts again from genesis";
        }
        Open(anchorBlock.ToArray(), new LoadedSnapshot(state, header, path));
        SnapshotsInstalled++;
        KeepHistory(new JournalAnchor(header.BlockNo, header.BlockHash), aside);
        return null;
    }

    /// <summary>
    /// The blocks before the installed snapshot's that the journals set aside still hold (the one just
    /// replaced, and a diverged one set aside before it) go into the new journal's archive: the history
    /// stays in a live journal of the pair (<see cref="JournalHistory"/>). A failure costs the history here, not the install.
    /// </summary>
    private void KeepHistory(JournalAnchor anchor, string replaced)
    {
        if (_keepHistory is null)
        {
            return;
        }
        string[] asides = [.. new[] { _divergedAside, replaced }.OfType<string>().Distinct()];
        _divergedAside = null;
        var cancel = new CancellationTokenSource();
        _keepingCancel = cancel;
        Func<string, JournalAnchor, CancellationToken, string> keep = _keepHistory;
        _keeping = Task.Run(() =>
        {
            foreach (string aside in asides)
            {
                try
                {
                    _log($"backup: {keep(aside, anchor, cancel.Token)}");
                }
                catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException or JournalCorruptException or JournalFormatException)
                {
                    _log($"backup: the history before block {anchor.BlockNo} in {aside} was not kept: {e.Message}");
                }
            }
        });
    }

    private static readonly TimeSpan StopKeepingWithin = TimeSpan.FromSeconds(2);

    /// <summary>Stops keeping the history (it keeps what it wrote in whole files) before the journal is set aside or closed.</summary>
    private void StopKeepingHistory()
    {
        if (_keepingCancel is not { } cancel)
        {
            return;
        }
        cancel.Cancel();
        if (!_keeping.Wait(StopKeepingWithin))
        {
            // Its reader is stuck (a journal set aside deleted under it, a disk that does not answer): the
            // pair must not wait with it. It writes nothing more (it checks the cancellation before each block).
            _log($"backup: keeping the history did not stop within {StopKeepingWithin.TotalSeconds:F0} s (its journal set aside unreadable?); going on without it");
        }
        else
        {
            cancel.Dispose();
        }
        _keepingCancel = null;
    }

    /// <summary>Stops the snapshot taker this ledger still has (before its journal closes).</summary>
    private void StopSnapshots()
    {
        _taker?.Dispose();
        _taker = null;
    }

    public void Dispose()
    {
        StopKeepingHistory();
        StopSnapshots();
        CloseCursor();
        _journal.Dispose();
    }
}
