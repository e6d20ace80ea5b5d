using System.Diagnostics;
using Engine.IntegrationTests.Support;
using Microsoft.Data.Sqlite;

namespace Engine.IntegrationTests;

/// <summary>
/// A real <c>engine observe</c> process killed with SIGKILL in the middle of a load, then started
/// again: the database it leaves goes on where it stopped, and ends equal, row for row, to a database
/// loaded in one go: no row missing or doubled.
/// </summary>
public class ObserverKillTests
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(120);
    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Path.Combine(Path.GetTempPath(), $"observe-kill-{Guid.NewGuid():N}");

    [TearDown]
    public void TearDown()
    {
        SqliteConnection.ClearAllPools();
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    [Test]
    public void Killed_mid_load_it_resumes_and_ends_equal_to_one_load()
    {
        string journal = Path.Combine(_dir, "journal");
        using (var generate = EngineProcess.Start("log", "generate", journal, "--count", "250000"))
        {
            Assert.That(generate.WaitForExit(s_timeout), Is.Zero, generate.StdErr);
        }
        string killedFile = Path.Combine(_dir, "killed.db");
        var killed = ObserverDatabase.Sqlite(killedFile);
        using (var observe = EngineProcess.Start("observe", "--journal", journal, "--sqlite", killedFile))
        {
            var clock = Stopwatch.StartNew();
            while (killed.LastBlock() < 60 && clock.Elapsed < s_timeout && !observe.HasExited)
            {
                Thread.Sleep(10); // polling a file another process writes: nothing signals it
            }
            Assert.That(observe.HasExited, Is.False, "still loading when killed: " + observe.StdErr);
            observe.KillHard();
        }
        long stoppedAt = killed.LastBlock();
        Assert.That(stoppedAt, Is.GreaterThanOrEqualTo(60));

        using (var resume = EngineProcess.Start("observe", "--journal", journal, "--sqlite", killedFile))
        {
            Assert.That(resume.WaitForExit(s_timeout), Is.Zero, resume.StdErr);
            Assert.That(resume.StdErr, Does.Contain($"the database holds blocks up to {stoppedAt}"));
        }
        string wholeFile = Path.Combine(_dir, "whole.db");
        var whole = ObserverDatabase.Sqlite(wholeFile);
        using (var once = EngineProcess.Start("observe", "--journal", journal, "--sqlite", wholeFile))
        {
            Assert.That(once.WaitForExit(s_timeout), Is.Zero, once.StdErr);
        }
        Assert.That(killed.Dump(), Is.EqualTo(whole.Dump()));
    }
}
