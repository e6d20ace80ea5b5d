using System.Diagnostics;
using Engine.Core.Server;

namespace Engine.Tests.Server;

public class ThreadPoolWatchTests
{
    private static long At(double ms) => 1 + (long)(ms * Stopwatch.Frequency / 1000);

    [Test]
    public void A_stall_is_told_once_when_it_ends_with_its_length_and_the_most_queued()
    {
        var detector = new PoolStallDetector(completed: 100, reportAfterMs: 200);
        Assert.Multiple(() =>
        {
            Assert.That(detector.Observe(At(0), 110, 0), Is.Null, "work completing: no stall");
            Assert.That(detector.Observe(At(100), 110, 3), Is.Null, "queued, nothing completed: a stall begins");
            Assert.That(detector.Observe(At(200), 110, 7), Is.Null, "still stalled: not told yet");
            Assert.That(detector.Observe(At(400), 110, 5), Is.Null);
            PoolStall? stall = detector.Observe(At(500), 140, 0);
            Assert.That(stall, Is.Not.Null, "told at the first sample after it");
            Assert.That(stall!.Value.Duration.TotalMilliseconds, Is.EqualTo(400).Within(1));
            Assert.That(stall.Value.MostQueued, Is.EqualTo(7));
            Assert.That(detector.Observe(At(600), 150, 2), Is.Null, "told once: a new sample with progress is no stall");
        });
    }

    [Test]
    public void A_short_stall_an_idle_pool_and_a_busy_one_are_not_told()
    {
        var detector = new PoolStallDetector(completed: 0, reportAfterMs: 200);
        Assert.Multiple(() =>
        {
            Assert.That(detector.Observe(At(0), 0, 4), Is.Null);
            Assert.That(detector.Observe(At(100), 0, 4), Is.Null);
            Assert.That(detector.Observe(At(150), 9, 4), Is.Null, "150 ms: under the threshold");
            for (int i = 1; i <= 10; i++)
            {
                Assert.That(detector.Observe(At(150 + (i * 100)), 9, 0), Is.Null, "idle: nothing queued, nothing completed");
            }
            for (int i = 1; i <= 10; i++)
            {
                Assert.That(detector.Observe(At(1200 + (i * 100)), 9 + i, 50), Is.Null, "busy: queued, but completing");
            }
        });
    }
}
