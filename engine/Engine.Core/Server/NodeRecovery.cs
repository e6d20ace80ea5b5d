using System.Diagnostics;
using Engine.Core.Book;
using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Core.Ledger;

namespace Engine.Core.Server;

/// <summary>What a node's start-up recovered, and what it cost (in <c>/status</c>).</summary>
/// <param name="SnapshotBlock">The snapshot the state started from; null: from genesis.</param>
/// <param name="SnapshotSkipped">Why a snapshot found was not used (none verified, or the journal does not hold its block); null if none was skipped.</param>
/// <param name="VerifiedBlocks">Blocks re-hashed by the journal's opening (from the snapshot's block, or from genesis).</param>
/// <param name="ReplayedBlocks">Blocks applied after the snapshot (or from genesis).</param>
/// <param name="ReplayedTransactions">Transactions among them.</param>
/// <param name="HeadBlock">The journal's last block.</param>
/// <param name="SnapshotLoadMs">Reading and verifying the snapshot.</param>
/// <param name="OpenMs">Opening the journal: the device's recovery, the seek to the anchor and the chain's verification.</param>
/// <param name="DeviceRecoveryMs">Of that, FASTER's own recovery (its commit record, the log's tail pages read back).</param>
/// <param name="AnchorSeekMs">Of that, finding the snapshot's block through the block index.</param>
/// <param name="VerifyMs">Of that, re-hashing the blocks after the anchor (or from genesis).</param>
/// <param name="ReplayMs">Applying the blocks after the snapshot.</param>
/// <param name="TotalMs">All of it.</param>
public sealed record RecoveryReport(
    ulong? SnapshotBlock,
    string? SnapshotSkipped,
    long VerifiedBlocks,
    long ReplayedBlocks,
    long ReplayedTransactions,
    ulong HeadBlock,
    double SnapshotLoadMs,
    double OpenMs,
    double DeviceRecoveryMs,
    double AnchorSeekMs,
    double VerifyMs,
    double ReplayMs,
    double TotalMs)
{
    public override string ToString() =>
        $"{(SnapshotBlock is { } b ? $"snapshot of block {b:N0} ({SnapshotLoadMs:F0} ms)" : "no snapshot")}{(SnapshotSkipped is null ? "" : $" [skipped: {SnapshotSkipped}]")}, " +
        $"journal opened in {OpenMs:F0} ms (FASTER {DeviceRecoveryMs:F0}, seek {AnchorSeekMs:F0}, {VerifiedBlocks:N0} blocks verified in {VerifyMs:F0}), {ReplayedBlocks:N0} blocks ({ReplayedTransactions:N0} transactions) replayed in {ReplayMs:F0} ms " +
        $"to block {HeadBlock:N0}: {TotalMs:F0} ms";
}

/// <summary>
/// A node's state at start-up: the newest snapshot that verifies, the journal opened with that
/// snapshot's block as the anchor it verifies from, and the blocks after it replayed into the
/// snapshot's state; from genesis when there is no usable snapshot. Time bounded by the snapshot
/// interval, not by the history. Used by every node that opens a journal: standalone, a pair's
/// node, the simulator's.
/// </summary>
public static class NodeRecovery
{
    /// <summary>Recovers as described above.</summary>
    /// <param name="open">Opens the journal, verifying from the anchor given (null: from genesis).</param>
    /// <param name="snapshots">Where the node's snapshots are; null: none (replay from genesis).</param>
    /// <param name="where">Names the journal in the log line.</param>
    /// <param name="log">Where recovery is told, and each snapshot passed over with why.</param>
    /// <param name="loaded">The snapshot to start from when the caller has just loaded it (a backup installing its primary's): not read again.</param>
    public static (TJournal Journal, Exchange Exchange, RecoveryReport Report) Recover<TJournal>(Func<JournalAnchor?, TJournal> open, SnapshotStore? snapshots,
        string where, Action<string> log, LoadedSnapshot? loaded = null) where TJournal : IJournal
    {
        ArgumentNullException.ThrowIfNull(open);
        var clock = Stopwatch.StartNew();
        LoadedSnapshot? snapshot = loaded ?? snapshots?.LoadNewest(log);
        double loadMs = clock.Elapsed.TotalMilliseconds;
        TJournal journal = open(snapshot is null ? null : new JournalAnchor(snapshot.Header.BlockNo, snapshot.Header.BlockHash));
        double openMs = clock.Elapsed.TotalMilliseconds - loadMs;
        string? skipped = null;
        try
        {
            long replayFrom = journal.Opening.ReplayFrom;
            if (snapshot is not null && journal.Opening.AnchorBlockNo is null)
            {
                skipped = $"{snapshot.Path}: {journal.Opening.AnchorRefused}";
                log($"journal {where}: snapshot not used, {skipped}; {(journal.Base is null ? "replaying from genesis" : "trying older ones")}");
                ulong refused = snapshot.Header.BlockNo;
                snapshot = null;
                if (journal.Base is { } journalBase && snapshots is not null)
                {
                    // The journal does not start at genesis: its state needs a snapshot of a block it holds (verified with the rest from its base).
                    foreach (LoadedSnapshot older in snapshots.LoadNewestFirst(log, below: refused))
                    {
                        if (older.Header.BlockNo >= journalBase.BlockNo && journal.FindBlock(new JournalAnchor(older.Header.BlockNo, older.Header.BlockHash)) is { } address)
                        {
                            snapshot = older;
                            replayFrom = address;
                            break;
                        }
                    }
                }
            }
            if (snapshot is null && journal.Base is { } start)
            {
                throw new JournalCorruptException($"the journal in '{where}' starts at block {start.BlockNo} (compacted, or installed from a snapshot), and no snapshot of a block it holds verifies" +
                    (skipped is null ? "" : $" ({skipped})") + ": the state cannot be rebuilt from it alone. Rejoin this node from its peer (start it on an empty data directory), " +
                    "or restore the blocks before it from the archive.");
            }
            Exchange exchange = snapshot?.Exchange ?? new Exchange();
            (long blocks, long transactions) = Replay(journal, exchange, replayFrom, snapshot?.Header.BlockNo);
            var report = new RecoveryReport(snapshot?.Header.BlockNo, skipped, journal.Opening.VerifiedBlocks, blocks, transactions, journal.Head.BlockNo,
                Math.Round(loadMs, 1), Math.Round(openMs, 1), Math.Round(journal.Opening.DeviceRecovery.TotalMilliseconds, 1), Math.Round(journal.Opening.AnchorSeek.TotalMilliseconds, 1),
                Math.Round(journal.Opening.Verify.TotalMilliseconds, 1), Math.Round(clock.Elapsed.TotalMilliseconds - loadMs - openMs, 1), Math.Round(clock.Elapsed.TotalMilliseconds, 1));
            log($"journal {where}: head {journal.Head}; {report}");
            return (journal, exchange, report);
        }
        catch
        {
            journal.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Applies the committed blocks from <paramref name="fromAddress"/> after block
    /// <paramref name="afterBlockNo"/> (all of them when null) to <paramref name="exchange"/>, in
    /// order, answering nobody; returns the blocks and transactions applied.
    /// </summary>
    public static (long Blocks, long Transactions) Replay(IJournal journal, Exchange exchange, long fromAddress, ulong? afterBlockNo = null)
    {
        var applier = new BlockApplier(exchange);
        long blocks = 0;
        long transactions = 0;
        var sink = new NullSink();
        journal.Scan(fromAddress, (entry, _) =>
        {
            // The journal verified the chain when it opened: a block that does not read throws.
            BlockRecords records = BlockRecords.Open(entry);
            if (afterBlockNo is { } after && records.Header.BlockNo <= after)
            {
                return true;
            }
            transactions += applier.ApplyBlock(records, ref sink);
            blocks++;
            return true;
        });
        return (blocks, transactions);
    }
}
