using System.Net;
using Engine.Core.Server;

namespace Engine.Tests.Server;

/// <summary>The gateway's log under a flood: the first event per kind and source, then one summary line a second.</summary>
public class EventDigestTests
{
    [Test]
    public void Repeats_from_one_source_become_one_summary_line_per_interval()
    {
        var lines = new List<string>();
        var counters = new GatewayCounters();
        var digest = new EventDigest(lines.Add, counters);
        IPAddress source = IPAddress.Parse("10.1.1.1");
        for (int i = 0; i < 1000; i++)
        {
            digest.Report(GatewayEvent.LogonFailed, source, $"logon refused #{i}");
        }
        Assert.That(lines, Has.Count.EqualTo(1).And.Contains("logon refused #0"), "only the first is written at once");
        digest.Flush(1000);
        Assert.Multiple(() =>
        {
            Assert.That(lines, Has.Count.EqualTo(2));
            Assert.That(lines[1], Does.Contain("999 more failed logons from 10.1.1.1").And.Contain("logon refused #999"));
            Assert.That(counters.LogLinesSuppressed, Is.EqualTo(999));
        });
        digest.Flush(2000);
        Assert.That(lines, Has.Count.EqualTo(2), "nothing new, nothing written");
        digest.Flush(3000);
        digest.Report(GatewayEvent.LogonFailed, source, "logon refused later");
        Assert.That(lines[^1], Is.EqualTo("logon refused later"), "a quiet key is forgotten: the next one is written in full");
    }

    [Test]
    public void Kinds_and_sources_are_kept_apart_and_the_number_of_keys_is_bounded()
    {
        var lines = new List<string>();
        var digest = new EventDigest(lines.Add, new GatewayCounters(), maxSources: 8);
        for (int i = 0; i < 10_000; i++)
        {
            var source = new IPAddress([10, 2, (byte)(i >> 8), (byte)i]);
            digest.Report(GatewayEvent.ProtocolViolation, source, $"violation {i}");
            digest.Report(GatewayEvent.Refused, source, $"refused {i}");
        }
        digest.Flush(1000);
        Assert.Multiple(() =>
        {
            Assert.That(digest.Keys, Is.LessThanOrEqualTo(8 + 2), "8 addresses, then one 'other addresses' key per kind");
            Assert.That(lines, Has.Count.LessThanOrEqualTo(2 * (8 + 2)), "20,000 events, a handful of lines");
            Assert.That(lines, Has.Some.Contains("more protocol violations from other addresses"));
            Assert.That(lines, Has.Some.Contains("more refused connections from other addresses"));
        });
    }
}
