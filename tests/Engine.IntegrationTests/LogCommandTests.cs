using System.Text.Json;
using Engine.IntegrationTests.Support;

namespace Engine.IntegrationTests;

/// <summary><c>engine log generate|verify|dump</c> as an operator runs them, on a journal of a named cluster.</summary>
public class LogCommandTests
{
    private const string Cluster = "c0ffee00c0ffee00c0ffee00c0ffee00";
    private const string OtherCluster = "0123456789abcdef0123456789abcdef";
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(60);
    private static readonly string[] s_orderKinds = ["new_order", "cancel", "replace"];

    // What a new ledger starts with: the development reference data, as admin transactions.
    private static readonly string[] s_referenceKinds = ["instrument_define", "account_limits", "client_enable", "client_grant"];

    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Path.Combine(Path.GetTempPath(), $"logcmd-{Guid.NewGuid():N}");

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
    public void A_journal_generated_for_a_cluster_verifies_as_that_clusters_and_dumps_its_kinds()
    {
        using (EngineProcess generate = Run(out int exit, "log", "generate", _dir, "--count", "2000", "--cluster-id", Cluster))
        {
            Assert.That(exit, Is.Zero, generate.StdErr);
            Assert.That(generate.StdErr, Does.Contain($"cluster {Cluster}"));
        }

        using (EngineProcess verify = Run(out int exit, "log", "verify", _dir))
        {
            Assert.That(exit, Is.Zero, verify.StdErr);
            Assert.That(verify.StdOut, Does.Contain("intact").And.Contain("block format 2").And.Contain($"cluster       {Cluster}"));
        }
        using (EngineProcess verify = Run(out int exit, "log", "verify", _dir, "--json", "--cluster-id", Cluster))
        {
            Assert.That(exit, Is.Zero, verify.StdErr);
            using var json = JsonDocument.Parse(verify.StdOut);
            Assert.That(json.RootElement.GetProperty("intact").GetBoolean(), Is.True);
            Assert.That(json.RootElement.GetProperty("format_version").GetInt32(), Is.EqualTo(2));
            Assert.That(json.RootElement.GetProperty("cluster_id").GetString(), Is.EqualTo(Cluster));
        }
        using (EngineProcess verify = Run(out int exit, "log", "verify", _dir, "--cluster-id", OtherCluster))
        {
            Assert.That(exit, Is.EqualTo(1), "another cluster's journal is not this cluster's");
            Assert.That(verify.StdOut, Does.Contain("BROKEN").And.Contain($"genesis names cluster {Cluster}, not {OtherCluster}"));
        }
        using (EngineProcess verify = Run(out int exit, "log", "verify", _dir, "--cluster-id", "nothex"))
        {
            Assert.That(exit, Is.EqualTo(2));
            Assert.That(verify.StdErr, Does.Contain("--cluster-id takes 32 hex digits"));
        }

        using (EngineProcess dump = Run(out int exit, "log", "dump", _dir, "--count", "5"))
        {
            Assert.That(exit, Is.Zero, dump.StdErr);
            Assert.That(dump.StdOut, Does.StartWith($"journal {_dir}: block format 2, cluster {Cluster}"));
            Assert.That(dump.StdOut, Does.Contain("lsn 1  "));
        }
        using (EngineProcess dump = Run(out int exit, "log", "dump", _dir, "--json"))
        {
            Assert.That(exit, Is.Zero, dump.StdErr);
            string[] lines = dump.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            var kinds = lines.Select(line => JsonDocument.Parse(line).RootElement.GetProperty("kind").GetString()).ToHashSet();
            Assert.That(lines, Has.Length.GreaterThan(1000));
            Assert.That(kinds, Is.SubsetOf(s_orderKinds.Concat(s_referenceKinds)));
            Assert.That(kinds, Is.SupersetOf(s_referenceKinds).And.Contain("new_order"));
            JsonElement first = JsonDocument.Parse(lines[0]).RootElement;
            Assert.That(first.GetProperty("admin").GetString(), Does.StartWith("define instrument 1 ACME tick 1"), "the admin transaction in words");
        }

        // The node of another cluster (here: the generator with another id) refuses to append.
        using (EngineProcess generate = Run(out int exit, "log", "generate", _dir, "--count", "10", "--cluster-id", OtherCluster))
        {
            Assert.That(exit, Is.EqualTo(1));
            Assert.That(generate.StdErr, Does.Contain($"belongs to cluster {Cluster}").And.Contain("refusing to continue another cluster's chain"));
        }
    }
}
