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

    private JournalReader(IDevice device, FasterLog log, int pageSizeBits)
    {
        _device = device;
        _log = log;
        _pageSizeBits = pageSizeBits;
    }

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
        return new JournalReader(device, log, geometry.PageSizeBits);
    }

    public long BeginAddress => _log.BeginAddress;

    public long CommittedUntil => _log.CommittedUntilAddress;

    /// <summary>
    /// Re-hashes the whole committed chain from its genesis block (block format version 2, or 1 for
    /// audit). With <paramref name="expectedCluster"/>, genesis must name that cluster; without, the
    /// chain is of whatever cluster its genesis names (every block must name the same).
    /// </summary>
    public VerifyReport Verify(ClusterId? expectedCluster = null) => VerifyChain(_log, _pageSizeBits, _log.BeginAddress, _log.CommittedUntilAddress, expectedCluster: expectedCluster);

    /// <summary>
    /// Verifies the committed blocks from <paramref name="from"/> (the address where an earlier
    /// verification stopped: its <see cref="VerifyReport.CommittedUntil"/>) as the continuation of
    /// <paramref name="trusted"/>, the head that verification reached: re-hashes only what is new.
    /// </summary>
    public VerifyReport VerifyFrom(long from, ChainHead trusted) => from <= _log.CommittedUntilAddress
        ? VerifyChain(_log, _pageSizeBits, from, _log.CommittedUntilAddress, trusted)
        : new VerifyReport(0, 0, 0, null, new BlockFault(trusted.BlockNo + 1, from, $"the journal's committed end {_log.CommittedUntilAddress} is before address {from}: not the journal verified before"),
            _log.CommittedUntilAddress, TimeSpan.Zero);

    /// <summary>Visits every committed block in order (entry span valid during the call only), from <paramref name="from"/> (an entry's address) or the beginning.</summary>
    public void Scan(BlockVisitor visit, long? from = null)
    {
        using var scanner = new EntryScanner(_log, from ?? _log.BeginAddress, _log.CommittedUntilAddress);
        while (scanner.TryNext(out ReadOnlySpan<byte> entry, out long address, out _))
        {
            if (!visit(entry, address))
            {
                return;
            }
        }
    }

    /// <summary>Verifies entries [<paramref name="from"/>, <paramref name="until"/>) of <paramref name="log"/>: <see cref="JournalRecovery.VerifyChain"/> over FasterLog's entries.</summary>
    internal static VerifyReport VerifyChain(FasterLog log, int pageSizeBits, long from, long until, ChainHead? trusted = null, ClusterId? expectedCluster = null) =>
        JournalRecovery.VerifyChain((start, end) => new EntryScanner(log, start, end), pageSizeBits, from, until, trusted, expectedCluster);

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
