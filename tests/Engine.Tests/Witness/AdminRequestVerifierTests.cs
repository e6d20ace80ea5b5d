using System.Text;
using Engine.Replication;
using Engine.Security;
using Engine.Tests.Support;

namespace Engine.Tests.Witness;

/// <summary>The admin endpoint's check of an operator's signature, with real keys and time as an argument.</summary>
public class AdminRequestVerifierTests
{
    private const string Admin = "127.0.0.1:7401";
    private const string Path = "/admin/go-solo?minutes=10";
    private const long Now = 1_764_633_600_000;

    private static string Sign(ClusterCredentials who, long ts = Now, string host = Admin, string path = Path, string body = "") =>
        AdminAuthorization.Create(who.Self.Name, ts, "POST", host, path, Encoding.UTF8.GetBytes(body), bytes => who.Sign(AdminAuthorization.SigningContext, bytes));

    private static AdminCheck Check(AdminRequestVerifier verifier, string? header, string host = Admin, string path = Path, string body = "", long now = Now, string method = "POST") =>
        verifier.Check(header, method, host, path, Encoding.UTF8.GetBytes(body), now);

    [Test]
    public void The_operators_fresh_signature_over_this_request_is_allowed_once()
    {
        var verifier = new AdminRequestVerifier(ClusterRoster.Development, Admin);
        string header = Sign(ClusterCredentials.Development("operator"));
        Assert.That(Check(verifier, header), Is.InstanceOf<AdminCheck.Allowed>());
        Assert.That(Check(verifier, header), Is.EqualTo(new AdminCheck.Unauthenticated("this request was seen before (a replay)")));
    }

    [Test]
    public void Anything_else_is_refused_with_the_right_status()
    {
        var verifier = new AdminRequestVerifier(ClusterRoster.Development, Admin);
        ClusterCredentials op = ClusterCredentials.Development("operator");
        Assert.Multiple(() =>
        {
            Assert.That(Check(verifier, null), Is.InstanceOf<AdminCheck.Unauthenticated>(), "no header");
            Assert.That(Check(verifier, Sign(op), path: "/admin/go-solo?minutes=1440"), Is.InstanceOf<AdminCheck.Unauthenticated>(), "other arguments");
            Assert.That(Check(verifier, Sign(op), body: "x"), Is.InstanceOf<AdminCheck.Unauthenticated>(), "another body");
            Assert.That(Check(verifier, Sign(op), method: "PUT"), Is.InstanceOf<AdminCheck.Unauthenticated>(), "another method");
            Assert.That(Check(verifier, Sign(op, host: "127.0.0.1:7402"), host: "127.0.0.1:7402"), Is.InstanceOf<AdminCheck.Unauthenticated>(), "another node's request replayed here");
            Assert.That(Check(verifier, Sign(op, host: "127.0.0.1:7402")), Is.InstanceOf<AdminCheck.Unauthenticated>(), "signed for another node");
            Assert.That(Check(verifier, Sign(op, ts: Now - 30_001)), Is.InstanceOf<AdminCheck.Unauthenticated>(), "too old");
            Assert.That(Check(verifier, Sign(op, ts: Now + 30_001)), Is.InstanceOf<AdminCheck.Unauthenticated>(), "from the future");
            Assert.That(Check(verifier, Sign(ClusterCredentials.Development("observer"))), Is.InstanceOf<AdminCheck.Forbidden>(), "an observer");
            Assert.That(Check(verifier, Sign(ClusterCredentials.Development("node-a"))), Is.InstanceOf<AdminCheck.Forbidden>(), "a node");
            Assert.That(Check(verifier, Sign(ClusterCredentials.Development("witness"))), Is.InstanceOf<AdminCheck.Forbidden>(), "the witness");
            Assert.That(Check(verifier, AdminAuthorization.Create("operator", Now, "POST", Admin, Path, [], _ => new byte[64])), Is.InstanceOf<AdminCheck.Unauthenticated>(), "a forged signature");
        });
        Assert.That(Check(verifier, Sign(op, ts: Now - 30_000)), Is.InstanceOf<AdminCheck.Allowed>(), "30 s off is still within");
    }

    [Test]
    public void Another_clusters_operator_is_a_stranger()
    {
        using var directory = new TempDirectory("admin");
        ClusterSetup.Init(directory.Sub("ours"));
        ClusterSetup.Init(directory.Sub("theirs"));
        ClusterCredentials ours = ClusterCredentials.Load(directory.Sub("ours/cluster.json"), directory.Sub("ours/operator.key"));
        ClusterCredentials theirs = ClusterCredentials.Load(directory.Sub("theirs/cluster.json"), directory.Sub("theirs/operator.key"));
        var verifier = new AdminRequestVerifier(ours.Roster, Admin);
        Assert.That(Check(verifier, Sign(theirs)), Is.InstanceOf<AdminCheck.Unauthenticated>(), "the same name, another key");
        Assert.That(Check(verifier, Sign(ClusterCredentials.Development("operator"))), Is.InstanceOf<AdminCheck.Unauthenticated>(), "the development operator");
        Assert.That(Check(verifier, Sign(ours)), Is.InstanceOf<AdminCheck.Allowed>());
    }

    [Test]
    public void A_full_replay_cache_refuses_rather_than_forgets()
    {
        var verifier = new AdminRequestVerifier(ClusterRoster.Development, Admin, new NonceCache(capacity: 2));
        ClusterCredentials op = ClusterCredentials.Development("operator");
        Assert.That(Check(verifier, Sign(op)), Is.InstanceOf<AdminCheck.Allowed>());
        Assert.That(Check(verifier, Sign(op)), Is.InstanceOf<AdminCheck.Allowed>());
        Assert.That(Check(verifier, Sign(op)), Is.InstanceOf<AdminCheck.Busy>());
        Assert.That(Check(verifier, Sign(ClusterCredentials.Development("observer"))), Is.InstanceOf<AdminCheck.Forbidden>(), "a refused request takes no room");
        Assert.That(Check(verifier, Sign(op, ts: Now + 60_000), now: Now + 60_000), Is.InstanceOf<AdminCheck.Allowed>(), "room again once the old ones are out of their window");
    }

    [TestCase("127.0.0.1:7401", "127.0.0.1:7401", true)]
    [TestCase("localhost:7401", "127.0.0.1:7401", true)]
    [TestCase("[::1]:7401", "127.0.0.1:7401", true)]
    [TestCase("10.0.0.5:7401", "0.0.0.0:7401", true)]
    [TestCase("127.0.0.1:7402", "127.0.0.1:7401", false)]
    [TestCase("10.0.0.5:7401", "10.0.0.6:7401", false)]
    [TestCase("10.0.0.5:7401", "127.0.0.1:7401", false)]
    [TestCase("127.0.0.1", "127.0.0.1:7401", false)]
    [TestCase("127.0.0.1:x", "127.0.0.1:7401", false)]
    [TestCase("", "127.0.0.1:7401", false)]
    public void The_host_must_name_this_node(string host, string admin, bool expected) =>
        Assert.That(AdminRequestVerifier.IsThisNode(host, admin), Is.EqualTo(expected));
}
