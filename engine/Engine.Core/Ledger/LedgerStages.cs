using Engine.Core.Book;
using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Protocol;
using Engine.Core.Ring;

namespace Engine.Core.Ledger;

/// <summary>
/// Stage 1: the checks before the ledger. Decodes the frame in place (length, version, CRC, type,
/// field ranges) and checks the instrument and the tick against the ledger's reference data as last
/// published (<see cref="ReferenceView"/>). A rejected slot flows on with its reason and never
/// reaches a block. An admin transaction (<see cref="TxSlot.Admin"/>) comes decoded and checked by
/// the operator's endpoint: it passes as it is, to be sealed and decided by the book.
/// </summary>
/// <remarks>
/// With <paramref name="checkSessions"/> (a real gateway), a request must also carry the client id
/// its session logged on with, of a client the ledger has enabled, for an account it may trade.
/// The book checks all of it again at the transaction's place in the log, where it decides.
/// </remarks>
public readonly struct ValidateStage(Func<ReferenceView> reference, bool checkSessions) : IStageHandler<TxSlot>
{
    public void OnEvent(ref TxSlot slot, long sequence, bool endOfBatch)
    {
        if (slot.Probe is not null || slot.Admin is not null)
        {
            return;
        }
        // Unsigned: a negative length (never written by a session, but the slot is not trusted) is
        // refused here too, before FrameBytes would slice with it.
        if ((uint)slot.FrameLength > FrameBuffer.Capacity)
        {
            slot.Reject = slot.FrameLength < 0 ? RejectReason.FrameTooShort : RejectReason.FrameTooLarge;
            slot.Tx = default;
            return;
        }
        RejectReason reason = TransactionCodec.Decode(slot.FrameBytes, out slot.Tx);
        ReferenceView view = reference();
        if (reason == RejectReason.None && checkSessions)
        {
            reason = slot.Tx.ClientId != slot.SessionClientId ? RejectReason.ClientMismatch
                : slot.Tx.Kind == MessageType.Cancel ? RejectReason.None // a disabled client may still cancel
                : view.CheckEntitlement(slot.Tx.ClientId, slot.Tx.Account);
        }
        slot.Reject = reason != RejectReason.None ? reason : view.Instruments.Check(in slot.Tx);
    }
}

/// <summary>
/// The sealer's state: the block being built, the journal it appends to, the table of sealed blocks.
/// Owned by the seal stage's thread.
/// </summary>
public sealed class Sealer(BlockBuilder builder, IJournal journal, BlockTable blocks, ClientSeqTable clientSeqs, TimeProvider clock, IBlockMirror? mirror = null)
{
    /// <summary>The backup every block is mirrored to, or null for a node alone.</summary>
    public IBlockMirror? Mirror { get; } = mirror;

    public BlockBuilder Builder { get; } = builder;

    /// <summary>The highest clientSeq sealed per client: duplicates stop here.</summary>
    public ClientSeqTable ClientSeqs { get; } = clientSeqs;

    public BlockTable Blocks { get; } = blocks;

    public long BlocksSealed { get; private set; }

    public long BytesSealed { get; private set; }

    /// <summary>Seals a block that carries only the records root waiting, if one is and no block is open (<see cref="StateProbe.SealRoot"/>).</summary>
    public void CutForRoot()
    {
        if (Builder.TryOpenForRoot())
        {
            Cut();
        }
    }

    /// <summary>Seals the open block, appends it to the journal and records it.</summary>
    public void Cut()
    {
        long sealedAt = Journal.UnixNanos(clock);
        ReadOnlySpan<byte> entry = Builder.Seal(sealedAt, out ChainHead head);
        long address = journal.Append(entry);
        Blocks.Record(head.BlockNo, address, head.Hash, sealedAt);
        Mirror?.Send(entry, in head);
        BlocksSealed++;
        BytesSealed += entry.Length;
    }
}

/// <summary>
/// Stage 2: gives each accepted transaction its LSN and block, and cuts a block at the end of
/// every ring batch (nothing waits for a block to fill) or when it is full.
/// </summary>
/// <remarks>
/// <para>Before a transaction gets an LSN, its (clientId, clientSeq) is checked against the
/// <see cref="ClientSeqTable"/>: one not above the highest sealed for that client is marked
/// <see cref="TxSlot.Duplicate"/> (a client resending after a reconnect; the apply stage answers it
/// with the original outcome); one more than a window ahead is rejected
/// (<see cref="RejectReason.ClientSeqTooFarAhead"/>) and never journaled, so no single request can
/// make a client's seqs jump; a client id no client can have is rejected.</para>
/// <para>Total for any slot content: every slot gets a verdict, nothing here throws on a field.</para>
/// </remarks>
public readonly struct SealStage(Sealer sealer) : IStageHandler<TxSlot>
{
    public void OnEvent(ref TxSlot slot, long sequence, bool endOfBatch)
    {
        BlockBuilder builder = sealer.Builder;
        slot.Duplicate = false;
        if (slot.Admin is not null)
        {
            // No client's request: not numbered by a client, never a duplicate. Sealed as it is.
            slot.BlockNo = builder.NextBlockNo;
            slot.Lsn = builder.Add(in slot.Tx);
            if (builder.IsFull)
            {
                sealer.Cut();
            }
        }
        else if (slot.Probe is null && slot.Reject != RejectReason.None)
        {
            // Answered before the ledger: its seq is spent (the client goes on with the next), which
            // moves the client's window. Only the session's own client: a request naming another
            // client id (ClientMismatch) must not move that client's window.
            if (slot.Tx.ClientId == slot.SessionClientId)
            {
                sealer.ClientSeqs.NoteAnsweredBeforeLedger(slot.Tx.ClientId, slot.Tx.ClientSeq);
            }
        }
        else if (slot.Probe is null)
        {
            switch (sealer.ClientSeqs.TryAdvance(slot.Tx.ClientId, slot.Tx.ClientSeq))
            {
                case ClientSeqVerdict.Next:
                    slot.BlockNo = builder.NextBlockNo;
                    slot.Lsn = builder.Add(in slot.Tx);
                    if (builder.IsFull)
                    {
                        sealer.Cut();
                    }
                    break;
                case ClientSeqVerdict.Duplicate:
                    slot.Duplicate = true;
                    break;
                case ClientSeqVerdict.TooFarAhead:
                    slot.Reject = RejectReason.ClientSeqTooFarAhead;
                    break;
                default:
                    slot.Reject = RejectReason.BadClientId;
                    break;
            }
        }
        else if (slot.Probe.SealsRoot && builder.Count == 0)
        {
            sealer.CutForRoot();
        }
        if (endOfBatch && builder.Count > 0)
        {
            sealer.Cut();
        }
    }
}

/// <summary>
/// Stage 3, the ack gate: lets a transaction pass only once its block is journaled in the
/// configured durability (memory: at once; disk: after the commit that covers it) and, in a pair,
/// acknowledged by the backup (<see cref="AckGate"/>: a wait on the ring's strategy, not on the pair's lock).
/// </summary>
/// <remarks>
/// Two forms of one rule: <see cref="OnEvent"/> waits where it stands (a stage of its own, or fused
/// before apply); <see cref="Gate"/> only asks, for the seal-ahead topology's stage, which seals more
/// while earlier blocks wait (<see cref="SealAheadHandler{TAfter}"/>).
/// </remarks>
internal struct JournalStage(IJournal journal, BlockTable blocks, AckGate? acks = null) : IStageHandler<TxSlot>
{
    private ulong _durableBlockNo;

    public void OnEvent(ref TxSlot slot, long sequence, bool endOfBatch)
    {
        if (PassesFreely(ref slot))
        {
            return;
        }
        // Blocks are journaled in order, so the newest durable block covers all before it.
        journal.WaitDurable(blocks[slot.BlockNo].Address);
        acks?.WaitAcked(slot.BlockNo);
        _durableBlockNo = slot.BlockNo;
    }

    /// <summary>Whether <paramref name="slot"/> may pass now; <see cref="GateState.Blocking"/> while its block awaits a journal commit (<see cref="Block"/> waits for it).</summary>
    /// <exception cref="JournalFaultException">The journal has failed.</exception>
    /// <exception cref="OperationCanceledException">The backup never will acknowledge the block.</exception>
    public GateState Gate(ref TxSlot slot)
    {
        if (PassesFreely(ref slot))
        {
            return GateState.Open;
        }
        long address = blocks[slot.BlockNo].Address;
        if (!journal.IsDurable(address))
        {
            return GateState.Blocking;
        }
        journal.WaitDurable(address); // durable already: returns at once, or throws the journal's sticky fault
        if (acks is not null && !acks.IsAcked(slot.BlockNo))
        {
            return GateState.Signalled;
        }
        _durableBlockNo = slot.BlockNo;
        return GateState.Open;
    }

    /// <summary>Waits for the journal commit that <see cref="Gate"/> found missing.</summary>
    public readonly void Block(ref TxSlot slot) => journal.WaitDurable(blocks[slot.BlockNo].Address);

    private readonly bool PassesFreely(ref TxSlot slot) =>
        slot.Reject != RejectReason.None || slot.Duplicate || slot.Probe is not null || slot.BlockNo <= _durableBlockNo;
}
