using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Core.Ring;

namespace Engine.Core.Ledger;

/// <summary>
/// Lays out the inbound pipeline up to the journal: validate → seal → journal. The caller adds the
/// stages after it (apply, reply, mirror) on <see cref="Builder"/>, then starts it.
/// </summary>
/// <remarks>
/// <code>
///  producers ─▶ validate ─▶ seal (LSN, block, SHA-256, FasterLog enqueue) ─▶ journal (durability gate) ─▶ …
/// </code>
/// </remarks>
public sealed class LedgerPipeline
{
    public LedgerPipeline(RingSettings ring, Journal journal, InstrumentTable instruments, TimeProvider? clock = null)
    {
        Journal = journal;
        Builder = new PipelineBuilder<TxSlot>(ring);
        Blocks = new BlockTable(ring.Size);
        Sealer = new Sealer(new BlockBuilder(journal.Head, journal.Settings.MaxTransactionsPerBlock), journal, Blocks, clock ?? TimeProvider.System);
        Validate = Builder.AddStage("validate", new ValidateStage(instruments));
        Seal = Builder.AddStage("seal", new SealStage(Sealer), Validate);
        Journaled = Builder.AddStage("journal", new JournalStage(journal, Blocks), Seal);
    }

    public Journal Journal { get; }

    public PipelineBuilder<TxSlot> Builder { get; }

    public BlockTable Blocks { get; }

    public Sealer Sealer { get; }

    public Stage Validate { get; }

    public Stage Seal { get; }

    /// <summary>The stage after which a transaction is journaled: later stages run after this one.</summary>
    public Stage Journaled { get; }
}
