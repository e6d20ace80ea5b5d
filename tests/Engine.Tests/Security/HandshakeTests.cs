using System.Net.Sockets;
using Engine.Security;
using Engine.Tests.Support;

namespace Engine.Tests.Security;

/// <summary>The handshake lets two principals of one cluster talk, and refuses everyone else with a reason on both sides.</summary>
public class HandshakeTests
{
    private TempDirectory _dir = null!;
    private TempDirectory _otherDir = null!;

    [OneTimeSetUp]
    public void MakeClusters()
    {
        _dir = new TempDirectory("cluster");
        _otherDir = new TempDirectory("cluster");
        ClusterSetup.Init(_dir.Path);
        ClusterSetup.Init(_otherDir.Path);
    }

    [OneTimeTearDown]
    public void RemoveClusters()
    {
        _dir.Dispose();
        _otherDir.Dispose();
    }

    private ClusterCredentials Ours(string name) => ClusterCredentials.Load(_dir.Sub("cluster.json"), _dir.Sub($"{name}.key"));

    private ClusterCredentials Theirs(string name) => ClusterCredentials.Load(_otherDir.Sub("cluster.json"), _otherDir.Sub($"{name}.key"));

    [Test]
    public async Task Two_nodes_of_one_cluster_authenticate_each_other_and_talk()
    {
        (SecureChannel client, SecureChannel server) = await ChannelHarness.ConnectedAsync(Ours("node-b"), Ours("node-a"));
        using (client)
        using (server)
        {
            Assert.Multiple(() =>
            {
                Assert.That(client.Peer.Name, Is.EqualTo("node-a"), "the client knows it reached node-a");
                Assert.That(server.Peer.Name, Is.EqualTo("node-b"), "the server knows node-b connected");
                Assert.That(server.Peer.Role, Is.EqualTo(PrincipalRole.Node));
                Assert.That(server.Purpose, Is.EqualTo(LinkPurpose.Replication));
            });
            client.Send("hello"u8);
            var buffer = new byte[64];
            int n = await server.ReceiveAsync(buffer);
            Assert.That(buffer.AsSpan(0, n).ToArray(), Is.EqualTo("hello"u8.ToArray()));
            await server.SendAsync("back"u8.ToArray());
            n = await client.ReceiveAsync(buffer);
            Assert.That(buffer.AsSpan(0, n).ToArray(), Is.EqualTo("back"u8.ToArray()));
        }
    }

    [Test]
    public async Task A_principal_of_another_cluster_is_refused()
    {
        (Task<SecureChannel> client, AcceptOutcome server) = await ChannelHarness.HandshakeAsync(Theirs("node-b"), Ours("node-a"));
        AssertRefused(client, server, RefusalReason.WrongCluster, byServer: true);
        Assert.That(server.Refusal!.Detail, Does.Contain("not of ours"));
    }

    [Test]
    public async Task The_development_cluster_is_another_cluster()
    {
        (Task<SecureChannel> client, AcceptOutcome server) = await ChannelHarness.HandshakeAsync(ClusterCredentials.Development("node-b"), Ours("node-a"));
        AssertRefused(client, server, RefusalReason.WrongCluster, byServer: true);
    }

    [Test]
    public async Task An_unknown_name_is_refused()
    {
        // Another cluster's roster with our cluster id would still not know the name: simulate a
        // stranger claiming a name that is not in our roster, with our cluster id.
        ClusterRoster ours = ClusterRoster.Load(_dir.Sub("cluster.json"));
        ClusterCredentials stranger = ClusterCredentials.Unchecked(WithExtra(ours, "mallory"), WithExtra(ours, "mallory").Find("mallory")!, new byte[32]);
        (Task<SecureChannel> client, AcceptOutcome server) = await ChannelHarness.HandshakeAsync(stranger, Ours("node-a"));
        AssertRefused(client, server, RefusalReason.UnknownPrincipal, byServer: true);
    }

    [Test]
    public async Task A_name_claimed_without_its_key_is_refused_by_either_side()
    {
        ClusterRoster ours = ClusterRoster.Load(_dir.Sub("cluster.json"));
        // A client that says "node-b" but signs with a key of its own.
        ClusterCredentials impostor = ClusterCredentials.Unchecked(ours, ours.Find("node-b")!, Enumerable.Repeat((byte)7, 32).ToArray());
        (Task<SecureChannel> client, AcceptOutcome server) = await ChannelHarness.HandshakeAsync(impostor, Ours("node-a"));
        AssertRefused(client, server, RefusalReason.BadSignature, byServer: true);

        // A server that says "node-a" (a fake primary): the backup refuses it.
        ClusterCredentials fakePrimary = ClusterCredentials.Unchecked(ours, ours.Find("node-a")!, Enumerable.Repeat((byte)9, 32).ToArray());
        (client, server) = await ChannelHarness.HandshakeAsync(Ours("node-b"), fakePrimary);
        Assert.That(client.IsFaulted, Is.True);
        var refused = (LinkRefusedException)client.Exception!.InnerException!;
        Assert.That((refused.Reason, refused.ByPeer), Is.EqualTo((RefusalReason.BadSignature, false)), refused.Message);
        Assert.That(server.Accepted, Is.False, "the server saw the client walk away");
    }

    [Test]
    public async Task An_observer_cannot_act_as_a_node_nor_a_node_as_the_witness()
    {
        // Observer → a replication endpoint that takes nodes.
        (Task<SecureChannel> client, AcceptOutcome server) = await ChannelHarness.HandshakeAsync(Ours("observer"), Ours("node-a"));
        AssertRefused(client, server, RefusalReason.RoleNotAllowed, byServer: true);

        // A node expects the witness, and a node answers: the client refuses the server.
        (client, server) = await ChannelHarness.HandshakeAsync(Ours("node-a"), Ours("node-b"), expectedServerRole: PrincipalRole.Witness, clientRoles: [PrincipalRole.Node]);
        var refused = (LinkRefusedException)client.Exception!.InnerException!;
        Assert.That((refused.Reason, refused.ByPeer), Is.EqualTo((RefusalReason.RoleNotAllowed, false)), refused.Message);
        Assert.That(server.Accepted, Is.False);

        // An observer posing as the server of a node (a fake primary with the observer key).
        (client, server) = await ChannelHarness.HandshakeAsync(Ours("node-b"), Ours("observer"));
        refused = (LinkRefusedException)client.Exception!.InnerException!;
        Assert.That(refused.Reason, Is.EqualTo(RefusalReason.RoleNotAllowed), refused.Message);
    }

    [Test]
    public async Task A_handshake_for_another_purpose_is_refused()
    {
        (Task<SecureChannel> client, AcceptOutcome server) = await ChannelHarness.HandshakeAsync(Ours("node-b"), Ours("node-a"), purpose: LinkPurpose.Admin);
        AssertRefused(client, server, RefusalReason.Purpose, byServer: true);
    }

    [Test]
    public async Task A_client_that_stops_halfway_is_refused_after_the_timeout()
    {
        (Socket c, Socket s) = ChannelHarness.Pair();
        using (c)
        {
            c.Send([40, 0, 1, 2, 3]); // a length, then a few bytes, then silence
            AcceptOutcome outcome = await SecureChannel.AcceptAsync(s, Ours("node-a"), LinkPurpose.Replication, ChannelHarness.Nodes, TimeSpan.FromMilliseconds(200))
                .WaitAsync(TimeSpan.FromSeconds(30));
            Assert.That(outcome.Refusal?.Reason, Is.EqualTo(RefusalReason.Timeout));
        }
    }

    [Test]
    public async Task A_silent_server_times_the_client_out()
    {
        (Socket c, Socket s) = ChannelHarness.Pair();
        using (s)
        {
            var e = Assert.ThrowsAsync<LinkRefusedException>(() => SecureChannel.ConnectAsync(c, Ours("node-b"), LinkPurpose.Replication, PrincipalRole.Node, TimeSpan.FromMilliseconds(200))
                .WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.That(e!.Reason, Is.EqualTo(RefusalReason.Timeout));
        }
        await Task.CompletedTask;
    }

    [Test]
    public async Task An_altered_handshake_message_fails_it()
    {
        // Flip a bit in each of the first three messages in turn: the cluster id, a name, an ephemeral
        // key or a signature changes, and a signature no longer verifies (or a check refuses it).
        for (int message = 0; message < 3; message++)
        {
            int which = message;
            using ChannelHarness.Middle middle = await ChannelHarness.ThroughMiddleAsync(Ours("node-b"), Ours("node-a"), (i, bytes) =>
            {
                if (i == which)
                {
                    bytes[^1] ^= 0x01; // the last byte: a name's or a signature's
                }
                return bytes;
            });
            Assert.That(middle.Server.Accepted && middle.Client is not null, Is.False, $"message {which} altered, yet both sides have a channel");
        }
    }

    private static void AssertRefused(Task<SecureChannel> client, AcceptOutcome server, RefusalReason reason, bool byServer)
    {
        Assert.That(server.Accepted, Is.False, "the server refused");
        Assert.That(server.Refusal!.Reason, Is.EqualTo(reason), server.Refusal.Detail);
        Assert.That(client.IsFaulted, Is.True, "the client got no channel");
        var refused = client.Exception!.InnerException as LinkRefusedException;
        Assert.That(refused, Is.Not.Null, client.Exception.ToString());
        Assert.That((refused!.Reason, refused.ByPeer), Is.EqualTo((reason, byServer)), refused.Message);
    }

    private static ClusterRoster WithExtra(ClusterRoster roster, string name)
    {
        string json = roster.ToJson().Replace("\"principals\": [", $"\"principals\": [ {{ \"name\": \"{name}\", \"role\": \"node\", \"public_key\": \"{Convert.ToHexStringLower(ClusterCredentials.Development(name).Self.PublicKey)}\" }},", StringComparison.Ordinal);
        return ClusterRoster.Parse(json, "test");
    }
}
