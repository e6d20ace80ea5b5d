using System.Text.Json;
using Engine.IntegrationTests.Support;

namespace Engine.IntegrationTests;

/// <summary>The README's run command, end to end: a node under load, SIGKILLed, restarted; nothing acknowledged lost.</summary>
public class DemoTests
{
    [Test]
    public void The_demo_kills_and_restarts_a_node_and_loses_nothing()
    {
        using var demo = EngineProcess.Start("demo", "--seconds", "4", "--rate", "5000", "--json");
        Assert.That(demo.WaitForExit(TimeSpan.FromSeconds(120)), Is.Zero, demo.StdErr);
        JsonElement result = JsonDocument.Parse(demo.StdOut.Trim().Split('\n')[^1]).RootElement;
        Assert.Multiple(() =>
        {
            Assert.That(result.GetProperty("ok").GetBoolean(), Is.True);
            Assert.That(result.GetProperty("lost").GetInt64(), Is.Zero);
            Assert.That(result.GetProperty("duplicates").GetInt64(), Is.Zero);
            Assert.That(result.GetProperty("errors").GetInt64(), Is.Zero);
            Assert.That(result.GetProperty("acked").GetInt64(), Is.GreaterThan(5_000));
            Assert.That(result.GetProperty("reconnects").GetInt64(), Is.GreaterThanOrEqualTo(1), "the clients lived through the restart");
            Assert.That(result.GetProperty("chain_intact").GetBoolean(), Is.True);
        });
    }
}
