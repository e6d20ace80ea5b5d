using Engine.Core.Ring;

namespace Engine.Core.Ledger;

/// <summary>
/// The pair's half of the ack gate: "acknowledged by the backup" is a sequence (a block number) that
/// the mirror advances on its link's thread, and the gate waits for it on the inbound ring's own wait
/// strategy, as a stage waits for its upstream: a short spin, then a park that the mirror's
/// <see cref="IBlockMirror.OnAckProgress"/> signal ends. No lock is shared with the link, and the gate's
/// thread wakes only when the answer may have changed.
/// </summary>
internal sealed class AckGate : IWaitCondition
{
    private readonly IBlockMirror _mirror;
    private readonly RingState _ring;
    private readonly WaitStrategy _wait;
    private ulong _blockNo;
    private string? _never;

    public AckGate(IBlockMirror mirror, RingBuffer<TxSlot> ring)
    {
        _mirror = mirror;
        _ring = ring.State;
        _wait = ring.Wait;
        mirror.OnAckProgress(_wait.Signal);
    }

    /// <summary>Returns once the backup has acknowledged <paramref name="blockNo"/>.</summary>
    /// <exception cref="OperationCanceledException">It never will be (the node halted or stops without a backup), or the pipeline was stopped meanwhile.</exception>
    public void WaitAcked(ulong blockNo)
    {
        if (_mirror.IsAcknowledged(blockNo, out string? never))
        {
            return;
        }
        _blockNo = blockNo;
        _never = never;
        if (never is null && _wait.WaitFor(1, this) != WaitStrategy.Alerted)
        {
            return;
        }
        throw new OperationCanceledException(_never ?? $"the pipeline stopped: block {blockNo} was never acknowledged by a backup");
    }

    /// <summary>
    /// Asks without waiting: true once the backup has acknowledged <paramref name="blockNo"/>. The
    /// mirror signals the ring's wait strategy whenever the answer may have changed, so a stage may
    /// wait for it in its own park.
    /// </summary>
    /// <exception cref="OperationCanceledException">It never will be (the node halted, or stops without a backup).</exception>
    public bool IsAcked(ulong blockNo)
    {
        if (_mirror.IsAcknowledged(blockNo, out string? never))
        {
            return true;
        }
        return never is null ? false : throw new OperationCanceledException(never);
    }

    long IWaitCondition.Poll(long target) => _mirror.IsAcknowledged(_blockNo, out _never) ? target : 0;

    bool IWaitCondition.IsAlerted => _never is not null || _ring.IsAlerted;
}
