using Engine.IntegrationTests.Support;

namespace Engine.IntegrationTests;

/// <summary>The real <c>engine</c> executable, as an operator runs it.</summary>
public class CliTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Test]
    public void Help_describes_the_engine_and_exits_zero()
    {
        using var engine = EngineProcess.Start("--help");
        Assert.That(engine.WaitForExit(Timeout), Is.Zero, engine.StdErr);
        Assert.That(engine.StdOut, Does.Contain("Usage:").And.Contain("engine"));
    }

    [Test]
    public void No_command_prints_help_and_fails()
    {
        using var engine = EngineProcess.Start();
        Assert.That(engine.WaitForExit(Timeout), Is.EqualTo(1));
        Assert.That(engine.StdErr, Does.Contain("No command given"));
        Assert.That(engine.StdOut, Does.Contain("Usage:"));
    }

    [Test]
    public void An_unknown_command_is_refused_by_name()
    {
        using var engine = EngineProcess.Start("frobnicate");
        Assert.That(engine.WaitForExit(Timeout), Is.Not.Zero);
        Assert.That(engine.StdErr, Does.Contain("frobnicate"));
    }
}
