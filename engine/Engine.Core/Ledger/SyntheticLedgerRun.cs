using System.Diagnostics;
using Engine.Core.Journaling;
using Engine.Core.Ring;
using Engine.Protocol;

namespace Engine.Core.Ledger;

/// <summary>What a synthetic run through the ledger pipeline did.</summary>
public sealed record LedgerRunResult(long Submitted, long Accepted, long Rejected, long Blocks, long JournalBytes, TimeSpan Elapsed)
{
    public double TransactionsPerSecond => Submitted / Elapsed.TotalSeconds;

    public double JournalBytesPerSecond => JournalBytes / Elapsed.TotalSeconds;
}

/// <summary>
/// Pushes synthetic request frames through the real pipeline (ring → validate → seal → journal)
/// into a real journal: the <c>pipeline</c> benchmark and <c>engine log generate</c> both run it.
/// </summary>
public static class SyntheticLedgerRun
{
    /// <summary>Frames are pre-encoded in a pool this large and reused round-robin.</summary>
    public const int FramePool = 1 << 16;

    /// <summary>
    /// Runs <paramref name="count"/> requests and waits until all are through the journal stage and
    /// committed. <paramref name="onDurable"/>, if given, hears every block once it is journaled
    /// (on a stage thread, in order). A non-zero <c>rootsEvery</c> runs a records-root builder at that
    /// interval, as a node does (on a busy machine it may hand over nothing before a short run ends); a
    /// non-zero <c>rootsEveryRequests</c> instead has the producer commit the journal and run the
    /// builder itself every that many requests, so that a generated journal's roots do not depend on
    /// the scheduler.
    /// </summary>
    public static LedgerRunResult Run(Journal journal, long count, RingSettings ring, int seed = 42, Action<SealedBlock>? onDurable = null,
        StageTopology topology = StageTopology.Separate, TimeSpan rootsEvery = default, int rootsEveryRequests = 0)
    {
        InstrumentTable instruments = InstrumentTable.Development();
        var flow = new SyntheticOrderFlow(seed, instruments);
        (byte[] frames, int[] lengths) = flow.Encode((int)Math.Min(count, FramePool));

        Book.ReferenceView reference = Book.ReferenceView.OfInstruments(instruments);
        // A new ledger starts with its reference data, as a node's does: a replay then has the books the orders are for.
        Chain.ChainHead? head = journal.Head.BlockNo == 0 ? SealReferenceData(journal, Book.ReferenceData.Development()) : null;
        var ledger = new LedgerPipeline(ring, journal, () => reference, topology: topology, head: head);
        using RecordsRootBuilder? roots = rootsEveryRequests > 0 ? new RecordsRootBuilder(journal, TimeSpan.Zero)
            : rootsEvery > TimeSpan.Zero ? new RecordsRootBuilder(journal, rootsEvery) : null;
        ledger.Sealer.Builder.RootSource = roots;
        using var tally = new Tally(count - 1, ledger.Blocks, onDurable);
        ledger.AddAfterJournal("tally", new TallyStage(tally));
        long sealedBytesBefore = ledger.Sealer.BytesSealed;

        ulong firstSeq = ledger.Sealer.ClientSeqs.Highest(1) + 1;
        // Frames made invalid on purpose stay invalid: only frames whose CRC holds are restamped.
        bool[] crcValid = [.. Enumerable.Range(0, lengths.Length).Select(k =>
            Frame.Check(frames.AsSpan(k * TransactionCodec.MaxFrameBytes, lengths[k]), out _, out _) == RejectReason.None)];
        var clock = Stopwatch.StartNew();
        using (Pipeline<TxSlot> pipeline = ledger.Builder.Start())
        {
            RingBuffer<TxSlot> ringBuffer = pipeline.Ring;
            int pooled = lengths.Length;
            for (long i = 0; i < count; i++)
            {
                int k = (int)(i % pooled);
                long sequence = ringBuffer.Next();
                ref TxSlot slot = ref ringBuffer[sequence];
                slot.SessionClientId = 0;
                slot.Probe = null;
                slot.Admin = null;
                slot.SetFrame(frames.AsSpan(k * TransactionCodec.MaxFrameBytes, lengths[k]));
                if (i >= pooled && crcValid[k])
                {
                    // A pooled frame used again: give it the next clientSeq (and a fresh CRC), as a
                    // client would, or the sealer would rightly take it for a resend.
                    Frame.Restamp(slot.Frame[..lengths[k]], firstSeq + (ulong)i);
                }
                ringBuffer.Publish(sequence);
                if (rootsEveryRequests > 0 && (i + 1) % rootsEveryRequests == 0)
                {
                    journal.Flush();
                    roots!.Poll();
                }
            }
            tally.WaitDone(pipeline);
        }
        journal.Flush();
        clock.Stop();
        return new LedgerRunResult(count, tally.Accepted, tally.Rejected, ledger.Sealer.BlocksSealed, ledger.Sealer.BytesSealed - sealedBytesBefore, clock.Elapsed);
    }

    /// <summary>Appends blocks of <paramref name="reference"/>'s admin transactions after the journal's head; returns the new head.</summary>
    private static Chain.ChainHead SealReferenceData(Journal journal, Book.ReferenceData reference)
    {
        var builder = new Chain.BlockBuilder(journal.Head, journal.Settings.MaxTransactionsPerBlock);
        foreach (Transaction admin in reference.AdminTransactions())
        {
            builder.Add(in admin);
            if (builder.IsFull)
            {
                journal.Append(builder.Seal(Journal.UnixNanos(TimeProvider.System), out _));
            }
        }
        if (builder.Count > 0)
        {
            journal.Append(builder.Seal(Journal.UnixNanos(TimeProvider.System), out _));
        }
        return builder.Head;
    }

    private sealed class Tally(long lastSequence, BlockTable blocks, Action<SealedBlock>? onDurable) : IDisposable
    {
        private readonly ManualResetEventSlim _done = new(false);

        public long LastSequence { get; } = lastSequence;

        public BlockTable Blocks { get; } = blocks;

        public Action<SealedBlock>? OnDurable { get; } = onDurable;

        public long Accepted;
        public long Rejected;

        public void Done() => _done.Set();

        public void Dispose() => _done.Dispose();

        public void WaitDone(Pipeline<TxSlot> pipeline)
        {
            while (!_done.Wait(TimeSpan.FromSeconds(1)))
            {
                if (pipeline.Fault is { } fault)
                {
                    throw new PipelineHaltedException(fault);
                }
            }
        }
    }

    private struct TallyStage(Tally tally) : IStageHandler<TxSlot>
    {
        private long _accepted;
        private long _rejected;
        private ulong _reportedBlockNo;

        public void OnEvent(ref TxSlot slot, long sequence, bool endOfBatch)
        {
            if (slot.Reject == RejectReason.None && !slot.Duplicate)
            {
                _accepted++;
                if (tally.OnDurable is not null && slot.BlockNo > _reportedBlockNo)
                {
                    // The first transaction of a block to pass the journal stage means the block is journaled.
                    _reportedBlockNo = slot.BlockNo;
                    tally.OnDurable(tally.Blocks[slot.BlockNo]);
                }
            }
            else
            {
                _rejected++;
            }
            if (sequence == tally.LastSequence)
            {
                tally.Accepted = _accepted;
                tally.Rejected = _rejected;
                tally.Done();
            }
        }
    }
}
