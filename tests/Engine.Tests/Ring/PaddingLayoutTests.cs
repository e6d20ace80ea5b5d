using System.Runtime.CompilerServices;
using Engine.Core.Ring;

namespace Engine.Tests.Ring;

/// <summary>Every padded type keeps its hot field off its neighbours' cache lines.</summary>
public class PaddingLayoutTests
{
    [Test]
    public void PaddedLong_is_two_lines_with_the_value_after_the_first()
    {
        Assert.That(Unsafe.SizeOf<PaddedLong>(), Is.EqualTo(128));
        var padded = default(PaddedLong);
        Assert.That(OffsetOf(ref padded, ref padded.Value), Is.EqualTo(64));
    }

    [Test]
    public void Producer_counters_are_padded_on_both_sides()
    {
        Assert.That(Unsafe.SizeOf<SingleProducerSequencer.ProducerCounters>(), Is.EqualTo(144));
        var counters = default(SingleProducerSequencer.ProducerCounters);
        Assert.Multiple(() =>
        {
            Assert.That(OffsetOf(ref counters, ref counters.Claimed), Is.EqualTo(64));
            Assert.That(OffsetOf(ref counters, ref counters.CachedGate), Is.EqualTo(72));
        });
    }

    [Test]
    public void A_sequence_object_holds_at_least_two_lines_of_data()
    {
        // Allocate one and measure what the allocator handed out for it: header + method table + data.
        _ = new Sequence(); // warm up the type
        long before = GC.GetAllocatedBytesForCurrentThread();
        var sequence = new Sequence(42);
        long size = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.That(size, Is.GreaterThanOrEqualTo(128 + 16));
        Assert.That(sequence.Value, Is.EqualTo(42));
    }

    private static long OffsetOf<TStruct>(ref TStruct origin, ref long field) =>
        (long)Unsafe.ByteOffset(ref Unsafe.As<TStruct, byte>(ref origin), ref Unsafe.As<long, byte>(ref field));
}
