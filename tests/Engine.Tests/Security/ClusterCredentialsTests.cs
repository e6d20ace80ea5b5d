using System.Text.Json.Nodes;
using Engine.Security;
using Engine.Tests.Support;

namespace Engine.Tests.Security;

/// <summary>cluster init writes a roster and keys that load; loading refuses every kind of bad or mismatched file, by name.</summary>
public class ClusterCredentialsTests
{
    [Test]
    public void Init_writes_a_roster_and_private_keys_that_load_as_their_principals()
    {
        using var dir = new TempDirectory("cluster");
        ClusterRoster roster = ClusterSetup.Init(dir.Path);
        Assert.Multiple(() =>
        {
            Assert.That(roster.Principals.Select(p => (p.Name, p.Role)), Is.EqualTo(new[]
            {
                ("node-a", PrincipalRole.Node), ("node-b", PrincipalRole.Node), ("witness", PrincipalRole.Witness),
                ("operator", PrincipalRole.Operator), ("observer", PrincipalRole.Observer),
            }));
            Assert.That(roster.ClusterIdHex, Has.Length.EqualTo(32));
            Assert.That(roster.IsDevelopment, Is.False);
        });
        foreach (Principal principal in roster.Principals)
        {
            string key = ClusterSetup.KeyPath(dir.Path, principal.Name);
            Assert.That(ModeOf(key), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite), $"{key} is private");
            ClusterCredentials loaded = ClusterCredentials.Load(dir.Sub("cluster.json"), key);
            Assert.That(loaded.Self.Name, Is.EqualTo(principal.Name));
            Assert.That(loaded.Self.Role, Is.EqualTo(principal.Role));
            Assert.That(loaded.Roster.ClusterIdHex, Is.EqualTo(roster.ClusterIdHex));
        }
        Assert.That(ModeOf(dir.Sub("ledger.key")), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
        Assert.That(Convert.ToHexStringLower(ClusterRoster.Load(dir.Sub("cluster.json")).LedgerPublicKey), Is.EqualTo(Convert.ToHexStringLower(roster.LedgerPublicKey)));
    }

    [Test]
    public void Init_refuses_to_overwrite_a_cluster_unless_forced_and_a_forced_one_is_a_new_identity()
    {
        using var dir = new TempDirectory("cluster");
        ClusterRoster first = ClusterSetup.Init(dir.Path, ["n1", "n2", "n3"]);
        string before = File.ReadAllText(dir.Sub("cluster.json"));
        Assert.Throws<IOException>(() => ClusterSetup.Init(dir.Path, ["n1", "n2", "n3"]));
        Assert.That(File.ReadAllText(dir.Sub("cluster.json")), Is.EqualTo(before), "untouched");
        ClusterRoster second = ClusterSetup.Init(dir.Path, ["n1", "n2", "n3"], force: true);
        Assert.That(second.ClusterIdHex, Is.Not.EqualTo(first.ClusterIdHex));
        Assert.That(ModeOf(ClusterSetup.KeyPath(dir.Path, "n1")), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite), "still private when replaced");
    }

    [TestCase("witness", "named twice")]
    [TestCase("a/b", "not a principal name")]
    [TestCase("ledger", "ledger")]
    public void Init_refuses_bad_node_names(string node, string message)
    {
        using var dir = new TempDirectory("cluster");
        var e = Assert.Throws<ArgumentException>(() => ClusterSetup.Init(dir.Path, ["node-a", node]));
        Assert.That(e!.Message, Does.Contain(message));
        Assert.That(File.Exists(dir.Sub("cluster.json")), Is.False);
    }

    /// <summary>Each edit of a good cluster.json, and the words the refusal must contain.</summary>
    private static IEnumerable<TestCaseData> BadRosters()
    {
        yield return new TestCaseData((Action<JsonObject>)(r => r["cluster_id"] = "abcd"), "cluster_id: expected 32 hex digits").SetName("Short cluster id");
        yield return new TestCaseData((Action<JsonObject>)(r => r["cluster_id"] = new string('z', 32)), "cluster_id").SetName("Cluster id not hex");
        yield return new TestCaseData((Action<JsonObject>)(r => r["principals"]![1]!["role"] = "admin"), "principals[1].role: unknown role 'admin'").SetName("Unknown role");
        yield return new TestCaseData((Action<JsonObject>)(r => r["principals"]![1]!["name"] = "node-a"), "'node-a' is named twice").SetName("Duplicate name");
        yield return new TestCaseData((Action<JsonObject>)(r => r["principals"]![1]!["public_key"] = r["principals"]![0]!["public_key"]!.GetValue<string>()), "same public key").SetName("Duplicate key");
        yield return new TestCaseData((Action<JsonObject>)(r => r["principals"]![2]!["public_key"] = "00"), "principals[2].public_key: expected 64 hex digits").SetName("Short public key");
        yield return new TestCaseData((Action<JsonObject>)(r => r["principals"]![0]!["name"] = "bad name"), "not a principal name").SetName("Bad name");
        yield return new TestCaseData((Action<JsonObject>)(r => r.Remove("ledger_public_key")), "ledger_public_key: expected a string").SetName("No ledger key");
        yield return new TestCaseData((Action<JsonObject>)(r => r["version"] = 2), "version 2").SetName("Unknown version");
        yield return new TestCaseData((Action<JsonObject>)(r => r["principals"] = new JsonArray()), "expected 1 to 64 principals").SetName("No principals");
    }

    [TestCaseSource(nameof(BadRosters))]
    public void Loading_refuses_a_bad_roster_naming_the_field(Action<JsonObject> edit, string message)
    {
        using var dir = new TempDirectory("cluster");
        ClusterSetup.Init(dir.Path);
        JsonObject roster = JsonNode.Parse(File.ReadAllText(dir.Sub("cluster.json")))!.AsObject();
        edit(roster);
        File.WriteAllText(dir.Sub("cluster.json"), roster.ToJsonString());
        var e = Assert.Throws<InvalidDataException>(() => ClusterCredentials.Load(dir.Sub("cluster.json"), dir.Sub("node-a.key")));
        Assert.That(e!.Message, Does.Contain(message).And.Contain("cluster.json"));
    }

    [Test]
    public void Loading_refuses_garbage_and_missing_files()
    {
        using var dir = new TempDirectory("cluster");
        ClusterSetup.Init(dir.Path);
        Assert.Throws<FileNotFoundException>(() => ClusterCredentials.Load(dir.Sub("nope.json"), dir.Sub("node-a.key")));
        Assert.Throws<FileNotFoundException>(() => ClusterCredentials.Load(dir.Sub("cluster.json"), dir.Sub("nope.key")));
        File.WriteAllText(dir.Sub("node-a.key"), "{ not json");
        Assert.That(Assert.Throws<InvalidDataException>(() => ClusterCredentials.Load(dir.Sub("cluster.json"), dir.Sub("node-a.key")))!.Message, Does.Contain("not valid JSON"));
    }

    [Test]
    public void A_key_of_another_cluster_is_refused()
    {
        using var dir = new TempDirectory("cluster");
        using var other = new TempDirectory("cluster");
        ClusterSetup.Init(dir.Path);
        ClusterSetup.Init(other.Path);
        var e = Assert.Throws<InvalidDataException>(() => ClusterCredentials.Load(dir.Sub("cluster.json"), other.Sub("node-a.key")));
        Assert.That(e!.Message, Does.Contain("belongs to cluster"));
    }

    [Test]
    public void A_key_file_renamed_to_pose_as_another_principal_is_refused()
    {
        using var dir = new TempDirectory("cluster");
        ClusterSetup.Init(dir.Path);
        // The observer's key, its name changed to node-a's: the key does not give node-a's public key.
        JsonObject key = JsonNode.Parse(File.ReadAllText(dir.Sub("observer.key")))!.AsObject();
        key["name"] = "node-a";
        key["role"] = "node";
        File.WriteAllText(dir.Sub("forged.key"), key.ToJsonString());
        var e = Assert.Throws<InvalidDataException>(() => ClusterCredentials.Load(dir.Sub("cluster.json"), dir.Sub("forged.key")));
        Assert.That(e!.Message, Does.Contain("does not match the public key of 'node-a'"));

        key["name"] = "observer"; // right key, but claiming another role
        File.WriteAllText(dir.Sub("forged.key"), key.ToJsonString());
        Assert.That(Assert.Throws<InvalidDataException>(() => ClusterCredentials.Load(dir.Sub("cluster.json"), dir.Sub("forged.key")))!.Message,
            Does.Contain("'observer' is a node, but").And.Contain("as a observer"));

        key["name"] = "mallory";
        File.WriteAllText(dir.Sub("forged.key"), key.ToJsonString());
        Assert.That(Assert.Throws<InvalidDataException>(() => ClusterCredentials.Load(dir.Sub("cluster.json"), dir.Sub("forged.key")))!.Message,
            Does.Contain("'mallory' is not a principal"));
    }

    [Test]
    public void The_development_cluster_is_deterministic_open_and_marked()
    {
        ClusterCredentials a = ClusterCredentials.Development("node@127.0.0.1:7420");
        ClusterCredentials again = ClusterCredentials.Development("node@127.0.0.1:7420");
        Assert.Multiple(() =>
        {
            Assert.That(a.IsDevelopment, Is.True);
            Assert.That(a.Self.PublicKey.ToArray(), Is.EqualTo(again.Self.PublicKey.ToArray()), "the same name gives the same key in every process");
            Assert.That(a.Self.Role, Is.EqualTo(PrincipalRole.Node));
            Assert.That(ClusterCredentials.Development("observer").Self.Role, Is.EqualTo(PrincipalRole.Observer));
            Assert.That(ClusterCredentials.Development("witness@127.0.0.1:7430").Self.Role, Is.EqualTo(PrincipalRole.Witness));
            Assert.That(ClusterRoster.Development.Find("node@[::1]:7421")?.Role, Is.EqualTo(PrincipalRole.Node), "any valid name is in the development roster");
            Assert.That(ClusterRoster.Development.Find("bad name"), Is.Null);
            Assert.That(a.ToString(), Does.Contain("DEVELOPMENT"));
        });
    }

    [Test]
    public void A_signature_verifies_only_for_its_signer_context_and_message()
    {
        ClusterCredentials op = ClusterCredentials.Development("operator");
        byte[] message = "go-solo 7"u8.ToArray();
        byte[] signature = op.Sign("admin/go-solo", message);
        Principal signer = op.Self;
        Assert.Multiple(() =>
        {
            Assert.That(signer.Verify("admin/go-solo", message, signature), Is.True);
            Assert.That(signer.Verify("admin/other", message, signature), Is.False, "another context");
            Assert.That(signer.Verify("admin/go-solo", "go-solo 8"u8, signature), Is.False, "another message");
            Assert.That(ClusterCredentials.Development("node-a").Self.Verify("admin/go-solo", message, signature), Is.False, "another principal");
            Assert.That(signer.Verify("admin/go-solo", message, signature.AsSpan(1)), Is.False, "a short signature");
        });
    }

    private static UnixFileMode ModeOf(string path) => OperatingSystem.IsWindows() ? throw new PlatformNotSupportedException() : File.GetUnixFileMode(path);
}
