using Engine.Core.Server;

namespace Engine.Tests.Server;

/// <summary>The rings a backup makes ahead of its takeover: taken once, and only by a node whose settings they fit.</summary>
public class NodeReserveTests
{
    private static EngineSettings Settings(int ring = 1024, int outbound = 2048, string wait = "adaptive", bool dispatchOnApplyThread = false) =>
        new() { Data = "unused", RingSize = ring, OutboundRingSize = outbound, WaitStrategy = wait, DispatchOnApplyThread = dispatchOnApplyThread };

    [Test]
    public void A_reserve_is_taken_once_by_a_node_it_fits()
    {
        NodeReserve reserve = NodeReserve.Allocate(Settings());
        Assert.That(reserve.Inbound.Size, Is.EqualTo(1024));
        Assert.That(reserve.Outbound!.Size, Is.EqualTo(2048));
        Assert.That(reserve.TryTake(Settings()), Is.True, "the first node it fits takes it");
        Assert.That(reserve.TryTake(Settings()), Is.False, "a ring is used by one pipeline only: the next node makes its own");
    }

    [Test]
    public void A_node_that_dispatches_on_its_apply_thread_gets_no_outbound_ring()
    {
        NodeReserve reserve = NodeReserve.Allocate(Settings(dispatchOnApplyThread: true));
        Assert.That(reserve.Outbound, Is.Null, "nothing made (and touched) that the node will not use");
        Assert.That(reserve.TryTake(Settings()), Is.False, "a node dispatching through the ring needs one");
        Assert.That(reserve.TryTake(Settings(dispatchOnApplyThread: true)), Is.True);
    }

    [TestCase(2048, 2048, "adaptive")]
    [TestCase(1024, 4096, "adaptive")]
    [TestCase(1024, 2048, "blocking")]
    public void A_reserve_made_for_other_ring_settings_is_not_taken(int ring, int outbound, string wait)
    {
        NodeReserve reserve = NodeReserve.Allocate(Settings());
        Assert.That(reserve.TryTake(Settings(ring, outbound, wait)), Is.False);
        Assert.That(reserve.TryTake(Settings()), Is.True, "still there for a node it fits");
    }
}
