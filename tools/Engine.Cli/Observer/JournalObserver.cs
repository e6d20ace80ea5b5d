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
/// The observer's core, fed one block at a time in chain order (from a journal directory,
/// <see cref="JournalObserver"/>, or from a node, <c>PeerObserver</c>): every block verified as
/// an auditor does (the chain, the cluster, the records roots recomputed), replayed through the same
/// <see cref="Exchange"/> the nodes run to get each transaction's outcome and the trades it made, and
/// its rows written with the position after it in one database transaction. Resumable: the blocks the
/// database already holds are replayed (without writing them) to rebuild the book, and the last of
/// them must have the hash the database recorded (else it is another history: stop).
/// </summary>
/// <remarks>
/// From genesis, or from a node's snapshot (after compaction, when the blocks before it are gone): the
/// book starts as the snapshot's state, the first block taken must be the one the snapshot stands after
/// (its hash the snapshot's), and the chain is verified from there. An empty database then starts with
/// the snapshot's resting orders (their placing LSN unknown: 0) and rows from the block after it; a
/// database that holds blocks rebuilds its book from any snapshot at or before its last block. The
/// snapshot's state is taken as the operator's file says (its own checksum is checked, and its block
/// must be the ledger's); the signed heads, which sign every block from genesis, are not checked then.
/// </remarks>
internal sealed class ObserverReplay
{
    private readonly IObserverStore _store;
    private readonly ObserverPosition? _position;
    private readonly SnapshotHeader? _anchor;
    private ChainVerifier? _verifier;
    private readonly BlockApplier _applier;
    private readonly Dictionary<(uint Client, ulong Order), OrderRow> _open = [];
    private readonly ObservedBlock _block;
    private List<OrderRow>? _seed;
    private CompactRange _blockTree;

    /// <param name="store">The database.</param>
    /// <param name="snapshot">Start from this state instead of genesis (null: from genesis).</param>
    /// <exception cref="ObserverFaultException">The database and the snapshot do not go together.</exception>
    public ObserverReplay(IObserverStore store, LoadedSnapshot? snapshot = null)
    {
        _store = store;
        _position = store.Position();
        ulong? first = _position is null ? null : store.FirstBlock();
        if (snapshot is { } start)
        {
            if (_position is { } held && start.Header.BlockNo > held.Block)
            {
                throw new ObserverFaultException($"the snapshot stands after block {start.Header.BlockNo:N0}, the database holds blocks up to {held.Block:N0}: the rows between would be missing (give a snapshot at or before block {held.Block:N0})");
            }
            _anchor = start.Header;
            _applier = new BlockApplier(start.Exchange);
            if (_position is null)
            {
                _seed = [.. start.Exchange.RestingOrders().Select(o => new OrderRow(o.ClientId, o.ClientOrderId, o.Account, o.Instrument, o.Side, o.Price, o.Quantity, o.Open, OrderStatus.Open, 0))];
                foreach (OrderRow order in _seed)
                {
                    _open[(order.ClientId, order.ClientOrderId)] = order;
                }
            }
        }
        else
        {
            if (first is > 0)
            {
                throw new ObserverFaultException($"the database starts at block {first:N0} (its observer started from a snapshot): give a snapshot (--snapshot) at or before block {_position!.Value.Block:N0} to rebuild the book");
            }
            _applier = new BlockApplier(new Exchange());
            _verifier = new ChainVerifier(_position?.Cluster) { CheckRoots = true };
        }
        // The open orders, as the book holds them: an execution report is always about one of them (or
        // about the order its transaction placed, in the same block), so no report needs a database read.
        foreach (OrderRow order in store.OpenOrders())
        {
            _open[(order.ClientId, order.ClientOrderId)] = order;
        }
        _block = new ObservedBlock((client, order) => _open.TryGetValue((client, order), out OrderRow row) ? row : null);
        From = _position is { } p ? p.Block + 1 : _anchor is { } a ? a.BlockNo + 1 : BlockFormat.GenesisBlockNo;
        Next = _anchor?.BlockNo ?? BlockFormat.GenesisBlockNo;
        Last = From == 0 ? 0 : From - 1;
    }

    /// <summary>The block to take next (the first: the snapshot's, or genesis).</summary>
    public ulong Next { get; private set; }

    /// <summary>From genesis: the tree of block hashes is known, so signed heads can be checked.</summary>
    public bool FromGenesis => _anchor is null;

    /// <summary>Where the database stood when this replay began.</summary>
    public ObserverPosition? Position => _position;

    /// <summary>The first block this replay writes (the ones before are in the database already).</summary>
    public ulong From { get; }

    /// <summary>The last block seen (replayed or written).</summary>
    public ulong Last { get; private set; }

    /// <summary>Blocks seen: the size of the tree of block hashes a signed head signs.</summary>
    public long BlocksSeen => _blockTree.Size;

    /// <summary>The root of the tree of every block hash seen (what a head of <see cref="BlocksSeen"/> blocks must sign).</summary>
    public Hash32 BlockTreeRoot => _blockTree.Root();

    /// <summary>The last block's hash.</summary>
    public Hash32 LastHash { get; private set; }

    /// <summary>When the last block was sealed (its header's clock, Unix nanoseconds).</summary>
    public long LastTimestampNs { get; private set; }

    public long Written { get; private set; }

    public long Rows { get; private set; }

    public long RootsChecked => _verifier?.RootsChecked ?? 0;

    /// <summary>The chain's cluster, once genesis is seen.</summary>
    public ClusterId? Cluster { get; private set; }

    /// <summary>Takes the next block: verifies it, replays it, writes its rows if the database does not hold it. Null, or why it is refused (then stop: nothing after it can be taken).</summary>
    public string? Accept(ReadOnlySpan<byte> entry, long address)
    {
        if (_verifier is null)
        {
            return Anchor(entry, address);
        }
        if (_verifier.Check(entry, address, out BlockHeader header) is { } bad)
        {
            return $"the ledger does not verify: {bad}";
        }
        Next = header.BlockNo + 1;
        Cluster ??= header.ClusterId;
        Hash32 hash = BlockFormat.StoredHash(entry, in header);
        _blockTree.Append(SignedHead.BlockLeaf(in hash));
        Last = header.BlockNo;
        LastHash = hash;
        LastTimestampNs = header.TimestampNs;
        if (header.BlockNo < From)
        {
            if (header.Kind == BlockKind.Transactions)
            {
                var none = new NullSink();
                _applier.ApplyBlock(BlockRecords.Of(entry, in header), ref none);
            }
            if (_position is { } held && header.BlockNo == held.Block && hash != held.Hash)
            {
                return $"the database's block {held.Block} has hash {held.Hash.ToShortString()}, the ledger's {hash.ToShortString()}: the database holds another history";
            }
            return null;
        }
        _block.Begin(in header, in hash, BlockFormat.TryReadRecordsRoot(entry, in header, out RecordsRoot root) ? root : null);
        if (_seed is not null)
        {
            foreach (OrderRow order in _seed)
            {
                _block.Orders[(order.ClientId, order.ClientOrderId)] = order; // the snapshot's book, written with the first block after it
            }
            _seed = null;
        }
        if (header.Kind == BlockKind.Transactions)
        {
            var records = BlockRecords.Of(entry, in header);
            var sink = new RowSink(_block);
            _applier.Exchange.HoldPublishing();
            try
            {
                foreach (BlockRecord record in records)
                {
                    record.Read(out Transaction tx);
                    _block.Transactions.Add(new TransactionRow(record.Lsn, tx));
                    _block.CurrentLsn = record.Lsn; // a repeat's outcome names its original's LSN: the row is keyed by its own
                    _applier.Apply(in tx, record.Lsn, header.BlockNo, in hash, ref sink);
                }
            }
            finally
            {
                _applier.Exchange.ReleasePublishing();
            }
        }
        _store.Write(_block);
        foreach (OrderRow order in _block.Orders.Values)
        {
            if (order.Open > 0)
            {
                _open[(order.ClientId, order.ClientOrderId)] = order;
            }
            else
            {
                _open.Remove((order.ClientId, order.ClientOrderId));
            }
        }
        Written++;
        Rows += 1 + _block.Transactions.Count + _block.Outcomes.Count + _block.Trades.Count + _block.Orders.Count;
        return null;
    }

    /// <summary>Commits what was written.</summary>
    public void Commit() => _store.Commit();

    /// <summary>Before the snapshot's block (skipped), the snapshot's block itself (the chain is verified from it on), or why the ledger does not go with the snapshot.</summary>
    private string? Anchor(ReadOnlySpan<byte> entry, long address)
    {
        SnapshotHeader anchor = _anchor!.Value;
        if (BlockFormat.TryReadHeader(entry, out BlockHeader header) is { } bad)
        {
            return $"the ledger does not verify: block at address {address}: {bad}";
        }
        if (header.BlockNo < anchor.BlockNo)
        {
            return null; // before the snapshot: its state holds what they did
        }
        if (header.BlockNo > anchor.BlockNo)
        {
            return $"the ledger goes on from block {header.BlockNo:N0}, after the snapshot's block {anchor.BlockNo:N0}: the blocks between are not there";
        }
        Hash32 hash = BlockFormat.StoredHash(entry, in header);
        Hash32 computed = default;
        System.Security.Cryptography.SHA256.HashData(BlockFormat.Hashed(entry, in header), computed);
        if (computed != hash || hash != anchor.BlockHash)
        {
            return computed != hash ? $"the ledger does not verify: block {header.BlockNo}: its hash is not its content's"
                : $"the snapshot stands after block {anchor.BlockNo:N0} with hash {anchor.BlockHash.ToShortString()}, the ledger's block {anchor.BlockNo:N0} is {hash.ToShortString()}: a snapshot of another history";
        }
        if (_position is { } held && held.Cluster != header.ClusterId)
        {
            return $"the ledger is of cluster {header.ClusterId.Describe()}, the database of {held.Cluster.Describe()}";
        }
        _verifier = new ChainVerifier(new ChainHead(header.Epoch, header.BlockNo, header.LastLsn, hash) { ClusterId = header.ClusterId }) { CheckRoots = true };
        Cluster = header.ClusterId;
        Last = header.BlockNo;
        LastHash = hash;
        LastTimestampNs = header.TimestampNs;
        Next = header.BlockNo + 1;
        return null;
    }
}

/// <summary>Loads a journal directory into an observer's tables, through an <see cref="ObserverReplay"/>.</summary>
internal static class JournalObserver
{
    /// <summary>Loads what <paramref name="journalDirectory"/> holds beyond what <paramref name="store"/> has.</summary>
    /// <exception cref="ObserverFaultException">The journal does not verify, or the database holds another history or cluster.</exception>
    /// <param name="journalDirectory">The journal (with its archive, and the <c>ledger-head</c> its primary signed, if any).</param>
    /// <param name="store">The database.</param>
    /// <param name="log">Progress lines.</param>
    /// <param name="verifyHead">Checks a head's signature (signed part, signature → valid), with the ledger key; null: a head beside the journal is not checked.</param>
    /// <param name="untilBlock">The last block to load (the tables as of it); null: all the journal holds.</param>
    /// <param name="cancel">Stops the load at a block boundary.</param>
    /// <param name="snapshot">Start from this state instead of genesis (a compacted journal without its archive); the signed head is not checked then.</param>
    public static ObserveReport Load(string journalDirectory, IObserverStore store, Action<string> log, Func<byte[], byte[], bool>? verifyHead = null, ulong? untilBlock = null,
        LoadedSnapshot? snapshot = null, CancellationToken cancel = default)
    {
        SignedHead? head = verifyHead is not null && snapshot is null && HeadSigner.TryLoad(journalDirectory, out _) is { } saved ? saved.Head : null;
        if (head is not null && !verifyHead!(head.SignedPart(), head.Signature))
        {
            throw new ObserverFaultException($"the signed head beside the journal ({head}) is not signed by the ledger key");
        }
        bool headChecked = false;
        var clock = Stopwatch.StartNew();
        using JournalReader reader = JournalReader.Open(journalDirectory);
        if (snapshot is null && reader.Base is { } journalBase && journalBase.BlockNo != BlockFormat.GenesisBlockNo && reader.Archive.LastBlock is null)
        {
            throw new ObserverFaultException($"the journal starts at block {journalBase.BlockNo} and has no archive: start from the node's snapshot at or after that block (--snapshot DATA/journal/snapshots/…), or give the archive");
        }
        var replay = new ObserverReplay(store, snapshot);
        if (untilBlock is { } until && replay.Position is { } holds && until < holds.Block)
        {
            throw new ArgumentException($"--until-block {until}: the database holds blocks up to {holds.Block} already, and cannot be taken back (load into an empty one)");
        }
        string? fault = null;
        log((replay.Position is { } at ? $"observer: the database holds blocks up to {at.Block}; replaying them to rebuild the book, then writing from block {replay.From}"
            : $"observer: an empty database; writing from {(replay.FromGenesis ? "genesis" : $"block {replay.From} (the book as the snapshot holds it)")}")
            + (snapshot is not null ? $"; starting from the snapshot after block {snapshot.Header.BlockNo} ({snapshot.Path}): signed heads are not checked" : ""));
        reader.Scan((entry, address) =>
        {
            if (cancel.IsCancellationRequested)
            {
                return false;
            }
            fault = replay.Accept(entry, address);
            if (fault is null && head is not null && replay.BlocksSeen == head.TreeSize)
            {
                if (replay.BlockTreeRoot != head.Root)
                {
                    fault = $"the signed head of {head.TreeSize} blocks is not the root of this journal's blocks 0…{head.TreeSize - 1}: another history, or the journal was altered";
                }
                headChecked = true;
            }
            return fault is null && !(replay.BlocksSeen > 0 && replay.Last >= untilBlock);
        });
        replay.Commit();
        if (fault is not null)
        {
            throw new ObserverFaultException(fault.Replace("the ledger does not verify", "the journal does not verify", StringComparison.Ordinal));
        }
        if (head is not null && !headChecked && !cancel.IsCancellationRequested && !((ulong)head.TreeSize > replay.Last + 1 && replay.Last >= untilBlock))
        {
            throw new ObserverFaultException($"the signed head beside the journal covers {head.TreeSize} blocks, the journal holds {replay.BlocksSeen}: blocks it signed are not here");
        }
        if (replay.Position is { } held && replay.Last < held.Block)
        {
            throw new ObserverFaultException($"the database holds blocks up to {held.Block}, the journal only up to {replay.Last}: the database is of a longer history");
        }
        return new ObserveReport(replay.From, replay.Last, replay.Written, replay.Rows, replay.RootsChecked, clock.Elapsed) { HeadChecked = headChecked ? head : null };
    }
}
