using Engine.Protocol;

namespace Engine.Client;

/// <summary>
/// The requests a client has sent and not had answered, by clientSeq: a ring of slots (the window,
/// rounded up to a power of two) indexed by clientSeq, so finding a request by its answer's seq costs
/// one index. A seq takes its slot only once the request that held it (window slots earlier) is
/// answered: an old request that stays unanswered holds the window there, and no request is ever
/// forgotten. Resends after a failover go oldest first with their original seqs; a second answer for
/// the same seq (the original's and a resend's) finds the slot empty and is dropped.
/// </summary>
/// <remarks>Not thread-safe: the client calls it under its lock. Time comes in as milliseconds (the caller's clock).</remarks>
internal sealed class PendingWindow
{
    private readonly Slot[] _slots;
    private readonly ulong _mask;
    private ulong _lastSeq;
    private ulong _oldestUnanswered = 1;

    /// <param name="maxInFlight">Requests in flight at most (the ring has the next power of two of slots).</param>
    public PendingWindow(int maxInFlight)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxInFlight, 1);
        int capacity = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)maxInFlight);
        _slots = new Slot[capacity];
        _mask = (ulong)capacity - 1;
    }

    /// <summary>The last clientSeq given out.</summary>
    public ulong LastSeq => _lastSeq;

    /// <summary>The oldest clientSeq not answered yet (<see cref="LastSeq"/> + 1 when none is).</summary>
    public ulong OldestUnanswered => _oldestUnanswered;

    /// <summary>Requests sent and not answered.</summary>
    public int InFlight { get; private set; }

    /// <summary>Starts numbering after <paramref name="lastSeq"/> (what the engine told the logon it has seen).</summary>
    public void StartAfter(ulong lastSeq)
    {
        _lastSeq = lastSeq;
        _oldestUnanswered = lastSeq + 1;
    }

    /// <summary>
    /// Gives <paramref name="tx"/> the next clientSeq and keeps it until it is answered; false (nothing
    /// changed) while that seq's slot is still held by an older unanswered request.
    /// </summary>
    public bool TryAdd(ref Transaction tx, TaskCompletionSource<SubmitResult>? answer, long nowMs)
    {
        ref Slot slot = ref _slots[(int)((_lastSeq + 1) & _mask)];
        if (slot.Live)
        {
            return false;
        }
        tx.ClientSeq = ++_lastSeq;
        slot = new Slot { Tx = tx, Answer = answer, Live = true, SentMs = nowMs };
        InFlight++;
        return true;
    }

    /// <summary>The answer for <paramref name="clientSeq"/> came: true, with what waits for it, if it was unanswered; false for a second answer or a seq never sent.</summary>
    public bool TryComplete(ulong clientSeq, out TaskCompletionSource<SubmitResult>? answer)
    {
        ref Slot slot = ref _slots[(int)(clientSeq & _mask)];
        if (!slot.Live || slot.Tx.ClientSeq != clientSeq)
        {
            answer = null;
            return false;
        }
        answer = slot.Answer;
        slot = default;
        InFlight--;
        SkipAnswered();
        return true;
    }

    /// <summary>The unanswered request <paramref name="clientSeq"/>, if it is one; its send time becomes <paramref name="nowMs"/> (it is being sent again).</summary>
    public bool TryResend(ulong clientSeq, long nowMs, out Transaction tx)
    {
        ref Slot slot = ref _slots[(int)(clientSeq & _mask)];
        if (slot.Live && slot.Tx.ClientSeq == clientSeq)
        {
            slot.SentMs = nowMs;
            tx = slot.Tx;
            return true;
        }
        tx = default;
        return false;
    }

    /// <summary>Whether the oldest unanswered request has waited longer than <paramref name="timeoutMs"/>; if so its wait starts again (one failover per timeout, not one per check).</summary>
    public bool OldestOverdue(long nowMs, long timeoutMs)
    {
        SkipAnswered();
        ref Slot oldest = ref _slots[(int)(_oldestUnanswered & _mask)];
        if (oldest.Live && nowMs - oldest.SentMs > timeoutMs)
        {
            oldest.SentMs = nowMs;
            return true;
        }
        return false;
    }

    /// <summary>Forgets every request; returns what waited for them (to fail them).</summary>
    public List<TaskCompletionSource<SubmitResult>> Clear()
    {
        var waiting = new List<TaskCompletionSource<SubmitResult>>();
        for (int i = 0; i < _slots.Length; i++)
        {
            if (_slots[i].Live && _slots[i].Answer is { } answer)
            {
                waiting.Add(answer);
            }
            _slots[i] = default;
        }
        InFlight = 0;
        _oldestUnanswered = _lastSeq + 1;
        return waiting;
    }

    private void SkipAnswered()
    {
        while (_oldestUnanswered <= _lastSeq && !_slots[(int)(_oldestUnanswered & _mask)].Live)
        {
            _oldestUnanswered++;
        }
    }

    private struct Slot
    {
        public long SentMs;
        public Transaction Tx;
        public TaskCompletionSource<SubmitResult>? Answer;
        public bool Live;
    }
}
