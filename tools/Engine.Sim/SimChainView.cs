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
/// chain set aside) or crashed (its uncommitted tail gone).
/// </summary>
public sealed class SimChainView
{
    private readonly List<Hash32> _hashes = [];
    private readonly Dictionary<(uint Client, ulong Seq), Receipt> _journaled = [];
    private SimulatedJournalDevice? _device;
    private long _crashes;
    private long _next;

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
        if (device != _device || device.Crashes != _crashes || device.TailAddress < _next)
        {
            _device = device;
            _crashes = device.Crashes;
            _next = SimulatedJournalDevice.BeginAddress;
            _hashes.Clear();
            _journaled.Clear();
            Version++;
        }
        _next = device.VisitHeld(_next, (entry, _) =>
        {
            BlockRecords records = BlockRecords.Open(entry);
            if (records.Header.BlockNo != (ulong)_hashes.Count)
            {
                throw new InvalidOperationException($"{device.Name}: block {records.Header.BlockNo} held where block {_hashes.Count} was expected: a node journaled a block off its chain");
            }
            Hash32 hash = records.StoredHash;
            _hashes.Add(hash);
            LastEpoch = records.Header.Epoch;
            foreach (BlockRecord record in records)
            {
                record.ReadOrder(out Transaction tx);
                _journaled.TryAdd((tx.ClientId, tx.ClientSeq), new Receipt(records.Header.BlockNo, record.Lsn, hash));
            }
            return true;
        });
        return this;
    }
}
