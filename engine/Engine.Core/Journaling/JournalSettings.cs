
namespace Engine.Core.Journaling;

/// <summary>When a block counts as journaled.</summary>
public enum Durability
{
    /// <summary>
    /// Once it is in FasterLog's memory. Commits run behind, at most <see cref="JournalSettings.MaxCommitLagBytes"/>
    /// behind the tail. A crash of this process loses what was not yet committed: with a backup
    /// (the process pair) the other copy covers it, as on NonStop; alone, it is a trade of safety for speed.
    /// </summary>
    Memory = 0,

    /// <summary>Only once the commit that covers it has completed (files are opened O_SYNC by FASTER).</summary>
    Disk = 1,
}

/// <summary>
/// Everything a journal is configured by. Defaults are documented here and checked together by
/// <see cref="Validate"/>; <see cref="ToString"/> prints them for the start-up log.
/// </summary>
public sealed record JournalSettings
{
    /// <summary>Directory of the journal: FASTER's segment files (<c>log.N</c>) and its commit files (<c>commits/</c>).</summary>
    public required string Directory { get; init; }

    /// <summary>Default <see cref="Durability.Memory"/>.</summary>
    public Durability Durability { get; init; } = Durability.Memory;

    /// <summary>
    /// log2 of a FASTER page. Default 22 (4 MiB). A block must fit on one page. Page and segment
    /// size are the journal's geometry: fixed when it is created and kept in <c>journal.json</c>.
    /// </summary>
    public int PageSizeBits { get; init; } = 22;

    /// <summary>log2 of FASTER's in-memory log. Default 26 (64 MiB, 16 pages). Pinned memory: budget it.</summary>
    public int MemorySizeBits { get; init; } = 26;

    /// <summary>
    /// log2 of a segment file. Default 26 (64 MiB): compaction frees whole segments only, so a
    /// compacted journal holds up to one segment more than its retention (1 GiB segments kept a
    /// gigabyte of blocks nobody needs); at 10k orders/s (~1.5 MB/s) a segment fills in about 45 s.
    /// </summary>
    public int SegmentSizeBits { get; init; } = 26;

    /// <summary>
    /// Memory durability: how far the tail may run ahead of the last commit before appends wait.
    /// Default 16 MiB: a quarter of the memory, so a slow disk back-pressures the sealer long before
    /// FasterLog's memory fills and its Enqueue starts to spin.
    /// </summary>
    public long MaxCommitLagBytes { get; init; } = 16L << 20;

    /// <summary>
    /// Memory durability: the least time between two commits, in microseconds. Default 20,000. A
    /// commit costs a synchronous write of the data and of a commit record (a new commit file, the old
    /// one deleted): at 2 ms apart a pair at 1k orders/s spent a fifth of a core on commits and their
    /// file-system work. In this mode an acknowledgement never waits for a commit (the backup's memory
    /// is the second copy), so the interval only bounds what a crash of both machines loses.
    /// Disk durability ignores it: there every commit is awaited by someone, and commits only coalesce.
    /// </summary>
    public int MemoryCommitIntervalUs { get; init; } = DefaultMemoryCommitIntervalUs;

    /// <summary>The default of <see cref="MemoryCommitIntervalUs"/>.</summary>
    public const int DefaultMemoryCommitIntervalUs = 20_000;

    /// <summary>
    /// The cluster this node belongs to. A new journal's genesis block carries it (and so does
    /// every later block), so two clusters' chains never share a block; an existing journal whose
    /// genesis names another cluster is refused (<see cref="JournalClusterMismatchException"/>).
    /// Default <see cref="ClusterId.Development"/> (all zeros): a node without cluster credentials.
    /// Set it from the cluster's credentials.
    /// </summary>
    public ClusterId ClusterId { get; init; } = ClusterId.Development;

    /// <summary>Epoch written into the genesis block of a new journal. Default 1.</summary>
    public ulong Epoch { get; init; } = 1;

    /// <summary>Largest block (transactions per block) the journal must hold; checked against the page size.</summary>
    public int MaxTransactionsPerBlock { get; init; } = 1000;

    public JournalSettings Validate()
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(Directory);
        if (PageSizeBits is < 12 or > 30)
        {
            throw new ArgumentOutOfRangeException(nameof(PageSizeBits), PageSizeBits, "a page is 4 KiB (12) to 1 GiB (30)");
        }
        // FASTER needs at least two pages in memory: one being filled while another flushes.
        if (MemorySizeBits < PageSizeBits + 1 || MemorySizeBits > 40)
        {
            throw new ArgumentOutOfRangeException(nameof(MemorySizeBits), MemorySizeBits, $"memory must hold at least two pages (≥ {PageSizeBits + 1}) and at most 2^40 bytes");
        }
        if (SegmentSizeBits < PageSizeBits || SegmentSizeBits > 40)
        {
            throw new ArgumentOutOfRangeException(nameof(SegmentSizeBits), SegmentSizeBits, $"a segment holds at least one page (≥ {PageSizeBits})");
        }
        // An entry never spans pages in FasterLog: the largest block plus its 4-byte entry header must fit.
        long maxEntry = BlockFormat.MaxEntryBytes(MaxTransactionsPerBlock) + 4;
        if (MaxTransactionsPerBlock < 1 || maxEntry > 1L << PageSizeBits)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxTransactionsPerBlock), MaxTransactionsPerBlock, $"a block of {maxEntry} bytes does not fit a page of {1L << PageSizeBits}");
        }
        // The lag must leave room for the page being flushed and the page being filled.
        if (MaxCommitLagBytes < maxEntry || MaxCommitLagBytes > (1L << MemorySizeBits) / 2)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxCommitLagBytes), MaxCommitLagBytes, $"the commit lag must be between one block ({maxEntry}) and half the memory ({(1L << MemorySizeBits) / 2})");
        }
        if (MemoryCommitIntervalUs is < 0 or > 1_000_000)
        {
            throw new ArgumentOutOfRangeException(nameof(MemoryCommitIntervalUs), MemoryCommitIntervalUs, "0 to 1,000,000 µs");
        }
        if (!Enum.IsDefined(Durability))
        {
            throw new ArgumentOutOfRangeException(nameof(Durability), Durability, "memory or disk");
        }
        return this;
    }

    public override string ToString() => Describe();

    private string Describe() =>
        $"journal {Directory}: cluster {ClusterId.Describe()}, durability {Durability.ToString().ToLowerInvariant()}, page {1L << PageSizeBits >> 10} KiB, " +
        $"memory {1L << MemorySizeBits >> 20} MiB, segment {1L << SegmentSizeBits >> 20} MiB, commit lag ≤ {MaxCommitLagBytes >> 10} KiB{(Durability == Durability.Memory ? $" / ≥ {MemoryCommitIntervalUs} µs apart" : "")}, " +
        $"≤ {MaxTransactionsPerBlock} tx/block";
}
