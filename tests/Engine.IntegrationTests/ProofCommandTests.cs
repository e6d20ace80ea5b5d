using System.Text.Json.Nodes;
using Engine.IntegrationTests.Support;

namespace Engine.IntegrationTests;

/// <summary>
/// <c>engine log prove</c> and <c>engine proof verify</c> as an auditor runs them: a proof made from a
/// journal verifies offline (exit 0), an altered one or one checked against another key does not
/// (exit 1, with the reason), and what cannot be proven or read says so.
/// </summary>
public class ProofCommandTests
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(60);
    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Path.Combine(Path.GetTempPath(), $"proofcmd-{Guid.NewGuid():N}");

    [TearDown]
    public void TearDown()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    private static EngineProcess Run(out int exit, params string[] args)
    {
        EngineProcess engine = EngineProcess.Start(args);
        exit = engine.WaitForExit(s_timeout);
        return engine;
    }

    [Test]
    public void A_proof_made_from_a_journal_verifies_offline_and_an_altered_one_does_not()
    {
        string journal = Path.Combine(_dir, "journal");
        string proofFile = Path.Combine(_dir, "proof.json");
        using (EngineProcess generate = Run(out int exit, "log", "generate", journal, "--count", "50000"))
        {
            Assert.That(exit, Is.Zero, generate.StdErr);
            Assert.That(generate.StdErr, Does.Contain("signed the head of"));
        }
        using (EngineProcess prove = Run(out int exit, "log", "prove", journal, "--lsn", "7", "--out", proofFile))
        {
            Assert.That(exit, Is.Zero, prove.StdErr);
        }
        using (EngineProcess verify = Run(out int exit, "proof", "verify", proofFile))
        {
            Assert.That(exit, Is.Zero, verify.StdErr);
            Assert.That(verify.StdOut, Does.StartWith("valid: LSN 7"));
        }

        // The record's price changed by one tick: the path no longer leads to the root.
        JsonObject proof = JsonNode.Parse(File.ReadAllText(proofFile))!.AsObject();
        byte[] record = Convert.FromHexString(proof["record"]!.GetValue<string>());
        record[48] ^= 1;
        proof["record"] = Convert.ToHexStringLower(record);
        string altered = Path.Combine(_dir, "altered.json");
        File.WriteAllText(altered, proof.ToJsonString());
        using (EngineProcess verify = Run(out int exit, "proof", "verify", altered))
        {
            Assert.That(exit, Is.EqualTo(1));
            Assert.That(verify.StdOut, Does.StartWith("INVALID: the record's path does not lead to the records root"));
        }
        using (EngineProcess verify = Run(out int exit, "proof", "verify", proofFile, "--key", new string('1', 64)))
        {
            Assert.That(exit, Is.EqualTo(1));
            Assert.That(verify.StdOut, Does.Contain("signature"));
        }
        File.WriteAllText(altered, "{\"format\": \"something else\"}");
        using (EngineProcess verify = Run(out int exit, "proof", "verify", altered))
        {
            Assert.That(exit, Is.EqualTo(1));
            Assert.That(verify.StdErr, Does.Contain("not a proof"));
        }
        using (EngineProcess prove = Run(out int exit, "log", "prove", journal, "--lsn", "999999"))
        {
            Assert.That(exit, Is.EqualTo(1));
            Assert.That(prove.StdErr, Does.Contain("no transaction with LSN 999999"));
        }
        File.Delete(Path.Combine(journal, "ledger-head"));
        using (EngineProcess prove = Run(out int exit, "log", "prove", journal, "--lsn", "7"))
        {
            Assert.That(exit, Is.EqualTo(2));
            Assert.That(prove.StdErr, Does.Contain("no signed head"));
        }
    }
}
