using System.Diagnostics;
using Engine.Core.Chain;
using Engine.Protocol;

namespace Engine.Core.Journaling;

/// <summary>Walks a journal's entries in log order, without copying them: each span is valid until the next call (or <see cref="Release"/>).</summary>
public interface IEntryCursor : IDisposable
{
    /// <summary>The next entry, its address and the address after it; false at the end of the range (or where the entries stop).</summary>
    bool TryNext(out ReadOnlySpan<byte> entry, out long address, out long nextAddress);

    /// <summary>
    /// Lets go of the entry <see cref="TryNext"/> gave (its span is invalid from here): FasterLog holds
    /// its epoch while an entry is out, per thread, so a cursor kept between calls from different
    /// threads is released before its thread moves on.
    /// </summary>
    void Release();
}

/// <summary>A block a journal's opening may verify from, trusted as genesis is: the block a snapshot stands after.</summary>
public readonly record struct JournalAnchor(ulong BlockNo, Hash32 Hash);

/// <summary>What opening a journal verified.</summary>
/// <param name="AnchorBlockNo">The anchor the chain was verified from; null: from genesis (none was given, or <paramref name="AnchorRefused"/>).</param>
/// <param name="ReplayFrom">Where replay starts: the anchor block's address (replay skips the anchor itself), or the journal's first.</param>
/// <param name="VerifiedBlocks">Blocks re-hashed.</param>
/// <param name="Verify">How long that took.</param>
/// <param name="AnchorRefused">Why an anchor given was not used; null when it was, or none was given.</param>
public sealed record JournalOpening(ulong? AnchorBlockNo, long ReplayFrom, long VerifiedBlocks, TimeSpan Verify, string? AnchorRefused)
{
    /// <summary>The block the journal starts at (see <see cref="JournalGeometry.BaseBlockNo"/>): 0 for genesis. Without an anchor, state can only be replayed from genesis.</summary>
    public ulong BaseBlockNo { get; init; }

    /// <summary>How long the device's own recovery took before any of ours (FASTER's: reading its commit record and the log's tail pages back into memory).</summary>
    public TimeSpan DeviceRecovery { get; init; }

    /// <summary>How long finding the anchor took (a seek through the block index, then a read of at most about <see cref="BlockIndex.EveryBytes"/>).</summary>
    public TimeSpan AnchorSeek { get; init; }
}

/// <summary>Opens a cursor over the entries in [<paramref name="from"/>, <paramref name="until"/>).</summary>
internal delegate IEntryCursor OpenEntries(long from, long until);

/// <summary>
/// What opening a journal checks, whatever holds its entries (a FasterLog for <see cref="Journal"/>
/// and <see cref="JournalReader"/>, the <see cref="SimulatedJournalDevice"/> for <see cref="SimulatedJournal"/>): one
/// verification, so the two cannot accept different chains.
/// </summary>
internal static class JournalRecovery
{
    /// <summary>
    /// The head of the committed chain in [<paramref name="begin"/>, <paramref name="committedUntil"/>),
    /// verified from <paramref name="anchor"/> when the journal holds that block with that hash, else
    /// re-hashed from genesis; null when nothing was ever committed and the journal was never created
    /// (the caller starts a new chain with a genesis block).
    /// </summary>
    /// <param name="open">The entries, as recovered: nothing after the last completed commit.</param>
    /// <param name="begin">The first entry's address.</param>
    /// <param name="committedUntil">The end of the last completed commit.</param>
    /// <param name="pageSizeBits">log2 of the page, where an empty page tail may end the entries (see <see cref="VerifyChain"/>).</param>
    /// <param name="empty">Nothing was recovered.</param>
    /// <param name="created">Evidence that the genesis block was once committed (<c>journal.json</c>, the device's flag); null if none.</param>
    /// <param name="where">The journal, for messages.</param>
    /// <param name="expected">The node's cluster: genesis must name it.</param>
    /// <param name="index">The journal's block index: finds the anchor, and notes every block verified.</param>
    /// <param name="anchor">A block trusted as genesis is (a snapshot's); null to verify from genesis.</param>
    /// <param name="journalBase">The block the journal starts at when not genesis (<see cref="JournalGeometry.Base"/>): it must be there, and the chain is verified from it when there is no anchor.</param>
    /// <param name="opening">What was verified, from where.</param>
    /// <exception cref="JournalCorruptException">The journal was created but nothing was recovered, or the chain does not verify.</exception>
    /// <exception cref="JournalFormatException">Its genesis is of a format version this engine does not continue.</exception>
    /// <exception cref="JournalClusterMismatchException">Its genesis names another cluster than <paramref name="expected"/>.</exception>
    public static ChainHead? RecoverHead(OpenEntries open, long begin, long committedUntil, int pageSizeBits, bool empty, string? created, string where, ClusterId expected,
        BlockIndex index, JournalAnchor? anchor, JournalAnchor? journalBase, out JournalOpening opening)
    {
        opening = new JournalOpening(null, begin, 0, TimeSpan.Zero, anchor is null ? null : "the journal is empty");
        if (empty)
        {
            if (created is not null)
            {
                throw new JournalCorruptException($"'{where}' was created ({created}) but no commit was recovered: refusing to start an empty chain over it");
            }
            return null;
        }
        if (journalBase is { } based && based.BlockNo != BlockFormat.GenesisBlockNo)
        {
            return RecoverFromBase(open, begin, committedUntil, pageSizeBits, where, expected, index, anchor, based, out opening);
        }
        // Refuse another cluster's journal, or one of a version we never continue, from its
        // genesis alone: before re-hashing what may be millions of blocks.
        RefuseForeignGenesis(open, begin, committedUntil, where, expected);
        string? refused = null;
        if (anchor is { } trusted)
        {
            long seekStarted = Stopwatch.GetTimestamp();
            refused = FindAnchor(open, index, begin, committedUntil, trusted, expected, out ChainHead anchorHead, out long anchorAddress, out long afterAnchor);
            TimeSpan seek = Stopwatch.GetElapsedTime(seekStarted);
            if (refused is null)
            {
                VerifyReport continued = VerifyChain(open, pageSizeBits, afterAnchor, committedUntil, anchorHead, index: index);
                if (continued.Fault is not null)
                {
                    throw new JournalCorruptException($"the journal in '{where}' does not verify after block {trusted.BlockNo} (the snapshot's anchor): {continued.Fault}", continued.Fault);
                }
                opening = new JournalOpening(trusted.BlockNo, anchorAddress, continued.Blocks, continued.Elapsed, null) { AnchorSeek = seek };
                return continued.Head!.Value;
            }
        }
        VerifyReport report = VerifyChain(open, pageSizeBits, begin, committedUntil, expectedCluster: expected, index: index);
        if (report.Fault is not null)
        {
            throw new JournalCorruptException($"the journal in '{where}' does not verify: {report.Fault}", report.Fault);
        }
        opening = new JournalOpening(null, begin, report.Blocks, report.Elapsed, refused);
        return report.Head!.Value;
    }

    /// <summary>
    /// A journal that starts at <paramref name="journalBase"/>, not genesis: that block must be there
    /// (of this cluster, with that hash); the chain verifies from the anchor when it holds it, else
    /// from the base (and then the caller has no state to replay onto: see <see cref="JournalOpening.BaseBlockNo"/>).
    /// </summary>
    private static ChainHead RecoverFromBase(OpenEntries open, long begin, long committedUntil, int pageSizeBits, string where, ClusterId expected,
        BlockIndex index, JournalAnchor? anchor, JournalAnchor journalBase, out JournalOpening opening)
    {
        long seekStarted = Stopwatch.GetTimestamp();
        if (FindAnchor(open, index, begin, committedUntil, journalBase, expected, out ChainHead baseHead, out long baseAddress, out long afterBase) is { } missing)
        {
            throw new JournalCorruptException($"the journal in '{where}' starts at block {journalBase.BlockNo} (its {JournalGeometry.FileName} says so: compacted, or installed from a snapshot), " +
                $"and that block is not there as recorded: {missing}");
        }
        string? refused = null;
        if (anchor is { } trusted && trusted.BlockNo >= journalBase.BlockNo)
        {
            refused = FindAnchor(open, index, baseAddress, committedUntil, trusted, expected, out ChainHead anchorHead, out long anchorAddress, out long afterAnchor);
            if (refused is null)
            {
                TimeSpan seek = Stopwatch.GetElapsedTime(seekStarted);
                VerifyReport continued = VerifyChain(open, pageSizeBits, afterAnchor, committedUntil, anchorHead, index: index);
                if (continued.Fault is not null)
                {
                    throw new JournalCorruptException($"the journal in '{where}' does not verify after block {trusted.BlockNo} (the snapshot's anchor): {continued.Fault}", continued.Fault);
                }
                opening = new JournalOpening(trusted.BlockNo, anchorAddress, continued.Blocks, continued.Elapsed, null) { AnchorSeek = seek, BaseBlockNo = journalBase.BlockNo };
                return continued.Head!.Value;
            }
        }
        else if (anchor is { } older)
        {
            refused = $"block {older.BlockNo} is before the journal's base, block {journalBase.BlockNo}";
        }
        TimeSpan baseSeek = Stopwatch.GetElapsedTime(seekStarted);
        VerifyReport report = VerifyChain(open, pageSizeBits, afterBase, committedUntil, baseHead, index: index);
        if (report.Fault is not null)
        {
            throw new JournalCorruptException($"the journal in '{where}' does not verify after its base, block {journalBase.BlockNo}: {report.Fault}", report.Fault);
        }
        opening = new JournalOpening(null, baseAddress, report.Blocks, report.Elapsed, refused) { AnchorSeek = baseSeek, BaseBlockNo = journalBase.BlockNo };
        return report.Head!.Value;
    }

    /// <summary>
    /// Finds <paramref name="anchor"/>'s block in the journal (from the index's nearest entry): it must
    /// be there, read as a block of the node's cluster, hash to what it stores and store the anchor's
    /// hash. Null when it does, else why not (the caller verifies from genesis instead).
    /// </summary>
    private static string? FindAnchor(OpenEntries open, BlockIndex index, long begin, long committedUntil, JournalAnchor anchor, ClusterId expected,
        out ChainHead head, out long address, out long after)
    {
        head = default;
        address = -1;
        after = -1;
        string? refused = $"block {anchor.BlockNo} is not in the journal";
        long from = index.LocateFrom(anchor.BlockNo, open, begin, committedUntil);
        try
        {
            using IEntryCursor cursor = open(from, committedUntil);
            while (cursor.TryNext(out ReadOnlySpan<byte> entry, out long at, out long next))
            {
                if (BlockFormat.TryReadHeader(entry, out BlockHeader header) is { } shape)
                {
                    return $"the entry at {at} does not read as a block ({shape}) on the way to block {anchor.BlockNo}";
                }
                if (header.BlockNo < anchor.BlockNo)
                {
                    continue;
                }
                if (header.BlockNo > anchor.BlockNo)
                {
                    return refused;
                }
                if (JournalStart.Trust(entry, expected, anchor, out head) is { } wrong)
                {
                    return $"block {anchor.BlockNo} in the journal is not the snapshot's: {wrong}";
                }
                address = at;
                after = next;
                return null;
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return $"the journal could not be read on the way to block {anchor.BlockNo}: {e.Message}";
        }
        return refused;
    }

    /// <summary>
    /// Throws when the journal's first block says it must not be continued here: a version other
    /// than the one we write (version 1: <see cref="JournalFormatException"/>), or another cluster's
    /// genesis (<see cref="JournalClusterMismatchException"/>). A first block that does not even
    /// parse, or cannot be read, is left to the chain verification, which names the fault.
    /// </summary>
    private static void RefuseForeignGenesis(OpenEntries open, long begin, long committedUntil, string where, ClusterId expected)
    {
        if (!TryReadFirstHeader(open, begin, committedUntil, out BlockHeader genesis) || genesis.BlockNo != BlockFormat.GenesisBlockNo)
        {
            return;
        }
        if (genesis.Version != BlockFormat.Version)
        {
            throw new JournalFormatException(
                $"the journal in '{where}' is of block format version {genesis.Version} (from before cluster ids); this engine writes version " +
                $"{BlockFormat.Version} and never appends it to an older chain. Keep the journal for audit ('engine log verify|dump' read it) " +
                "and start this node on an empty data directory: a backup catches up from its primary, a new cluster starts a new chain.",
                genesis.Version);
        }
        if (genesis.ClusterId != expected)
        {
            throw new JournalClusterMismatchException(
                $"the journal in '{where}' belongs to cluster {genesis.ClusterId.Describe()}, and this node is of cluster {expected.Describe()}: " +
                "refusing to continue another cluster's chain (check the node's cluster credentials and its data directory)",
                expected, genesis.ClusterId);
        }
    }

    private static bool TryReadFirstHeader(OpenEntries open, long begin, long committedUntil, out BlockHeader header)
    {
        header = default;
        try
        {
            using IEntryCursor cursor = open(begin, committedUntil);
            return cursor.TryNext(out ReadOnlySpan<byte> entry, out _, out _)
                && BlockFormat.TryReadHeader(entry, out header, acceptVersion1: true) is null;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return false; // a damaged first entry: the verification that follows reports it
        }
    }

    /// <summary>
    /// Verifies entries [<paramref name="from"/>, <paramref name="until"/>) as a chain from genesis,
    /// or as the continuation of <paramref name="trusted"/>. A scan that stops short of
    /// <paramref name="until"/> (a corrupt entry length can do that) is a fault too, never a
    /// silently shorter chain, with one exception: FASTER never splits an entry across pages, so an
    /// entry that does not fit the rest of a page leaves that rest empty and starts on the next
    /// page; a commit taken after the tail moved to the page boundary but before that entry was
    /// committed ends at the boundary, after the empty tail (<see cref="JournalReader.IsEmptyPageTail"/>).
    /// </summary>
    /// <remarks>
    /// With <c>checkRoots</c>, the records roots are recomputed (<see cref="ChainVerifier.CheckRoots"/>):
    /// an auditor's verification; recovery checks only their coverage. With <c>continuing</c>, a
    /// verifier that checked the blocks before <c>from</c> (the archive's) goes on, with its roots'
    /// coverage, and <c>trusted</c> is ignored.
    /// </remarks>
    public static VerifyReport VerifyChain(OpenEntries open, int pageSizeBits, long from, long until, ChainHead? trusted = null, ClusterId? expectedCluster = null, BlockIndex? index = null,
        bool checkRoots = false, ChainVerifier? continuing = null)
    {
        var clock = Stopwatch.StartNew();
        ChainVerifier verifier = continuing ?? (trusted is { } head ? new ChainVerifier(head) { CheckRoots = checkRoots } : new ChainVerifier(expectedCluster) { CheckRoots = checkRoots });
        trusted = continuing is not null ? continuing.Head : trusted;
        BlockFault? fault = null;
        long reached = from;
        try
        {
            using IEntryCursor cursor = open(from, until);
            while (cursor.TryNext(out ReadOnlySpan<byte> entry, out long address, out long next))
            {
                fault = verifier.Check(entry, address, out BlockHeader header);
                if (fault is not null)
                {
                    break;
                }
                index?.Note(header.BlockNo, address);
                reached = next;
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            fault = new BlockFault(ExpectedNext(verifier, trusted is null), reached, $"the log could not be read past here: {e.GetType().Name}: {e.Message}");
        }
        if (fault is null && reached < until && !JournalReader.IsEmptyPageTail(reached, until, pageSizeBits))
        {
            fault = new BlockFault(ExpectedNext(verifier, trusted is null), reached, $"the entries end at address {reached}, before the committed end {until}");
        }
        return new VerifyReport(verifier.Blocks, verifier.Transactions, verifier.Bytes, verifier.Blocks > 0 || trusted is not null ? verifier.Head : null, fault, until, clock.Elapsed)
        {
            FormatVersion = verifier.FormatVersion,
        }.WithRoots(verifier);
    }

    private static ulong ExpectedNext(ChainVerifier verifier, bool fromGenesis) => verifier.Blocks == 0 && fromGenesis ? BlockFormat.GenesisBlockNo : verifier.Head.BlockNo + 1;
}
