using System.Text;
using Engine.Replication;
using Microsoft.Extensions.Configuration;

namespace Engine.Tests.Replication;

/// <summary>The pair's settings: read from the configuration's section Pair like every other setting, and checked against each other.</summary>
public class PairSettingsTests
{
    private static PairSettings FromJson(string json) =>
        (new ConfigurationBuilder().AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes(json))).Build().GetSection("Pair").Get<PairSettings>() ?? new PairSettings()).Validate();

    [Test]
    public void The_defaults_are_a_standalone_node_with_the_documented_clocks()
    {
        PairSettings settings = new PairSettings().Validate();
        Assert.Multiple(() =>
        {
            Assert.That(settings.Role, Is.EqualTo(PairRole.Standalone));
            Assert.That(settings.HeartbeatMs, Is.EqualTo(50));
            Assert.That(settings.SilenceMs, Is.EqualTo(500));
            Assert.That(settings.MaxSendBlockedMs, Is.EqualTo(2_000));
            Assert.That(settings.HelloWaitMs, Is.EqualTo(2_000));
        });
    }

    [Test]
    public void Role_peer_witness_and_clocks_come_from_the_config_file()
    {
        PairSettings settings = FromJson("""
            {"Pair": {"Role": "backup", "Peer": "127.0.0.1:7501", "ReplicationListen": "127.0.0.1:7502", "Witness": "127.0.0.1:7600",
                      "HeartbeatMs": 20, "SilenceMs": 200, "LeaseMarginMs": 50}}
            """);
        Assert.Multiple(() =>
        {
            Assert.That(settings.Role, Is.EqualTo(PairRole.Backup));
            Assert.That(settings.Peer, Is.EqualTo("127.0.0.1:7501"));
            Assert.That(settings.Witness, Is.EqualTo("127.0.0.1:7600"));
            Assert.That(settings.SilenceMs, Is.EqualTo(200));
            Assert.That(settings.MaxSendBlockedMs, Is.EqualTo(800));
        });
    }

    [TestCase("""{"Pair": {"SilenceMs": 100}}""", "SilenceMs", Description = "two heartbeats: one late packet would be a failover")]
    [TestCase("""{"Pair": {"HeartbeatMs": 0}}""", "HeartbeatMs")]
    [TestCase("""{"Pair": {"LeaseMarginMs": 500}}""", "LeaseMarginMs", Description = "a margin as long as the silence")]
    [TestCase("""{"Pair": {"LeaseMarginMs": -1}}""", "LeaseMarginMs")]
    [TestCase("""{"Pair": {"HelloAnswerMs": 100}}""", "HelloAnswerMs")]
    [TestCase("""{"Pair": {"PeerProbeMs": 0}}""", "PeerProbeMs")]
    [TestCase("""{"Pair": {"Role": "primary"}}""", "--replication-listen")]
    [TestCase("""{"Pair": {"Role": "backup", "ReplicationListen": "127.0.0.1:1"}}""", "--peer")]
    [TestCase("""{"Pair": {"Role": "primary", "ReplicationListen": "127.0.0.1:1", "Witness": "127.0.0.1:2", "AllowSolo": true}}""", "--witness and --allow-solo")]
    [TestCase("""{"Pair": {"Role": "primary", "ReplicationListen": "nowhere"}}""", "--replication-listen")]
    [TestCase("""{"Pair": {"Role": "backup", "ReplicationListen": "127.0.0.1:1", "Peer": "127.0.0.1:99999"}}""", "--peer")]
    [TestCase("""{"Pair": {"Peer": "127.0.0.1:1"}}""", "--role primary or backup", Description = "a peer for a standalone node is a mistake, not ignored")]
    [TestCase("""{"Pair": {"Role": "7"}}""", "--role")]
    public void Settings_that_contradict_each_other_are_refused_with_the_reason(string json, string named)
    {
        var refused = Assert.Throws(Is.InstanceOf<ArgumentException>(), () => FromJson(json));
        Assert.That(refused!.Message, Does.Contain(named));
    }

    [Test]
    public void A_role_that_is_no_role_is_refused_by_the_binder()
    {
        Assert.That(() => FromJson("""{"Pair": {"Role": "leader"}}"""), Throws.InstanceOf<InvalidOperationException>());
    }
}
