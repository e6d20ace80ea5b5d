using System.Globalization;
using Engine.Core.Journaling;
using Engine.IntegrationTests.Support;

namespace Engine.IntegrationTests;

/// <summary>
/// A real <c>engine log generate</c> process journals with disk durability and reports every block
/// once its commit completed; it is killed with SIGKILL mid-stream. Reopening must recover every
/// reported block, byte for byte, with the chain intact.
/// </summary>
public class JournalCrashTests
{
    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Path.Combine(Path.GetTempPath(), $"crash-{Guid.NewGuid():N}");

    [TearDown]
    public void TearDown()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    [TestCase(1)]
    [TestCase(25)]
    [TestCase(400)]
    public void Sigkill_after_N_durable_blocks_loses_none_of_them(int killAfter)
    {
        Dictionary<ulong, string> reported = RunAndKill(killAfter, seed: killAfter);

        Dictionary<ulong, string> journaled = ReadBlockHashes(_dir, out VerifyReport report);
        Assert.That(report.Intact, Is.True, report.Fault?.ToString());
        foreach (var (blockNo, hash) in reported)
        {
            Assert.That(journaled.TryGetValue(blockNo, out string? found), Is.True, $"block {blockNo} was reported durable but is gone");
            Assert.That(found, Is.EqualTo(hash), $"block {blockNo} changed");
        }
        Assert.That(report.Head!.Value.BlockNo, Is.GreaterThanOrEqualTo(reported.Keys.Max()));
    }

    [Test]
    public void A_killed_journal_reopens_for_writing_and_the_chain_goes_on()
    {
        RunAndKill(10, seed: 1);
        Dictionary<ulong, string> before = ReadBlockHashes(_dir, out VerifyReport first);
        Dictionary<ulong, string> reported = RunAndKill(10, seed: 2);

        Dictionary<ulong, string> after = ReadBlockHashes(_dir, out VerifyReport second);
        Assert.That(second.Intact, Is.True, second.Fault?.ToString());
        Assert.That(second.Head!.Value.LastLsn, Is.GreaterThan(first.Head!.Value.LastLsn));
        foreach (var (blockNo, hash) in before.Concat(reported))
        {
            Assert.That(after[blockNo], Is.EqualTo(hash), $"block {blockNo}");
        }
    }

    [Test]
    public void Verify_names_the_tampered_block_and_exits_non_zero()
    {
        using (var generate = EngineProcess.Start("log", "generate", _dir, "--count", "5000"))
        {
            Assert.That(generate.WaitForExit(TimeSpan.FromSeconds(60)), Is.Zero, generate.StdErr);
        }
        using (var verify = EngineProcess.Start("log", "verify", _dir, "--json"))
        {
            Assert.That(verify.WaitForExit(TimeSpan.FromSeconds(60)), Is.Zero, verify.StdErr);
            Assert.That(verify.StdOut, Does.Contain("\"intact\":true"));
        }

        // The last block's body: a byte 40 bytes before the end of the committed log.
        Dictionary<ulong, string> blocks = ReadBlockHashes(_dir, out VerifyReport report);
        using (FileStream file = File.Open(Path.Combine(_dir, "log.0"), FileMode.Open, FileAccess.ReadWrite))
        {
            file.Position = report.CommittedUntil - 40;
            int b = file.ReadByte();
            file.Position = report.CommittedUntil - 40;
            file.WriteByte((byte)~b);
        }
        using (var verify = EngineProcess.Start("log", "verify", _dir))
        {
            Assert.That(verify.WaitForExit(TimeSpan.FromSeconds(60)), Is.EqualTo(1));
            Assert.That(verify.StdOut, Does.Contain("BROKEN").And.Contain($"block {blocks.Keys.Max()} at address"));
        }
    }

    /// <summary>Starts a disk-durable generator, waits for <paramref name="killAfter"/> durable blocks, SIGKILLs it; returns what it reported.</summary>
    private Dictionary<ulong, string> RunAndKill(int killAfter, int seed)
    {
        using var generator = EngineProcess.Start("log", "generate", _dir, "--count", "100000000", "--durability", "disk",
            "--report-durable", "--seed", seed.ToString(CultureInfo.InvariantCulture));
        generator.WaitForOutput(output => CountDurable(output) >= killAfter, $"{killAfter} durable blocks", TimeSpan.FromSeconds(120));
        generator.KillHard();
        Assert.That(generator.HasExited, Is.True);
        return ParseDurable(generator.StdOut);
    }

    private static int CountDurable(string output) => ParseDurable(output).Count;

    private static Dictionary<ulong, string> ParseDurable(string output)
    {
        var blocks = new Dictionary<ulong, string>();
        foreach (string line in output.Split('\n'))
        {
            string[] parts = line.TrimEnd().Split(' ');
            // The kill can cut the last line short: only whole lines count as reported.
            if (parts.Length == 3 && parts[0] == "durable" && parts[2].Length == 64)
            {
                blocks[ulong.Parse(parts[1], CultureInfo.InvariantCulture)] = parts[2];
            }
        }
        return blocks;
    }

    private static Dictionary<ulong, string> ReadBlockHashes(string dir, out VerifyReport report)
    {
        var hashes = new Dictionary<ulong, string>();
        using JournalReader reader = JournalReader.Open(dir);
        report = reader.Verify();
        reader.Scan((entry, _) =>
        {
            if (Engine.Ledger.BlockFormat.TryReadHeader(entry, out var header) is null)
            {
                hashes[header.BlockNo] = Engine.Ledger.BlockFormat.StoredHash(entry, in header).ToString();
            }
            return true;
        });
        return hashes;
    }
}
