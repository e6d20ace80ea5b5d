using System.Text.Json;
using Engine.IntegrationTests.Support;

namespace Engine.IntegrationTests;

/// <summary>The README's run command, end to end: a pair under load, the primary SIGKILLed, takeover, rejoin.</summary>
public class DemoTests
{
    [Test]
    public void The_pair_demo_loses_nothing_and_ends_with_equal_heads()
    {
        using var demo = EngineProcess.Start("demo", "--seconds", "6", "--rate", "5000", "--json");
        Assert.That(demo.WaitForExit(TimeSpan.FromSeconds(120)), Is.Zero, demo.StdErr + "\n" + demo.StdOut);
        JsonElement result = JsonDocument.Parse(demo.StdOut.Trim().Split('\n')[^1]).RootElement;
        Assert.Multiple(() =>
        {
            Assert.That(result.GetProperty("ok").GetBoolean(), Is.True);
            Assert.That(result.GetProperty("lost").GetInt64(), Is.Zero);
            Assert.That(result.GetProperty("duplicates").GetInt64(), Is.Zero);
            Assert.That(result.GetProperty("errors").GetInt64(), Is.Zero);
            Assert.That(result.GetProperty("acked").GetInt64(), Is.GreaterThan(5_000));
            Assert.That(result.GetProperty("heads_equal").GetBoolean(), Is.True);
            Assert.That(result.GetProperty("head_epoch").GetUInt64(), Is.EqualTo(2UL), "one takeover, one epoch more");
            Assert.That(result.GetProperty("takeover_ms").GetDouble(), Is.GreaterThan(0));
        });
    }
}
