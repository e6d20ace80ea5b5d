using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Protocol;

namespace Engine.Sim;

/// <summary>Where a request was journaled: its block, LSN and the block's hash (what a client's receipt names).</summary>
public readonly record struct Receipt(ulong BlockNo, ulong Lsn, Hash32 BlockHash);

/// <summary>
/// The invariant checker's view of one node's chain: the blocks its process holds on its simulated
/// journal device (committed, or appended and still in memory), read without touching the node (no
/// commit, no flush: <see cref="SimulatedJournalDevice.VisitHeld"/>). Incremental: each call reads
/// only the entries appended since the last; it starts over when the device was replaced (a diverged
/// chain set aside) or crashed (its uncommitted tail gone). A device whose journal starts at a base
/// (installed from the primary's snapshot) holds no block before it: the view takes that prefix
/// from the <see cref="SimBlockArchive"/> of every block any view has read, walking back from the
/// base's hash, so a node's chain is its whole history whichever way its journal began.
/// </summary>
public sealed class SimChainView(SimBlockArchive archive)
{
    private readonly List<Hash32> _hashes = [];
    private readonly Dictionary<(uint Client, ulong Seq), Receipt> _journaled = [];
    private SimulatedJournalDevice? _device;
    private long _crashes;
    private long _next;
    private bool _refreshing;

    /// <summary>Changes whenever the view had to start over: blocks seen under one version only ever extend.</summary>
    public int Version { get; private set; }

    /// <summary>Blocks held, genesis included.</summary>
    public int Count => _hashes.Count;

    /// <summary>The epoch of the last block held.</summary>
    public ulong LastEpoch { get; private set; }

    /// <summary>The hash of block <paramref name="blockNo"/>.</summary>
    public Hash32 HashOf(int blockNo) => _hashes[blockNo];

    public bool HasBlock(ulong blockNo, in Hash32 hash) => blockNo < (ulong)_hashes.Count && _hashes[(int)blockNo] == hash;

    /// <summary>Where a client's request was journaled on this chain, if it was.</summary>
    public Receipt? Find(uint client, ulong seq) => _journaled.TryGetValue((client, seq), out Receipt r) ? r : null;

    /// <summary>Reads what <paramref name="device"/> holds that this view has not seen.</summary>
    public SimChainView Refresh(SimulatedJournalDevice device)
    {
        if (_refreshing)
        {
            return this; // asked again while taking the history before its base from the other views
        }
        // (and when the device's journal now starts at a base this view has not reached: a view read while
        // a snapshot was being installed, before the journal's first block was there)
        if (device != _device || device.Crashes != _crashes || device.TailAddress < _next || (device.Base is { } start && (ulong)_hashes.Count < start.BlockNo))
        {
            _device = device;
            _crashes = device.Crashes;
            _next = SimulatedJournalDevice.BeginAddress;
            _hashes.Clear();
            _journaled.Clear();
            Version++;
            if (device.Base is { } journalBase && journalBase.BlockNo > 0)
            {
                // The history before the base ends with the block the base block chains to.
                Hash32? before = null;
                device.VisitHeld(SimulatedJournalDevice.BeginAddress, (entry, _) =>
                {
                    BlockRecords records = BlockRecords.Open(entry);
                    if (records.Header.BlockNo == journalBase.BlockNo)
                    {
                        before = records.Header.PrevHash;
                    }
                    return records.Header.BlockNo < journalBase.BlockNo;
                });
                if (before is { } prev)
                {
                    _refreshing = true;
                    try
                    {
                        archive.Prefix(journalBase.BlockNo - 1, prev, _hashes, _journaled);
                    }
                    finally
                    {
                        _refreshing = false;
                    }
                }
            }
        }
        _next = device.VisitHeld(_next, (entry, _) =>
        {
            BlockRecords records = BlockRecords.Open(entry);
            if (records.Header.BlockNo < (ulong)_hashes.Count && _hashes[(int)records.Header.BlockNo] == records.StoredHash)
            {
                return true; // before the journal's base (compacted: the device frees nothing), known from the archive
            }
            if (records.Header.BlockNo != (ulong)_hashes.Count)
            {
                throw new InvalidOperationException($"{device.Name}: block {records.Header.BlockNo} held where block {_hashes.Count} was expected: a node journaled a block off its chain");
            }
            Hash32 hash = records.StoredHash;
            _hashes.Add(hash);
            LastEpoch = records.Header.Epoch;
            var receipts = new List<((uint Client, ulong Seq) Key, Receipt Receipt)>();
            foreach (BlockRecord record in records)
            {
                record.Read(out Transaction tx);
                if (AdminTransaction.IsAdmin(tx.Kind))
                {
                    continue; // no client's request
                }
                var receipt = new Receipt(records.Header.BlockNo, record.Lsn, hash);
                _journaled.TryAdd((tx.ClientId, tx.ClientSeq), receipt);
                receipts.Add(((tx.ClientId, tx.ClientSeq), receipt));
            }
            archive.Add(records.Header.BlockNo, hash, records.Header.PrevHash, receipts);
            return true;
        });
        return this;
    }
}

/// <summary>Every block any <see cref="SimChainView"/> has read, by hash: where a view of a journal that starts at a base finds the history before it.</summary>
/// <param name="readAll">Has every node's view read what its device holds now: a view reads lazily, so a block a node
/// installed a snapshot of may not have been read yet by the view of the node that sealed it.</param>
public sealed class SimBlockArchive(Action readAll)
{
    private readonly Dictionary<Hash32, (ulong BlockNo, Hash32 Prev, List<((uint Client, ulong Seq) Key, Receipt Receipt)> Receipts)> _blocks = [];
    private bool _reading;

    public void Add(ulong blockNo, Hash32 hash, Hash32 prev, List<((uint Client, ulong Seq) Key, Receipt Receipt)> receipts) => _blocks.TryAdd(hash, (blockNo, prev, receipts));

    /// <summary>Fills <paramref name="hashes"/> with blocks 0 … <paramref name="lastBlockNo"/> of the chain whose block <paramref name="lastBlockNo"/> has <paramref name="lastHash"/>, and <paramref name="journaled"/> with their receipts.</summary>
    /// <exception cref="InvalidOperationException">A block of that history was never read by any view (a node installed a snapshot of a chain no node held).</exception>
    public void Prefix(ulong lastBlockNo, Hash32 lastHash, List<Hash32> hashes, Dictionary<(uint Client, ulong Seq), Receipt> journaled)
    {
        var back = new List<Hash32>();
        Hash32 at = lastHash;
        for (ulong blockNo = lastBlockNo; ; blockNo--)
        {
            if (!_blocks.ContainsKey(at) && !_reading)
            {
                _reading = true;
                try
                {
                    readAll();
                }
                finally
                {
                    _reading = false;
                }
            }
            if (!_blocks.TryGetValue(at, out var block) || block.BlockNo != blockNo)
            {
                throw new InvalidOperationException($"block {blockNo} ({at.ToShortString()}) of the history before a journal's base {lastBlockNo + 1} was never held by any node");
            }
            back.Add(at);
            if (blockNo == 0)
            {
                break;
            }
            at = block.Prev;
        }
        back.Reverse();
        hashes.AddRange(back);
        foreach (Hash32 hash in back)
        {
            foreach (((uint Client, ulong Seq) key, Receipt receipt) in _blocks[hash].Receipts)
            {
                journaled.TryAdd(key, receipt);
            }
        }
    }
}
