namespace Engine.Tests.Ring;

/// <summary>The slot type of the ring tests: what producers write and what stages stamp.</summary>
public struct TestEvent
{
    public long Value;
    public int Producer;
    public long ProducerSeq;
    public long StampA;
    public long StampB;
    public long StampC;
}
