using Engine.Core.Book;
using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Core.Ledger;
using Engine.Protocol;
using Engine.Replication.Pair;

namespace Engine.Sim;

/// <summary>
/// A node's ledger in the simulator: its journal as a list of block entries (durable as soon as
/// appended: the simulated node runs with disk durability, so a crash loses nothing it journaled),
/// the real chain code (<see cref="BlockBuilder"/>, <see cref="ChainVerifier"/>) and the real book
/// (<see cref="Exchange"/> through <see cref="BlockApplier"/>).
/// </summary>
public sealed class SimLedger : IPairLedger
{
    /// <summary>Compare state checksums every this many blocks.</summary>
    public const ulong ChecksumEvery = 16;

    private readonly ClusterId _cluster;
    private readonly ReferenceData _reference;
    private readonly List<byte[]> _blocks = [];
    private readonly Dictionary<ulong, Hash32> _checksums = [];
    private readonly Dictionary<(uint Client, ulong Seq), Receipt> _journaled = [];
    private ChainVerifier _verifier = null!;
    private BlockApplier _applier = null!;
    private ClientSeqTable _clientSeqs = null!;
    private bool _failNextWrite;

    public SimLedger(ClusterId cluster, ReferenceData reference)
    {
        _cluster = cluster;
        _reference = reference;
        Reset();
    }

    public ChainHead Head => _verifier.Head;

    public Exchange Exchange => _applier.Exchange;

    /// <summary>The journal's entries (block 0 is genesis).</summary>
    public IReadOnlyList<byte[]> Blocks => _blocks;

    /// <summary>Where (block, LSN) a client's request was journaled on this chain, if it was.</summary>
    public Receipt? Find(uint client, ulong seq) => _journaled.TryGetValue((client, seq), out Receipt r) ? r : null;

    /// <summary>The next append fails as a full disk would.</summary>
    public void FailNextWrite() => _failNextWrite = true;

    /// <summary>The disk is fixed: no write fails any more.</summary>
    public void ClearFaults() => _failNextWrite = false;

    /// <summary>A restart: the same journal (all of it durable), replayed into a new book.</summary>
    public SimLedger Restart()
    {
        var restarted = new SimLedger(_cluster, _reference);
        foreach (byte[] block in _blocks.Skip(1))
        {
            if (restarted.AppendReplicated(block) is { } fault)
            {
                throw new InvalidOperationException($"the journal does not replay: {fault}");
            }
        }
        return restarted;
    }

    public bool HasBlock(ulong blockNo, in Hash32 hash) =>
        blockNo < (ulong)_blocks.Count && StoredHash(_blocks[(int)blockNo]) == hash;

    public void ReadBlocks(ulong afterBlockNo, ulong throughBlockNo, BlockVisitor visit)
    {
        for (ulong n = afterBlockNo + 1; n <= throughBlockNo && n < (ulong)_blocks.Count; n++)
        {
            if (!visit(_blocks[(int)n], (long)n))
            {
                return;
            }
        }
    }

    public string? AppendReplicated(ReadOnlySpan<byte> block)
    {
        BlockFault? fault = _verifier.Check(block, _blocks.Count, out BlockHeader header);
        if (fault is not null)
        {
            return fault.ToString();
        }
        Append(block.ToArray(), in header);
        return null;
    }

    public Hash32? StateChecksumAfter(ulong blockNo) => _checksums.TryGetValue(blockNo, out Hash32 c) ? c : null;

    public void DiscardDivergedChain() => Reset();

    /// <summary>
    /// A primary seals <paramref name="requests"/> into one block in <paramref name="epoch"/> (those the
    /// sealer's client-seq table lets through), journals and applies it; the block and, per request,
    /// its receipt or null (a duplicate: see <see cref="Find"/>).
    /// </summary>
    public (byte[]? Block, ulong BlockNo, Hash32 Hash) Seal(ulong epoch, IReadOnlyList<Transaction> requests, long nowNs)
    {
        var builder = new BlockBuilder(Head, 64) { Epoch = epoch };
        foreach (Transaction tx in requests)
        {
            if (_clientSeqs.TryAdvance(tx.ClientId, tx.ClientSeq) == ClientSeqVerdict.Next)
            {
                builder.Add(in tx);
            }
        }
        if (builder.Count == 0)
        {
            return (null, 0, default);
        }
        byte[] block = builder.Seal(nowNs, out ChainHead sealedHead).ToArray();
        if (_verifier.Check(block, _blocks.Count, out BlockHeader header) is { } fault)
        {
            throw new InvalidOperationException($"a block this node sealed does not chain: {fault}");
        }
        Append(block, in header);
        return (block, sealedHead.BlockNo, sealedHead.Hash);
    }

    private void Append(byte[] block, in BlockHeader header)
    {
        if (_failNextWrite)
        {
            _failNextWrite = false;
            throw new JournalFaultException("simulated: no space left on device");
        }
        _blocks.Add(block);
        BlockRecords records = BlockRecords.Of(block, in header);
        Hash32 hash = records.StoredHash;
        foreach (BlockRecord record in records)
        {
            record.ReadOrder(out Transaction tx);
            _journaled.TryAdd((tx.ClientId, tx.ClientSeq), new Receipt(header.BlockNo, record.Lsn, hash));
        }
        var sink = new NullSink();
        _applier.ApplyBlock(BlockRecords.Of(block, in header), ref sink);
        if (header.BlockNo % ChecksumEvery == 0)
        {
            _checksums[header.BlockNo] = Exchange.ComputeChecksum();
        }
    }

    /// <summary>Changes each time the chain is thrown away (a diverged chain discarded): blocks of one generation only ever extend.</summary>
    public int Generation { get; private set; }

    private void Reset()
    {
        Generation++;
        _blocks.Clear();
        _checksums.Clear();
        _journaled.Clear();
        byte[] genesis = BlockBuilder.Genesis(_cluster, 1, 0, out _);
        _blocks.Add(genesis);
        _verifier = new ChainVerifier(_cluster);
        if (_verifier.Check(genesis, 0, out _) is { } fault)
        {
            throw new InvalidOperationException($"genesis does not verify: {fault}");
        }
        _applier = new BlockApplier(new Exchange(_reference));
        _clientSeqs = new ClientSeqTable();
    }

    /// <summary>Takes over or starts as primary: the sealer's client-seq table from the book, as a real node seeds it.</summary>
    public void SeedClientSeqs()
    {
        _clientSeqs = new ClientSeqTable();
        _clientSeqs.Seed(Exchange.ClientSeqs);
    }

    private static Hash32 StoredHash(byte[] entry)
    {
        BlockFormat.TryReadHeader(entry, out BlockHeader header);
        return BlockFormat.StoredHash(entry, in header);
    }
}

/// <summary>Where a request was journaled: its block, LSN and the block's hash (what a client's receipt names).</summary>
public readonly record struct Receipt(ulong BlockNo, ulong Lsn, Hash32 BlockHash);
