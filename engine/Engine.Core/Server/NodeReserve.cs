using Engine.Core.Ledger;
using Engine.Core.Ring;

namespace Engine.Core.Server;

/// <summary>
/// The big pieces of a serving node, made ahead of time: its rings and the table of sealed blocks
/// (tens of MB), allocated and every page touched. A backup makes one while it follows, so that its
/// takeover neither waits for the allocation and zeroing (~15 ms here) nor page-faults on the first
/// orders after it. Used once, by <see cref="EngineNode.StartWith"/>.
/// </summary>
public sealed class NodeReserve
{
    private int _taken;

    private NodeReserve(RingBuffer<TxSlot> inbound, BlockTable blocks, RingBuffer<OutboundSlot>? outbound, string waitStrategy)
    {
        Inbound = inbound;
        Blocks = blocks;
        Outbound = outbound;
        WaitStrategy = waitStrategy;
    }

    internal RingBuffer<TxSlot> Inbound { get; }

    internal BlockTable Blocks { get; }

    /// <summary>The outbound ring, only for a node that dispatches through it (<see cref="EngineSettings.DispatchOnApplyThread"/> false).</summary>
    internal RingBuffer<OutboundSlot>? Outbound { get; }

    internal string WaitStrategy { get; }

    /// <summary>Makes the pieces a node with <paramref name="settings"/> needs, and touches every page of them.</summary>
    public static NodeReserve Allocate(EngineSettings settings)
    {
        var inbound = new RingBuffer<TxSlot>(settings.RingSize, ProducerKind.Multi, Ring.WaitStrategy.Parse(settings.WaitStrategy));
        RingBuffer<OutboundSlot>? outbound = settings.DispatchOnApplyThread ? null
            : new RingBuffer<OutboundSlot>(settings.OutboundRingSize, ProducerKind.Single, Ring.WaitStrategy.Parse(settings.WaitStrategy));
        var blocks = new BlockTable(settings.RingSize);
        // One write per slot faults every page in now rather than on the order path.
        for (long i = 0; i < inbound.Size; i++)
        {
            inbound[i].FrameLength = 0;
        }
        for (long i = 0; i < (outbound?.Size ?? 0); i++)
        {
            outbound![i].Length = 0;
        }
        blocks.Touch();
        return new NodeReserve(inbound, blocks, outbound, settings.WaitStrategy);
    }

    /// <summary>True when it fits <paramref name="settings"/> and has not been used: once only.</summary>
    internal bool TryTake(EngineSettings settings) =>
        settings.RingSize == Inbound.Size && settings.WaitStrategy == WaitStrategy
        && (settings.DispatchOnApplyThread ? Outbound is null : Outbound?.Size == settings.OutboundRingSize)
        && Interlocked.Exchange(ref _taken, 1) == 0;
}
