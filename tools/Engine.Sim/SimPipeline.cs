using Engine.Core.Book;
using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Core.Ledger;
using Engine.Core.Ring;
using Engine.Protocol;
using Engine.Replication.Pair;

namespace Engine.Sim;

/// <summary>
/// A serving primary's order path in the simulator: the real pipeline's handlers, run inline on the
/// simulator's thread in the order the single topology runs them on its one thread: validate and seal
/// (<see cref="ValidateStage"/> and <see cref="SealStage"/> fused; the <see cref="Sealer"/> appends to
/// the node's journal and hands the block to the pair node), the journal gate, and the apply stage's
/// per-transaction step (<see cref="BlockApplier.Apply"/>, <see cref="Exchange.AnswerDuplicate"/>) on
/// the ledger's book, which then computes the state checksums the backup compares.
/// </summary>
/// <remarks>
/// Where it differs from the threads of <see cref="LedgerPipeline"/>: the gate tests the two conditions
/// <see cref="JournalStage"/> waits for (the block journaled in the journal's durability, the backup's
/// acknowledgement) instead of waiting (nothing may block the simulator), so a request waits in
/// <see cref="_waiting"/>, in ring order, until <see cref="Pump"/> finds them true; each request is its
/// own ring batch (one block each); the replies go to the simulated clients, not through the outbound
/// ring's encoding.
/// </remarks>
public sealed class SimPipeline
{
    private readonly PairNode _pair;
    private readonly IJournal _journal;
    private readonly Sealer _sealer;
    private readonly BlockApplier _applier;
    private readonly ChecksumSchedule _checksums;
    private readonly Queue<(TxSlot Slot, SimClient? Client, int Connection)> _waiting = new();
#pragma warning disable IDE0044 // a mutable struct called in place
    private FusedHandler<TxSlot, ValidateStage, SealStage> _validateAndSeal;
#pragma warning restore IDE0044
    private long _sequence;

    /// <summary>Starts serving on <paramref name="ledger"/>'s journal and book, as <c>PairHost</c> starts its <c>EngineNode</c>: the chain from the ledger's head, in the pair node's epoch, the sealer's client-seq table from the book.</summary>
    public SimPipeline(PairNode pair, JournalPairLedger ledger, ReferenceData reference, TimeProvider clock, ChecksumCadence checksums)
    {
        _pair = pair;
        _journal = ledger.Journal;
        _applier = new BlockApplier(ledger.Exchange);
        _checksums = new ChecksumSchedule(checksums);
        var clientSeqs = new ClientSeqTable();
        clientSeqs.Seed(ledger.Exchange.ClientSeqs);
        var builder = new BlockBuilder(ledger.Head, _journal.Settings.MaxTransactionsPerBlock) { Epoch = pair.Epoch };
        _sealer = new Sealer(builder, _journal, new BlockTable(1024), clientSeqs, clock, new Mirror(pair));
        var source = new ReferenceSource(ledger.Exchange);
        _validateAndSeal = new(new ValidateStage(() => source.Current, checkSessions: true), new SealStage(_sealer));
        if (!ledger.Exchange.HasReferenceData)
        {
            source.Journaling(reference, SealReferenceData(reference));
        }
    }

    /// <summary>
    /// A new ledger's first transactions: the configured reference data, as <c>EngineNode</c> journals
    /// it, in one ring batch; applied (and answered to nobody) by <see cref="Pump"/> like any request.
    /// </summary>
    private Task SealReferenceData(ReferenceData reference)
    {
        Transaction[] initial = [.. reference.AdminTransactions()];
        Task applied = Task.CompletedTask;
        for (int i = 0; i < initial.Length; i++)
        {
            var submission = new AdminSubmission(initial[i]);
            var slot = new TxSlot { Admin = submission, Tx = initial[i] };
            _validateAndSeal.OnEvent(ref slot, _sequence++, endOfBatch: i == initial.Length - 1);
            _waiting.Enqueue((slot, null, 0));
            applied = submission.Outcome;
        }
        return applied;
    }

    /// <summary>Requests sealed and not yet answered.</summary>
    public int Waiting => _waiting.Count;

    /// <summary>
    /// A request from <paramref name="client"/>'s session: validated and sealed now (a new block, appended
    /// to the journal and sent to the backup), answered by <see cref="Pump"/> once the gate lets it go.
    /// Returns the sealed block's journal address, or null when nothing was sealed (a duplicate).
    /// </summary>
    /// <exception cref="JournalFaultException">The journal failed the append (the real pipeline halts on it).</exception>
    public long? Submit(SimClient client, int connection, in Transaction tx)
    {
        var slot = new TxSlot { SessionClientId = client.Id };
        Span<byte> frame = stackalloc byte[FrameBuffer.Capacity];
        slot.SetFrame(frame[..TransactionCodec.Encode(in tx, frame)]);
        long sealedBefore = _sealer.BlocksSealed;
        _validateAndSeal.OnEvent(ref slot, _sequence++, endOfBatch: true);
        if (slot.Reject != RejectReason.None)
        {
            // The simulated clients send only valid requests in their own order: a refusal here is the simulator's bug.
            throw new InvalidOperationException($"client {client.Id} seq {tx.ClientSeq} refused before the ledger: {slot.Reject}");
        }
        _waiting.Enqueue((slot, client, connection));
        return _sealer.BlocksSealed > sealedBefore ? _sealer.Blocks[slot.BlockNo].Address : null;
    }

    /// <summary>Answers, in ring order, every waiting request the gate lets go now; stops at the first it holds back.</summary>
    public void Pump(Action<SimClient, int, ulong, Receipt> answer)
    {
        while (_waiting.TryPeek(out (TxSlot Slot, SimClient? Client, int Connection) next))
        {
            ref readonly TxSlot slot = ref next.Slot;
            var sink = new FirstAnswer();
            if (slot.Duplicate)
            {
                _applier.Exchange.AnswerDuplicate(in slot.Tx, ref sink);
            }
            else
            {
                ref readonly SealedBlock block = ref _sealer.Blocks[slot.BlockNo];
                if (!_journal.IsDurable(block.Address) || !_pair.IsAcknowledged(slot.BlockNo))
                {
                    return;
                }
                _applier.Apply(in slot.Tx, slot.Lsn, block.BlockNo, in block.Hash, ref sink);
                // A client's request is a block of its own here; a new ledger's reference data fills a few:
                // a block is complete once no slot after it in the queue belongs to it.
                bool blockComplete = _waiting.Count < 2 || _waiting.ElementAt(1).Slot.BlockNo != slot.BlockNo;
                if (blockComplete && _checksums.After(slot.BlockNo, block.TimestampNs))
                {
                    _pair.OnStateChecksum(slot.BlockNo, _applier.Exchange.ComputeChecksum());
                }
            }
            _waiting.Dequeue();
            if (next.Client is null)
            {
                // The reference data a new ledger starts with: nobody to answer.
                slot.Admin!.Complete(sink.Reason, slot.Lsn, slot.BlockNo);
                continue;
            }
            Receipt? receipt = sink.Receipt;
            if (receipt is null && sink.RejectedLsn != 0 && _applier.Exchange.TryGetOutcome(slot.Tx.ClientId, slot.Tx.ClientSeq, out Outcome outcome))
            {
                receipt = new Receipt(outcome.BlockNo, outcome.Lsn, outcome.BlockHash); // journaled, and refused by the book
            }
            if (receipt is { } r)
            {
                answer(next.Client, next.Connection, slot.Tx.ClientSeq, r);
            }
            // Else its outcome is no longer kept (stale): unanswered, the client resends, and the run reports it.
        }
    }

    /// <summary>The node stops serving (stepped down or halted): what waits at the gate was never acknowledged; returns the clients to tell so.</summary>
    public IEnumerable<(SimClient Client, int Connection, ulong Seq)> Drain()
    {
        while (_waiting.TryDequeue(out (TxSlot Slot, SimClient? Client, int Connection) waiting))
        {
            if (waiting.Client is { } client)
            {
                yield return (client, waiting.Connection, waiting.Slot.Tx.ClientSeq);
            }
        }
    }

    /// <summary>The first answer the apply step gives for the request (its execution reports are not needed here).</summary>
    private struct FirstAnswer : IExecutionSink
    {
        public Receipt? Receipt;
        public ulong RejectedLsn;
        public RejectReason Reason;

        public void Accepted(in Transaction tx, ulong lsn, ulong blockNo, in Hash32 blockHash) => Receipt ??= new Sim.Receipt(blockNo, lsn, blockHash);

        public void Rejected(in Transaction tx, RejectReason reason, ulong lsn) => (RejectedLsn, Reason) = (lsn, reason);

        public readonly void Execution(in ExecutionReport report)
        {
        }
    }

    /// <summary>The pair node as the sealer's mirror: each sealed block goes to it (it sends the block to the backup).</summary>
    private sealed class Mirror(PairNode pair) : IBlockMirror
    {
        public bool IsConnected => pair.BackupInStep;

        public bool MayAcknowledge => pair.MayAcknowledge;

        public void Send(ReadOnlySpan<byte> block, in ChainHead sealedHead) => pair.OnBlockSealed(block, sealedHead.BlockNo, sealedHead.Hash);

        public void SendStateChecksum(ulong blockNo, Hash32 checksum) => pair.OnStateChecksum(blockNo, in checksum);

        // The simulator tests the gate's conditions (SimPipeline.Pump); nothing waits.
        public bool IsAcknowledged(ulong blockNo, out string? never)
        {
            never = null;
            return pair.IsAcknowledged(blockNo);
        }

        public void OnAckProgress(Action wake)
        {
        }

        public void BeginStop()
        {
        }
    }
}
