using System.Net;
using Engine.Core.Server;

namespace Engine.Tests.Server;

/// <summary>Failed logons per address, on a clock the test drives.</summary>
public class LogonThrottleTests
{
    private static readonly IPAddress A = IPAddress.Parse("10.0.0.1");
    private static readonly IPAddress B = IPAddress.Parse("10.0.0.2");

    private static GatewaySettings Limits(int limit = 3, int tracked = 100) =>
        new() { FailedLogonLimit = limit, FailedLogonWindowMs = 1000, FailedLogonBlockMs = 5000, MaxTrackedAddresses = tracked };

    [Test]
    public void An_address_is_refused_after_the_limit_within_the_window_and_only_it()
    {
        var throttle = new LogonThrottle(Limits());
        Assert.That(throttle.Failed(A, 0), Is.False);
        Assert.That(throttle.Failed(A, 10), Is.False);
        Assert.That(throttle.IsBlocked(A, 10), Is.False);
        Assert.That(throttle.Failed(A, 20), Is.True, "the third failure blocks");
        Assert.Multiple(() =>
        {
            Assert.That(throttle.IsBlocked(A, 21), Is.True);
            Assert.That(throttle.IsBlocked(B, 21), Is.False, "another address is not affected");
            Assert.That(throttle.Blocked(21), Is.EqualTo(1));
            Assert.That(throttle.IsBlocked(A, 20 + 4999), Is.True);
            Assert.That(throttle.IsBlocked(A, 20 + 5000), Is.False, "the block ends");
        });
    }

    [Test]
    public void Failures_spread_wider_than_the_window_never_block()
    {
        var throttle = new LogonThrottle(Limits());
        for (long now = 0; now < 20_000; now += 1000)
        {
            Assert.That(throttle.Failed(A, now), Is.False, $"at {now} ms");
            Assert.That(throttle.Failed(A, now + 1), Is.False, $"at {now + 1} ms");
        }
        Assert.That(throttle.IsBlocked(A, 20_000), Is.False);
    }

    [Test]
    public void A_successful_logon_starts_the_count_again()
    {
        var throttle = new LogonThrottle(Limits());
        throttle.Failed(A, 0);
        throttle.Failed(A, 1);
        throttle.Succeeded(A);
        Assert.That(throttle.Failed(A, 2), Is.False);
        Assert.That(throttle.Failed(A, 3), Is.False);
        Assert.That(throttle.Failed(A, 4), Is.True);
    }

    [Test]
    public void A_full_table_drops_what_no_longer_counts_and_otherwise_fails_open()
    {
        var throttle = new LogonThrottle(Limits(limit: 2, tracked: 2));
        throttle.Failed(A, 0);
        throttle.Failed(B, 0);
        IPAddress c = IPAddress.Parse("10.0.0.3");
        Assert.That(throttle.Failed(c, 10), Is.False);
        Assert.That(throttle.Failed(c, 11), Is.False, "not tracked: the table is full of live entries");
        Assert.That(throttle.Tracked, Is.EqualTo(2), "bounded");
        Assert.That(throttle.IsBlocked(c, 12), Is.False);
        // Once A's and B's windows are over, room is made for c.
        Assert.That(throttle.Failed(c, 2000), Is.False);
        Assert.That(throttle.Failed(c, 2001), Is.True);
        Assert.That(throttle.Tracked, Is.LessThanOrEqualTo(2));
    }
}
