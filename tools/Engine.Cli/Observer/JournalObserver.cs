using System.Diagnostics;
using Engine.Core.Book;
using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Core.Ledger;
using Engine.Protocol;

namespace Engine.Cli.Observer;

/// <summary>What an observer's load did.</summary>
internal sealed record ObserveReport(ulong FromBlock, ulong ToBlock, long BlocksWritten, long Rows, long RootsChecked, TimeSpan Elapsed)
{
    /// <summary>The signed head beside the journal whose signature and root were checked against the blocks; null when there was none to check.</summary>
    public SignedHead? HeadChecked { get; init; }

    public double RowsPerSecond => Elapsed.TotalSeconds > 0 ? Rows / Elapsed.TotalSeconds : 0;
}

/// <summary>A journal that does not verify, or a database of another history: the observer stops, loudly.</summary>
internal sealed class ObserverFaultException(string message) : Exception(message);

/// <summary>
/// Loads a journal into an observer's tables: every block verified as an auditor does (the chain,
/// the cluster, the records roots recomputed), replayed through the same <see cref="Exchange"/> the
/// nodes run to get each transaction's outcome and the trades it made, and its rows written with the
/// position after it in one database transaction. Resumable: on start it replays the blocks the
/// database already holds (without writing them) to rebuild the book, checks that the last of them
/// has the hash the database recorded (else it is another history: stop), and writes from the next.
/// </summary>
internal static class JournalObserver
{
    /// <summary>Loads what <paramref name="journalDirectory"/> holds beyond what <paramref name="store"/> has.</summary>
    /// <exception cref="ObserverFaultException">The journal does not verify, or the database holds another history or cluster.</exception>
    /// <param name="journalDirectory">The journal (with its archive, and the <c>ledger-head</c> its primary signed, if any).</param>
    /// <param name="store">The database.</param>
    /// <param name="log">Progress lines.</param>
    /// <param name="verifyHead">Checks a head's signature (signed part, signature → valid), with the ledger key; null: a head beside the journal is not checked.</param>
    /// <param name="cancel">Stops the load at a block boundary.</param>
    public static ObserveReport Load(string journalDirectory, IObserverStore store, Action<string> log, Func<byte[], byte[], bool>? verifyHead = null, CancellationToken cancel = default)
    {
        SignedHead? head = verifyHead is not null && HeadSigner.TryLoad(journalDirectory, out _) is { } saved ? saved.Head : null;
        if (head is not null && !verifyHead!(head.SignedPart(), head.Signature))
        {
            throw new ObserverFaultException($"the signed head beside the journal ({head}) is not signed by the ledger key");
        }
        var blockTree = new CompactRange();
        bool headChecked = false;
        var clock = Stopwatch.StartNew();
        ObserverPosition? position = store.Position();
        using JournalReader reader = JournalReader.Open(journalDirectory);
        if (reader.Base is { } journalBase && journalBase.BlockNo != BlockFormat.GenesisBlockNo && reader.Archive.LastBlock is null)
        {
            throw new ObserverFaultException($"the journal starts at block {journalBase.BlockNo} and has no archive: an observer replays from genesis (starting from a snapshot is not built yet)");
        }
        var verifier = new ChainVerifier(position?.Cluster) { CheckRoots = true };
        var applier = new BlockApplier(new Exchange());
        // The open orders, as the book holds them: an execution report is always about one of them (or
        // about the order its transaction placed, in the same block), so no report needs a database read.
        var open = new Dictionary<(uint Client, ulong Order), OrderRow>();
        foreach (OrderRow order in store.OpenOrders())
        {
            open[(order.ClientId, order.ClientOrderId)] = order;
        }
        var block = new ObservedBlock((client, order) => open.TryGetValue((client, order), out OrderRow row) ? row : null);
        ulong from = position is { } p ? p.Block + 1 : BlockFormat.GenesisBlockNo;
        ulong last = from == 0 ? 0 : from - 1;
        long written = 0;
        long rows = 0;
        string? fault = null;
        log(position is { } at ? $"observer: the database holds blocks up to {at.Block}; replaying them to rebuild the book, then writing from block {from}" : "observer: an empty database; writing from genesis");
        reader.Scan((entry, address) =>
        {
            if (cancel.IsCancellationRequested)
            {
                return false;
            }
            if (verifier.Check(entry, address, out BlockHeader header) is { } bad)
            {
                fault = $"the journal does not verify: {bad}";
                return false;
            }
            Hash32 hash = BlockFormat.StoredHash(entry, in header);
            if (head is not null && blockTree.Size < head.TreeSize)
            {
                blockTree.Append(SignedHead.BlockLeaf(in hash));
                if (blockTree.Size == head.TreeSize)
                {
                    if (blockTree.Root() != head.Root)
                    {
                        fault = $"the signed head of {head.TreeSize} blocks is not the root of this journal's blocks 0…{head.TreeSize - 1}: another history, or the journal was altered";
                        return false;
                    }
                    headChecked = true;
                }
            }
            if (header.BlockNo < from)
            {
                if (header.Kind == BlockKind.Transactions)
                {
                    var none = new NullSink();
                    applier.ApplyBlock(BlockRecords.Of(entry, in header), ref none);
                }
                if (position is { } held && header.BlockNo == held.Block && hash != held.Hash)
                {
                    fault = $"the database's block {held.Block} has hash {held.Hash.ToShortString()}, the journal's {hash.ToShortString()}: the database holds another history";
                    return false;
                }
                return true;
            }
            block.Begin(in header, in hash, BlockFormat.TryReadRecordsRoot(entry, in header, out RecordsRoot root) ? root : null);
            if (header.Kind == BlockKind.Transactions)
            {
                var records = BlockRecords.Of(entry, in header);
                var sink = new RowSink(block);
                applier.Exchange.HoldPublishing();
                try
                {
                    foreach (BlockRecord record in records)
                    {
                        record.Read(out Transaction tx);
                        block.Transactions.Add(new TransactionRow(record.Lsn, tx));
                        block.CurrentLsn = record.Lsn; // a repeat's outcome names its original's LSN: the row is keyed by its own
                        applier.Apply(in tx, record.Lsn, header.BlockNo, in hash, ref sink);
                    }
                }
                finally
                {
                    applier.Exchange.ReleasePublishing();
                }
            }
            store.Write(block);
            foreach (OrderRow order in block.Orders.Values)
            {
                if (order.Open > 0)
                {
                    open[(order.ClientId, order.ClientOrderId)] = order;
                }
                else
                {
                    open.Remove((order.ClientId, order.ClientOrderId));
                }
            }
            written++;
            rows += 1 + block.Transactions.Count + block.Outcomes.Count + block.Trades.Count + block.Orders.Count;
            last = header.BlockNo;
            return true;
        });
        store.Commit();
        if (fault is not null)
        {
            throw new ObserverFaultException(fault);
        }
        if (head is not null && !headChecked && !cancel.IsCancellationRequested)
        {
            throw new ObserverFaultException($"the signed head beside the journal covers {head.TreeSize} blocks, the journal holds {blockTree.Size}: blocks it signed are not here");
        }
        if (position is { } held2 && last < held2.Block)
        {
            throw new ObserverFaultException($"the database holds blocks up to {held2.Block}, the journal only up to {last}: the database is of a longer history");
        }
        return new ObserveReport(from, last, written, rows, verifier.RootsChecked, clock.Elapsed) { HeadChecked = headChecked ? head : null };
    }
}
