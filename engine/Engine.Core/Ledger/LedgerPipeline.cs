using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Core.Ring;

namespace Engine.Core.Ledger;

/// <summary>How the inbound handlers are laid out on threads.</summary>
public enum StageTopology
{
    /// <summary>One thread per handler: validate → seal → journal → … (for machines with cores to spare).</summary>
    Separate = 0,

    /// <summary>
    /// validate+seal on one thread, and the journal gate on the same thread as the next stage
    /// (apply): half the hand-overs, for machines with few cores (two, here). Sealing still
    /// overlaps the commits, because the durability wait is on the other thread.
    /// </summary>
    Fused = 1,

    /// <summary>
    /// Every inbound handler on one thread: validate, seal, the journal gate and apply. The fewest
    /// hand-overs (lowest latency when requests come one at a time); sealing no longer overlaps the
    /// commit waits of disk durability, nor the backup's acknowledgement: one block in flight.
    /// </summary>
    Single = 2,

    /// <summary>
    /// As <see cref="Single"/>, one thread, but it seals and mirrors new requests while earlier
    /// blocks wait for the backup's acknowledgement (several blocks in flight), and waits for a disk
    /// commit itself only when it has nothing else to seal. Not the default: on this machine's two
    /// shared cores it measured no faster than <see cref="Single"/> (docs/benchmarks.md).
    /// </summary>
    SealAhead = 3,
}

/// <summary>
/// Lays out the inbound pipeline up to the journal: validate → seal → journal. The caller adds the
/// stages after it (apply, reply, mirror) on <see cref="Builder"/> with <see cref="AddAfterJournal"/>, then starts it.
/// </summary>
/// <remarks>
/// <code>
///  producers ─▶ validate ─▶ seal (LSN, block, SHA-256, FasterLog enqueue) ─▶ journal (durability gate) ─▶ …
/// </code>
/// </remarks>
public sealed class LedgerPipeline
{
    /// <param name="ring">The inbound ring.</param>
    /// <param name="journal">The journal the blocks go to; the chain continues after its head.</param>
    /// <param name="reference">The ledger's reference data as last published, for the checks before the ledger.</param>
    /// <param name="checkSessions">Check each request's client against its session and its entitlements (a real gateway); false for synthetic runs without sessions.</param>
    /// <param name="clientSeqs">The highest clientSeq already in the ledger per client (from the replayed state); null for none.</param>
    /// <param name="clock">Block timestamps.</param>
    /// <param name="topology">Which handlers share a thread.</param>
    /// <param name="mirror">The backup every block goes to, or null for a node alone.</param>
    /// <param name="epoch">The epoch for new blocks (a takeover raises it); default the journal head's.</param>
    /// <param name="head">Where the chain ends now, if blocks were appended since the journal was opened (a backup taking over).</param>
    public LedgerPipeline(RingSettings ring, IJournal journal, Func<Book.ReferenceView> reference, bool checkSessions = false,
        ClientSeqTable? clientSeqs = null, TimeProvider? clock = null, StageTopology topology = StageTopology.Separate, IBlockMirror? mirror = null,
        ulong? epoch = null, ChainHead? head = null)
        : this(ring, journal, reference, checkSessions, clientSeqs, clock, topology, mirror, epoch, head, null, null)
    {
    }

    /// <summary>As the public constructor, on a ring and a block table made ahead of time (<see cref="Server.NodeReserve"/>).</summary>
    internal LedgerPipeline(RingSettings ring, IJournal journal, Func<Book.ReferenceView> reference, bool checkSessions,
        ClientSeqTable? clientSeqs, TimeProvider? clock, StageTopology topology, IBlockMirror? mirror,
        ulong? epoch, ChainHead? head, RingBuffer<TxSlot>? preallocatedRing, BlockTable? preallocatedBlocks)
    {
        Topology = topology;
        Journal = journal;
        Builder = new PipelineBuilder<TxSlot>(ring, preallocatedRing);
        Blocks = preallocatedBlocks ?? new BlockTable(ring.Size);
        var builder = new BlockBuilder(head ?? journal.Head, journal.Settings.MaxTransactionsPerBlock);
        if (epoch is { } e)
        {
            builder.Epoch = e;
        }
        Sealer = new Sealer(builder, journal, Blocks, clientSeqs ?? new ClientSeqTable(), clock ?? TimeProvider.System, mirror);
        _journalStage = new JournalStage(journal, Blocks, mirror is null ? null : new AckGate(mirror, Builder.Ring));
        _validate = new ValidateStage(reference, checkSessions);
        if (topology == StageTopology.Separate)
        {
            Stage validate = Builder.AddStage("validate", new ValidateStage(reference, checkSessions));
            Sealed = Builder.AddStage("seal", new SealStage(Sealer), validate);
            _journaled = Builder.AddStage("journal", _journalStage, Sealed);
        }
        else if (topology == StageTopology.Fused)
        {
            Sealed = Builder.AddStage("validate+seal",
                new FusedHandler<TxSlot, ValidateStage, SealStage>(_validate, new SealStage(Sealer)));
        }
    }

    private readonly JournalStage _journalStage;
    private readonly ValidateStage _validate;
    private readonly Stage? _journaled;

    public StageTopology Topology { get; }

    /// <summary>The stage after which a transaction is sealed into a block (and enqueued in FasterLog); null in the single topology until <see cref="AddAfterJournal"/>.</summary>
    public Stage? Sealed { get; private set; }

    /// <summary>
    /// Adds the stage that runs once a transaction is journaled: after the journal stage, or, fused,
    /// on the same thread right after the journal gate. Call it once.
    /// </summary>
    public Stage AddAfterJournal<THandler>(string name, THandler handler)
        where THandler : struct, IStageHandler<TxSlot>
    {
        if (Topology == StageTopology.Separate)
        {
            return Builder.AddStage(name, handler, _journaled!);
        }
        if (Topology == StageTopology.Fused)
        {
            return Builder.AddStage($"journal+{name}", new FusedHandler<TxSlot, JournalStage, THandler>(_journalStage, handler), Sealed!);
        }
        if (Topology == StageTopology.SealAhead)
        {
            Sealed = Builder.AddTwoStepStage($"validate+seal-ahead+journal+{name}",
                new SealAheadHandler<THandler>(new FusedHandler<TxSlot, ValidateStage, SealStage>(_validate, new SealStage(Sealer)), _journalStage, handler));
            return Sealed;
        }
        Sealed = Builder.AddStage($"validate+seal+journal+{name}",
            new SealThenApplyHandler<FusedHandler<TxSlot, JournalStage, THandler>>(
                Builder.Ring,
                new FusedHandler<TxSlot, ValidateStage, SealStage>(_validate, new SealStage(Sealer)),
                new FusedHandler<TxSlot, JournalStage, THandler>(_journalStage, handler)));
        return Sealed;
    }

    public IJournal Journal { get; }

    public PipelineBuilder<TxSlot> Builder { get; }

    public BlockTable Blocks { get; }

    public Sealer Sealer { get; }

}

/// <summary>
/// The seal-ahead topology's one stage: validates and seals each event as soon as it is readable (the
/// sealer cuts a block at the end of each batch and sends it to the backup), and passes the
/// events whose blocks are journaled and acknowledged on to the next handler (apply), in order.
/// While the oldest block waits for its backup's acknowledgement, the thread goes on sealing what
/// arrives: several blocks in flight on one thread, and one park that either a new request or the
/// acknowledgement ends.
/// </summary>
/// <remarks>
/// A disk commit does not signal the ring: when the oldest block waits for one and nothing else is
/// readable, the thread waits for the commit itself (what arrives meanwhile is sealed right after,
/// into the next commit).
/// </remarks>
internal struct SealAheadHandler<TAfter>(FusedHandler<TxSlot, ValidateStage, SealStage> seal, JournalStage gate, TAfter after)
    : ITwoStepHandler<TxSlot>
    where TAfter : struct, IStageHandler<TxSlot>
{
    // Mutable structs called in place.
#pragma warning disable IDE0044
    private FusedHandler<TxSlot, ValidateStage, SealStage> _seal = seal;
    private JournalStage _gate = gate;
    private TAfter _after = after;
#pragma warning restore IDE0044

    public void Take(ref TxSlot slot, long sequence, bool endOfBatch) => _seal.OnEvent(ref slot, sequence, endOfBatch);

    public GateState Gate(ref TxSlot slot, long sequence) => _gate.Gate(ref slot);

    public readonly void Block(ref TxSlot slot, long sequence) => _gate.Block(ref slot);

    public void Pass(ref TxSlot slot, long sequence, bool endOfBatch) => _after.OnEvent(ref slot, sequence, endOfBatch);
}

/// <summary>
/// The single topology's one stage: validates and seals each event as it comes, and at the end of
/// the ring batch (where the sealer cuts the block, so every event's block is sealed and known)
/// runs the journal gate and the next handler over the batch, in order.
/// </summary>
internal struct SealThenApplyHandler<TAfter>(RingBuffer<TxSlot> ring, FusedHandler<TxSlot, ValidateStage, SealStage> seal, TAfter after)
    : IStageHandler<TxSlot>
    where TAfter : struct, IStageHandler<TxSlot>
{
    // Mutable structs called in place.
#pragma warning disable IDE0044
    private FusedHandler<TxSlot, ValidateStage, SealStage> _seal = seal;
    private TAfter _after = after;
#pragma warning restore IDE0044
    private long _pendingFrom;

    public void OnEvent(ref TxSlot slot, long sequence, bool endOfBatch)
    {
        _seal.OnEvent(ref slot, sequence, endOfBatch);
        if (!endOfBatch)
        {
            return;
        }
        for (long s = _pendingFrom; s <= sequence; s++)
        {
            _after.OnEvent(ref ring[s], s, s == sequence);
        }
        _pendingFrom = sequence + 1;
    }
}
