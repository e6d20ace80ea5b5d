using Engine.Core.Chain;
using FASTER.core;

namespace Engine.Core.Journaling;

/// <summary>
/// Opens a journal read-only (FASTER's read-only mode: nothing on disk changes) to verify or dump
/// it; also the verifier that <see cref="Journal.Open"/> runs over the log it recovered.
/// </summary>
public sealed class JournalReader : IDisposable
{
    private readonly IDevice _device;
    private readonly FasterLog _log;
    private readonly int _pageSizeBits;
    private readonly JournalAnchor? _base;

    private JournalReader(IDevice device, FasterLog log, int pageSizeBits, JournalAnchor? journalBase, BlockArchive archive, string directory, int segmentSizeBits)
    {
        _device = device;
        _log = log;
        _pageSizeBits = pageSizeBits;
        _base = journalBase;
        Archive = archive;
        _directory = directory;
        _segmentSizeBits = segmentSizeBits;
        _begin = Math.Max(log.BeginAddress, Journal.FirstSegmentStart(directory, segmentSizeBits));
    }

    private readonly string _directory;
    private readonly int _segmentSizeBits;

    /// <summary>
    /// FASTER's read-only recovery found no commit record it could read: the journal reads as empty,
    /// as it always has. Observed (2026-12-03) on every journal a running node was writing, with or
    /// without compaction and before it: the commit directory holds empty older records beside the
    /// newest, and the reader recovers none; the cause inside FASTER is not pinned down. Stop the
    /// node first, or read its state through its admin endpoint.
    /// </summary>
    public bool Unrecovered => _log.CommittedUntilAddress <= _log.BeginAddress && _log.BeginAddress <= 64;

    /// <summary>The block the live journal starts at when not genesis (compacted, or installed from a snapshot); null: genesis.</summary>
    public JournalAnchor? Base => _base;

    /// <summary>The journal's archive (<c>DIR/archive</c>): the blocks compaction took out of it, if it archived them.</summary>
    public BlockArchive Archive { get; }

    /// <summary>Opens the journal in <paramref name="directory"/> read-only.</summary>
    /// <exception cref="DirectoryNotFoundException">There is no journal there.</exception>
    public static JournalReader Open(string directory)
    {
        if (!Journal.Exists(directory))
        {
            throw new DirectoryNotFoundException($"no journal in '{directory}' (expected {Journal.SegmentPrefix}.0 and {Journal.CommitDirectoryName}/)");
        }
        JournalGeometry geometry = JournalGeometry.TryRead(directory)
            ?? throw new JournalCorruptException($"'{directory}' has no {JournalGeometry.FileName}: its creation never finished, or it is not a journal");
        IDevice device = Devices.CreateLogDevice(Path.Combine(directory, Journal.SegmentPrefix), preallocateFile: false, deleteOnClose: false);
        var log = new FasterLog(new FasterLogSettings
        {
            LogDevice = device,
            LogCommitDir = Path.Combine(directory, Journal.CommitDirectoryName),
            ReadOnlyMode = true,
            TryRecoverLatest = false,
            PageSizeBits = geometry.PageSizeBits,
            SegmentSizeBits = geometry.SegmentSizeBits,
            MemorySizeBits = geometry.PageSizeBits + 1,
        });
        try
        {
            log.RecoverReadOnly();
        }
        catch (Exception e)
        {
            log.Dispose();
            device.Dispose();
            throw new JournalCorruptException($"FASTER could not recover the journal's commit in '{directory}': {e.Message}", null, e);
        }
        return new JournalReader(device, log, geometry.PageSizeBits, geometry.Base, BlockArchive.Of(directory), directory, geometry.SegmentSizeBits);
    }

    /// <summary>
    /// Where the entries begin. FASTER's read-only recovery leaves its begin at the log's first address
    /// even after a truncation freed the segments before it, so the reader starts at the first segment
    /// file still there when that is later (a segment starts on a page, where an entry starts).
    /// </summary>
    public long BeginAddress => _begin;

    private long _begin;

    public long CommittedUntil => _log.CommittedUntilAddress;

    /// <summary>
    /// Re-hashes the whole chain this directory holds (block format version 2, or 1 for audit): from
    /// genesis through the archive (when the journal was compacted with one) and on through the live
    /// journal from its base, as one chain; when the blocks before the base are not here (deleted by
    /// compaction, or never held: a journal installed from a snapshot), from the base, trusted as
    /// <c>journal.json</c> names it (<see cref="VerifyReport.StartedAtBase"/>). With
    /// <paramref name="expectedCluster"/>, the chain must be that cluster's.
    /// </summary>
    public VerifyReport Verify(ClusterId? expectedCluster = null)
    {
        if (_base is not { } journalBase || journalBase.BlockNo == BlockFormat.GenesisBlockNo || Unrecovered)
        {
            return VerifyChain(_log, _pageSizeBits, _begin, _log.CommittedUntilAddress, expectedCluster: expectedCluster, checkRoots: true);
        }
        var clock = System.Diagnostics.Stopwatch.StartNew();
        long baseAddress = FindAddress(journalBase.BlockNo);
        if (baseAddress < 0)
        {
            return new VerifyReport(0, 0, 0, null, new BlockFault(journalBase.BlockNo, _begin, $"the journal's base, block {journalBase.BlockNo} ({JournalGeometry.FileName}), is not in it"), _log.CommittedUntilAddress, clock.Elapsed);
        }
        // The archive first, from genesis (or from its own first block, when the journal it came from was
        // itself installed from a snapshot), as far as it goes before the base.
        ChainVerifier? verifier = null;
        ulong? archiveFrom = null;
        BlockFault? fault = null;
        long archived = 0;
        try
        {
            Archive.Scan(block =>
            {
                if (verifier is not null && verifier.Blocks + (archiveFrom is null ? 0 : 1) > 0 && verifier.Head.BlockNo + 1 >= journalBase.BlockNo)
                {
                    return false; // the live journal holds the rest (an interrupted compaction may have archived past its base)
                }
                archived++;
                if (verifier is null && BlockFormat.TryReadHeader(block.Span, out BlockHeader first) is null && first.BlockNo != BlockFormat.GenesisBlockNo)
                {
                    if (JournalStart.Trust(block.Span, expectedCluster, null, out ChainHead start) is { } wrong)
                    {
                        fault = new BlockFault(first.BlockNo, -1, $"the archive's first block: {wrong}");
                        return false;
                    }
                    verifier = new ChainVerifier(start) { CheckRoots = true };
                    archiveFrom = first.BlockNo;
                    return true;
                }
                verifier ??= new ChainVerifier(expectedCluster) { CheckRoots = true };
                fault = verifier.Check(block.Span, -1, out _);
                return fault is null;
            });
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            fault = new BlockFault(verifier is null || verifier.Blocks == 0 ? 0 : verifier.Head.BlockNo + 1, -1, $"the archive in '{Archive.Directory}': {e.Message}");
        }
        verifier ??= new ChainVerifier(expectedCluster) { CheckRoots = true };
        if (fault is not null)
        {
            return new VerifyReport(verifier.Blocks, verifier.Transactions, verifier.Bytes, verifier.Blocks > 0 ? verifier.Head : null, fault, _log.CommittedUntilAddress, clock.Elapsed) { ArchivedBlocks = archived, FormatVersion = verifier.FormatVersion };
        }
        bool whole = archived > 0 && verifier.Head.BlockNo + 1 == journalBase.BlockNo;
        VerifyReport live;
        if (whole)
        {
            // The archive's verifier goes on into the live journal: one chain, and one coverage of records roots.
            live = VerifyChain(_log, _pageSizeBits, baseAddress, _log.CommittedUntilAddress, checkRoots: true, continuing: verifier);
        }
        else
        {
            // No history before the base here: the base block is taken as journal.json names it (its own hash checked), and the chain verified after it.
            string? wrong = "it is not there";
            ChainHead trusted = default;
            long afterBase = -1;
            using (var cursor = new EntryScanner(_log, baseAddress, _log.CommittedUntilAddress))
            {
                if (cursor.TryNext(out ReadOnlySpan<byte> entry, out _, out long next))
                {
                    wrong = JournalStart.Trust(entry, expectedCluster, journalBase, out trusted);
                    afterBase = next;
                }
            }
            if (wrong is not null)
            {
                return new VerifyReport(0, 0, 0, null, new BlockFault(journalBase.BlockNo, baseAddress, $"the journal's base: {wrong}"),
                    _log.CommittedUntilAddress, clock.Elapsed) { StartedAtBase = journalBase.BlockNo };
            }
            live = VerifyChain(_log, _pageSizeBits, afterBase, _log.CommittedUntilAddress, trusted, checkRoots: true);
            live = live with { Blocks = live.Blocks + 1 };
        }
        return live with
        {
            // A continued verifier's counts are the archive's and the live journal's together.
            Elapsed = clock.Elapsed,
            ArchivedBlocks = whole ? archived : 0,
            StartedAtBase = whole ? archiveFrom : journalBase.BlockNo,
            FormatVersion = whole ? verifier.FormatVersion : BlockFormat.Version,
        };
    }

    /// <summary>The address of block <paramref name="blockNo"/> in the live journal; −1 if it is not there.</summary>
    private long FindAddress(ulong blockNo)
    {
        long found = -1;
        Scan(from: _begin, visit: (entry, address) =>
        {
            if (BlockFormat.TryReadHeader(entry, out BlockHeader header) is not null || header.BlockNo > blockNo)
            {
                return false;
            }
            if (header.BlockNo == blockNo)
            {
                found = address;
                return false;
            }
            return true;
        });
        return found;
    }

    /// <summary>
    /// Verifies the committed blocks from <paramref name="from"/> (the address where an earlier
    /// verification stopped: its <see cref="VerifyReport.CommittedUntil"/>) as the continuation of
    /// <paramref name="trusted"/>, the head that verification reached: re-hashes only what is new.
    /// </summary>
    public VerifyReport VerifyFrom(long from, ChainHead trusted) => from <= _log.CommittedUntilAddress
        ? VerifyChain(_log, _pageSizeBits, from, _log.CommittedUntilAddress, trusted, checkRoots: true)
        : new VerifyReport(0, 0, 0, null, new BlockFault(trusted.BlockNo + 1, from, $"the journal's committed end {_log.CommittedUntilAddress} is before address {from}: not the journal verified before"),
            _log.CommittedUntilAddress, TimeSpan.Zero);

    /// <summary>
    /// Visits every committed block in order (entry span valid during the call only), from
    /// <paramref name="from"/> (an entry's address) or the beginning; from the beginning of a
    /// compacted journal, the archived blocks first (with address −1), then the live journal from its base.
    /// </summary>
    /// <exception cref="InvalidDataException">An archive file is damaged.</exception>
    public void Scan(BlockVisitor visit, long? from = null)
    {
        ulong liveFrom = BlockFormat.GenesisBlockNo;
        if (Unrecovered)
        {
            return;
        }
        if (from is null && _base is { } journalBase && journalBase.BlockNo != BlockFormat.GenesisBlockNo)
        {
            liveFrom = journalBase.BlockNo;
            bool going = Archive.Scan(block => BlockFormat.TryReadHeader(block.Span, out BlockHeader header, acceptVersion1: true) is not null
                || header.BlockNo >= liveFrom || visit(block.Span, -1));
            if (!going)
            {
                return;
            }
        }
        long start = from ?? _begin;
        bool visited = false;
        while (true)
        {
            try
            {
                ScanLive(visit, start, liveFrom, ref visited);
                return;
            }
            catch (FasterException) when (!visited && start == _begin && Journal.FirstSegmentStart(_directory, _segmentSizeBits) is long now && now > _begin)
            {
                // The first segment file there when this reader opened was being deleted (a compaction of
                // the journal's writer, which FASTER finishes in the background): begin at the first one now.
                _begin = now;
                start = now;
            }
        }
    }

    private void ScanLive(BlockVisitor visit, long start, ulong liveFrom, ref bool visited)
    {
        using var scanner = new EntryScanner(_log, start, _log.CommittedUntilAddress);
        while (scanner.TryNext(out ReadOnlySpan<byte> entry, out long address, out _))
        {
            // Blocks before the base that FASTER has not freed yet are not the journal's any more.
            if (liveFrom != BlockFormat.GenesisBlockNo && BlockFormat.TryReadHeader(entry, out BlockHeader header) is null && header.BlockNo < liveFrom)
            {
                continue;
            }
            visited = true;
            if (!visit(entry, address))
            {
                return;
            }
        }
    }

    /// <summary>Verifies entries [<paramref name="from"/>, <paramref name="until"/>) of <paramref name="log"/>: <see cref="JournalRecovery.VerifyChain"/> over FasterLog's entries.</summary>
    internal static VerifyReport VerifyChain(FasterLog log, int pageSizeBits, long from, long until, ChainHead? trusted = null, ClusterId? expectedCluster = null, bool checkRoots = false, ChainVerifier? continuing = null) =>
        JournalRecovery.VerifyChain((start, end) => new EntryScanner(log, start, end), pageSizeBits, from, until, trusted, expectedCluster, checkRoots: checkRoots, continuing: continuing);

    /// <summary>[<paramref name="reached"/>, <paramref name="until"/>) is the unused rest of one page, ending at its boundary.</summary>
    internal static bool IsEmptyPageTail(long reached, long until, int pageSizeBits)
    {
        long pageMask = (1L << pageSizeBits) - 1;
        return (until & pageMask) == 0 && reached < until && (reached >> pageSizeBits) == ((until - 1) >> pageSizeBits);
    }

    public void Dispose()
    {
        _log.Dispose();
        _device.Dispose();
    }
}

/// <summary>Called for each block entry; return false to stop.</summary>
public delegate bool BlockVisitor(ReadOnlySpan<byte> entry, long address);
