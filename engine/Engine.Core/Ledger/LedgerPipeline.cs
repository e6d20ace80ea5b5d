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
    /// <param name="ring">The inbound ring.</param>
    /// <param name="journal">The journal the blocks go to; the chain continues after its head.</param>
    /// <param name="instruments">For the reference-data checks.</param>
    /// <param name="entitlements">Clients and their accounts, checked against the session; null for synthetic runs without sessions.</param>
    /// <param name="clientSeqs">The highest clientSeq already in the ledger per client (from the replayed state); null for none.</param>
    /// <param name="clock">Block timestamps.</param>
    public LedgerPipeline(RingSettings ring, Journal journal, InstrumentTable instruments, Book.ReferenceData? entitlements = null,
        ClientSeqTable? clientSeqs = null, TimeProvider? clock = null)
    {
        Journal = journal;
        Builder = new PipelineBuilder<TxSlot>(ring);
        Blocks = new BlockTable(ring.Size);
        Sealer = new Sealer(new BlockBuilder(journal.Head, journal.Settings.MaxTransactionsPerBlock), journal, Blocks,
            clientSeqs ?? new ClientSeqTable(), clock ?? TimeProvider.System);
        Validate = Builder.AddStage("validate", new ValidateStage(instruments, entitlements));
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
