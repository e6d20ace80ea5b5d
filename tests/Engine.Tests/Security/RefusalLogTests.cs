using System.Net;
using Engine.Security;

namespace Engine.Tests.Security;

/// <summary>Refused connections make at most one line per source per interval, and the suppressed ones are counted.</summary>
public class RefusalLogTests
{
    [Test]
    public void One_line_per_source_per_interval_with_the_suppressed_count()
    {
        var lines = new List<string>();
        var log = new RefusalLog(lines.Add, "replication endpoint", intervalMs: 1000);
        var a = new IPEndPoint(IPAddress.Parse("10.0.0.1"), 5000);
        var b = new IPEndPoint(IPAddress.Parse("10.0.0.2"), 5000);
        for (int i = 0; i < 50; i++)
        {
            log.Refused(new IPEndPoint(a.Address, 5000 + i), "bad signature", nowMs: 10_000 + i);
        }
        log.Refused(b, "wrong cluster", nowMs: 10_010);
        Assert.That(lines, Has.Count.EqualTo(2), string.Join("\n", lines));
        Assert.That(lines[0], Does.StartWith("replication endpoint: refused 10.0.0.1:5000: bad signature"));
        log.Refused(a, "bad signature", nowMs: 11_000);
        Assert.That(lines, Has.Count.EqualTo(3));
        Assert.That(lines[2], Does.Contain("and 49 more from 10.0.0.1"));
        Assert.That(log.Count, Is.EqualTo(52));
    }

    [Test]
    public void The_sources_remembered_are_bounded()
    {
        var lines = new List<string>();
        var log = new RefusalLog(lines.Add, "x");
        for (int i = 0; i < 3 * RefusalLog.MaxSources; i++)
        {
            log.Refused(new IPEndPoint(new IPAddress(0x0A000000 + i), 1), "garbage", nowMs: 0);
        }
        // Past the bound the rest share one entry: one more line, not thousands.
        Assert.That(lines, Has.Count.EqualTo(RefusalLog.MaxSources + 1));
        Assert.That(log.Count, Is.EqualTo(3 * RefusalLog.MaxSources));
    }
}
