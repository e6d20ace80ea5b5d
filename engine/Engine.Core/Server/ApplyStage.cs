using Engine.Core.Book;
using Engine.Core.Ledger;
using Engine.Core.Ring;
using Engine.Protocol;

namespace Engine.Core.Server;

/// <summary>
/// Counters the stages bump and the admin endpoint reads. Each has one writer (the apply thread,
/// or the dispatch thread for <see cref="Dropped"/>), so a volatile store of value + 1 suffices.
/// </summary>
public sealed class NodeCounters
{
    public long Applied;
    public long Rejected;
    public long Duplicates;
    public long Reports;
    public long Dropped;
    public ulong LastLsn;

    /// <summary>From a session reading a request to its answer handed to the session's socket (the server's share of a client's latency).</summary>
    public LatencyRecorder ReceiveToAnswer { get; } = new();
}

/// <summary>
/// The business logic processor: applies each journaled transaction to the <see cref="Exchange"/>
/// (single thread, in LSN order), and answers every request exactly once through the outbound
/// ring: the receipt or the rejection, then the execution reports. Validation rejections and
/// duplicates are answered here too, so one thread decides every reply, in order.
/// </summary>
/// <remarks>
/// <para>A journaled transaction goes to the book through <see cref="BlockApplier.Apply"/>, the
/// per-transaction step that replay and the backup reach through <see cref="BlockApplier.ApplyBlock"/>,
/// so all three make the same book from the same blocks. This stage cannot take the whole-block
/// form: it sees a block's transactions one ring slot at a time, already decoded from the client's
/// frame (the block's bytes are the journal's), interleaved with the rejections, duplicates and
/// probes it answers in the same order, and it tells each outcome to the clients through the
/// outbound ring, where the whole-block form answers nobody.</para>
/// <para>In a pair it also computes the state checksum after every block <c>checksums</c> says is due
/// (<see cref="ChecksumCadence"/>), when the first transaction of a later block arrives (only then is the
/// block known to be complete, whatever the topology), and sends it to the backup, which computes
/// its own after the same block and compares.</para>
/// </remarks>
internal struct ApplyStage(BlockApplier applier, BlockTable blocks, ClientRegistry clients, ReplyOut outbound, NodeCounters counters,
    IBlockMirror? mirror = null, ChecksumSchedule? checksums = null)
    : IStageHandler<TxSlot>
{
    private ulong _appliedBlockNo;
    private ulong _checksummedBlockNo;

    public void OnEvent(ref TxSlot slot, long sequence, bool endOfBatch)
    {
        OnEventCore(ref slot);
        if (endOfBatch)
        {
            outbound.Direct?.FlushAll(); // dispatching on this thread: the batch's answers go out now
        }
    }

    private void ChecksumIfDue(ulong completeBlockNo)
    {
        if (mirror is null || checksums is null || completeBlockNo == 0 || completeBlockNo == _checksummedBlockNo
            || !checksums.After(completeBlockNo, blocks[completeBlockNo].TimestampNs))
        {
            return;
        }
        _checksummedBlockNo = completeBlockNo;
        mirror.SendStateChecksum(completeBlockNo, applier.Exchange.ComputeChecksum());
    }

    private void OnEventCore(ref TxSlot slot)
    {
        if (slot.Probe is { } probe)
        {
            if (probe.SealsRoot)
            {
                return;
            }
            Exchange book = applier.Exchange;
            probe.Complete(new StateReport(book.LastLsn, book.ComputeChecksum(), book.OpenOrders, book.TradeCount));
            return;
        }
        if (slot.Admin is { } admin)
        {
            // An operator's: the outcome goes back to the admin endpoint, the reports (cancel-all) to the clients.
            var adminSink = new AdminSink(new OutboundSink(outbound, counters));
            ApplyJournaled(ref slot, ref adminSink);
            admin.Complete(adminSink.Reason, slot.Lsn, slot.BlockNo);
            return;
        }
        // Out of flight before any reply goes out: the client may send its next request as soon as
        // it reads the reply, and the gateway must not count this one against it then.
        if (clients[slot.SessionClientId] is { } client)
        {
            Interlocked.Decrement(ref client.InFlight);
        }
        var sink = new OutboundSink(outbound, counters, slot.ReceivedTicks);
        if (slot.Reject != RejectReason.None)
        {
            // Never in the ledger: the client id in the frame may be anything, so answer the session's client.
            sink.Reject(slot.SessionClientId, slot.Tx.ClientSeq, slot.Reject, 0);
        }
        else if (slot.Duplicate)
        {
            applier.Exchange.AnswerDuplicate(in slot.Tx, ref sink);
            Volatile.Write(ref counters.Duplicates, counters.Duplicates + 1);
        }
        else
        {
            ApplyJournaled(ref slot, ref sink);
        }
    }

    private void ApplyJournaled<TSink>(ref TxSlot slot, ref TSink sink)
        where TSink : struct, IExecutionSink
    {
        if (slot.BlockNo != _appliedBlockNo)
        {
            // A new block begins: the previous one is complete.
            ChecksumIfDue(_appliedBlockNo);
            _appliedBlockNo = slot.BlockNo;
        }
        ref readonly SealedBlock block = ref blocks[slot.BlockNo];
        applier.Apply(in slot.Tx, slot.Lsn, block.BlockNo, in block.Hash, ref sink);
        Volatile.Write(ref counters.Applied, counters.Applied + 1);
        Volatile.Write(ref counters.LastLsn, slot.Lsn);
    }
}

/// <summary>An admin transaction's outcome is kept for its submission; the execution reports it causes go to their clients.</summary>
internal struct AdminSink(OutboundSink clients) : IExecutionSink
{
    public RejectReason Reason { get; private set; }

    public readonly void Accepted(in Transaction tx, ulong lsn, ulong blockNo, in Hash32 blockHash)
    {
    }

    public void Rejected(in Transaction tx, RejectReason reason, ulong lsn) => Reason = reason;

    public readonly void Execution(in ExecutionReport report) => clients.Execution(in report);
}

/// <summary>
/// Where the apply stage's answers go: into the outbound ring (its dispatch stage sends them, on a
/// thread of its own), or, with <see cref="Direct"/>, straight to the dispatcher on the apply thread
/// (one thread hand-over less per answer; the sockets are never waited on either way).
/// </summary>
internal sealed class ReplyOut(RingBuffer<OutboundSlot>? ring, Dispatcher? direct)
{
    private readonly byte[] _scratch = direct is null ? [] : new byte[ReplyCodec.MaxFrameBytes];

    /// <summary>The dispatcher the apply thread hands answers to itself; null: through the ring.</summary>
    public Dispatcher? Direct { get; } = direct;

    /// <summary>Where to encode the next frame.</summary>
    public Span<byte> Begin(out long sequence)
    {
        if (ring is null)
        {
            sequence = -1;
            return _scratch;
        }
        sequence = ring.Next();
        return ring[sequence].Buffer;
    }

    /// <summary>The frame encoded in <see cref="Begin"/>'s buffer goes to <paramref name="clientId"/>.</summary>
    public void End(long sequence, uint clientId, int length, long receivedTicks)
    {
        if (ring is null)
        {
            Direct!.Add(clientId, _scratch.AsSpan(0, length), receivedTicks);
            return;
        }
        ref OutboundSlot slot = ref ring[sequence];
        slot.ClientId = clientId;
        slot.ReceivedTicks = receivedTicks;
        slot.Length = length;
        ring.Publish(sequence);
    }
}

/// <summary>Encodes outcomes straight into the outbound frames, addressed to the client they concern.</summary>
/// <remarks>An answer carries <paramref name="receivedTicks"/>, when its request was read, for the server's latency histogram.</remarks>
internal readonly struct OutboundSink(ReplyOut outbound, NodeCounters counters, long receivedTicks = 0) : IExecutionSink
{
    public void Accepted(in Transaction tx, ulong lsn, ulong blockNo, in Hash32 blockHash)
    {
        var receipt = new Receipt { ClientId = tx.ClientId, ClientSeq = tx.ClientSeq, Lsn = lsn, BlockNo = blockNo, BlockHash = blockHash };
        Span<byte> buffer = outbound.Begin(out long sequence);
        outbound.End(sequence, tx.ClientId, ReplyCodec.EncodeAccepted(in receipt, buffer), receivedTicks);
    }

    public void Rejected(in Transaction tx, RejectReason reason, ulong lsn) => Reject(tx.ClientId, tx.ClientSeq, reason, lsn);

    public void Reject(uint clientId, ulong clientSeq, RejectReason reason, ulong lsn)
    {
        Span<byte> buffer = outbound.Begin(out long sequence);
        outbound.End(sequence, clientId, ReplyCodec.EncodeRejected(clientId, clientSeq, reason, lsn, RejectTexts.For(reason), buffer), receivedTicks);
        Volatile.Write(ref counters.Rejected, counters.Rejected + 1);
    }

    public void Execution(in ExecutionReport report)
    {
        Span<byte> buffer = outbound.Begin(out long sequence);
        outbound.End(sequence, report.ClientId, ReplyCodec.EncodeExecutionReport(in report, buffer), 0);
        Volatile.Write(ref counters.Reports, counters.Reports + 1);
    }
}

/// <summary>
/// Last stage of the outbound ring: gathers each client's frames of a ring batch and hands them to
/// the client's current session in one piece at the end of the batch (one lock and one writer
/// wake-up per client per batch, not per frame). Never waits on a socket.
/// </summary>
internal readonly struct DispatchStage(Dispatcher dispatcher) : IStageHandler<OutboundSlot>
{
    public void OnEvent(ref OutboundSlot slot, long sequence, bool endOfBatch)
    {
        dispatcher.Add(slot.ClientId, slot.Bytes, slot.ReceivedTicks);
        if (endOfBatch)
        {
            dispatcher.FlushAll();
        }
    }
}

/// <summary>
/// The dispatch stage's state: a staging buffer per client touched in the current batch, and when
/// each answer's request was read, recorded in <see cref="NodeCounters.ReceiveToAnswer"/> once the
/// batch is handed to the sessions.
/// </summary>
internal sealed class Dispatcher(ClientRegistry clients, NodeCounters counters)
{
    private const int StagingBytes = 16 * 1024;
    private const int MaxTimedPerBatch = 1024;

    private readonly long[] _received = new long[MaxTimedPerBatch];
    private int _timed;

    private readonly Dictionary<uint, byte[]> _staging = [];
    private readonly Dictionary<uint, int> _lengths = [];
    private readonly List<uint> _touched = [];

    public void Add(uint clientId, ReadOnlySpan<byte> frame, long receivedTicks = 0)
    {
        if (receivedTicks != 0)
        {
            if (_timed == MaxTimedPerBatch)
            {
                RecordTimed(); // a long batch: these are timed before their bytes leave (by a batch's length at most)
            }
            _received[_timed++] = receivedTicks;
        }
        if (!_staging.TryGetValue(clientId, out byte[]? buffer))
        {
            buffer = new byte[StagingBytes];
            _staging[clientId] = buffer;
            _lengths[clientId] = 0;
        }
        int length = _lengths[clientId];
        if (length == 0)
        {
            _touched.Add(clientId);
        }
        else if (length + frame.Length > buffer.Length)
        {
            Flush(clientId, buffer, length);
            length = 0;
        }
        frame.CopyTo(buffer.AsSpan(length));
        _lengths[clientId] = length + frame.Length;
    }

    public void FlushAll()
    {
        foreach (uint clientId in _touched)
        {
            int length = _lengths[clientId];
            if (length > 0)
            {
                Flush(clientId, _staging[clientId], length);
            }
        }
        _touched.Clear();
        RecordTimed();
    }

    private void RecordTimed()
    {
        long now = System.Diagnostics.Stopwatch.GetTimestamp();
        for (int i = 0; i < _timed; i++)
        {
            counters.ReceiveToAnswer.Record(now - _received[i], System.Diagnostics.Stopwatch.Frequency);
        }
        _timed = 0;
    }

    private void Flush(uint clientId, byte[] buffer, int length)
    {
        _lengths[clientId] = 0;
        Session? session = clients[clientId]?.Current;
        if (session is null || !session.Enqueue(buffer.AsSpan(0, length)))
        {
            // Not connected (or just disconnected for not reading): the client learns the outcome
            // by resending after it logs on again; the dedupe window answers with the original.
            Volatile.Write(ref counters.Dropped, counters.Dropped + 1);
        }
    }
}

/// <summary>Short reject texts, one per reason, allocated once.</summary>
internal static class RejectTexts
{
    private static readonly Dictionary<RejectReason, string> s_texts = Enum.GetValues<RejectReason>().ToDictionary(r => r, Describe);

    public static string For(RejectReason reason) => s_texts.TryGetValue(reason, out string? text) ? text : "rejected";

    private static string Describe(RejectReason reason) => reason switch
    {
        RejectReason.Busy => "busy: retry",
        RejectReason.UnknownOrder => "no such live order of yours",
        RejectReason.RiskMaxQuantity => "risk: quantity above the account's limit",
        RejectReason.RiskMaxNotional => "risk: notional above the account's limit",
        RejectReason.RiskMaxOpenOrders => "risk: too many open orders for the account",
        RejectReason.StaleClientSeq => "clientSeq already used; its outcome is no longer kept",
        RejectReason.ClientMismatch => "client id differs from the session's",
        RejectReason.AccountNotAllowed => "account not allowed for this client",
        RejectReason.PriceNotOnTick => "price is not on the instrument's tick",
        RejectReason.UnknownInstrument => "unknown instrument",
        RejectReason.InstrumentHalted => "trading halt on this instrument: cancels only",
        RejectReason.ClientDisabled => "this client is disabled: cancels only",
        _ => reason.ToString(),
    };
}
