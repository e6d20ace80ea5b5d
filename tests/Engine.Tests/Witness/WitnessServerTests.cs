using System.Net;
using System.Net.Sockets;
using System.Text;
using Engine.Replication;
using Engine.Replication.Pair;
using Engine.Security;
using Engine.Tests.Support;

namespace Engine.Tests.Witness;

/// <summary>
/// The witness over real sockets and secure channels, in this process: the sticky lease and the fence
/// end to end, the state file, and strangers (no handshake, the wrong role, another cluster, a
/// malformed or overlong request, too many connections) refused with the state unchanged and the
/// real nodes unaffected.
/// </summary>
public class WitnessServerTests
{
    private static readonly IPEndPoint s_any = new(IPAddress.Loopback, 0);
    private static readonly ClusterCredentials s_witness = ClusterCredentials.Development("witness");
    private static readonly ClusterCredentials s_a = ClusterCredentials.Development("a");
    private static readonly ClusterCredentials s_b = ClusterCredentials.Development("b");

    private static async Task<WitnessAnswer> Acquire(WitnessServer witness, ClusterCredentials node, ulong epoch) =>
        (await WitnessClient.AcquireAsync(witness.Endpoint, node, epoch, new PairSettings().LeaseMarginMs, CancellationToken.None)).Answer;

    private static Task<WitnessAnswer> Release(WitnessServer witness, ClusterCredentials node) => WitnessClient.ReleaseAsync(witness.Endpoint, node, CancellationToken.None);

    [Test]
    public async Task The_lease_stays_with_its_holder_until_it_releases_and_an_old_epoch_is_fenced()
    {
        await using var witness = new WitnessServer(s_any, 300, s_witness, _ => { });
        witness.Start();
        Assert.That(await Acquire(witness, s_a, 1), Is.EqualTo(new WitnessAnswer.Granted(300)));
        Assert.That(await Acquire(witness, s_a, 1), Is.EqualTo(new WitnessAnswer.Granted(300)), "the holder renews");
        Assert.That(await Acquire(witness, s_b, 2), Is.EqualTo(new WitnessAnswer.Denied("a", 1, WitnessRefusal.Held)), "one holder at a time, however long it is silent");
        Assert.That(await Release(witness, s_b), Is.EqualTo(new WitnessAnswer.NotHolder("a")), "only the holder gives it back");
        Assert.That(witness.State, Is.EqualTo(new WitnessState("a", 1, 1)));
        Assert.That(await Release(witness, s_a), Is.EqualTo(new WitnessAnswer.Released()));
        Assert.That(await Acquire(witness, s_b, 2), Is.EqualTo(new WitnessAnswer.Granted(300)), "b took over: the next epoch");
        Assert.That(await Release(witness, s_b), Is.EqualTo(new WitnessAnswer.Released()));
        Assert.That(await Acquire(witness, s_a, 1), Is.EqualTo(new WitnessAnswer.Denied(null, 2, WitnessRefusal.Fenced)), "a, the old primary, is fenced for good");
        Assert.That(await Acquire(witness, s_a, 4), Is.EqualTo(new WitnessAnswer.Denied(null, 2, WitnessRefusal.EpochTooHigh)), "no epoch is skipped");
        Assert.That(witness.State, Is.EqualTo(new WitnessState(null, 2, 2)));
    }

    [Test]
    public async Task A_restarted_witness_keeps_its_holder_and_its_fence_from_the_state_file()
    {
        using var directory = new TempDirectory("witness");
        string state = directory.Sub("witness.state");
        await using (var first = new WitnessServer(s_any, 300, s_witness, _ => { }, state))
        {
            Assert.That(first.Decide("a", 1), Is.InstanceOf<WitnessAnswer.Granted>());
        }
        await using (var second = new WitnessServer(s_any, 300, s_witness, _ => { }, state))
        {
            Assert.That(second.Decide("b", 2), Is.EqualTo(new WitnessAnswer.Denied("a", 1, WitnessRefusal.Held)), "the holder survives the restart");
            Assert.That(second.Release("a"), Is.EqualTo(new WitnessAnswer.Released()));
            Assert.That(second.Decide("b", 2), Is.InstanceOf<WitnessAnswer.Granted>());
        }
        await using (var third = new WitnessServer(s_any, 300, s_witness, _ => { }, state))
        {
            Assert.That(third.Decide("a", 1), Is.EqualTo(new WitnessAnswer.Denied("b", 2, WitnessRefusal.Fenced)), "the highest epoch survives the restart");
            Assert.That(third.Decide("b", 2), Is.InstanceOf<WitnessAnswer.Granted>(), "and so does b's grant");
            Assert.That(third.Decide("b", 9), Is.EqualTo(new WitnessAnswer.Denied("b", 2, WitnessRefusal.EpochTooHigh)));
        }
        Assert.That(await File.ReadAllTextAsync(state), Is.EqualTo("holder b\nholder_epoch 2\nhighest_epoch 2\n"), "the refused jump was not recorded");
        await File.WriteAllTextAsync(state, "holder\n");
        Assert.Throws<InvalidDataException>(() => _ = new WitnessServer(s_any, 300, s_witness, _ => { }, state), "an unreadable state is refused, not reset");
        await File.WriteAllTextAsync(state, "holder b\nholder_epoch 3\nhighest_epoch 2\n");
        Assert.Throws<InvalidDataException>(() => _ = new WitnessServer(s_any, 300, s_witness, _ => { }, state), "a holder's epoch above the highest is inconsistent");
    }

    [Test]
    public async Task A_state_file_naming_a_holder_that_is_no_node_of_the_cluster_is_refused()
    {
        using var directory = new TempDirectory("witness");
        ClusterSetup.Init(directory.Sub("cluster"));
        ClusterCredentials witness = ClusterCredentials.Load(directory.Sub("cluster/cluster.json"), directory.Sub("cluster/witness.key"));
        string state = directory.Sub("witness.state");
        await File.WriteAllTextAsync(state, "holder node-a\nholder_epoch 3\nhighest_epoch 3\n");
        await using (var known = new WitnessServer(s_any, 300, witness, _ => { }, state))
        {
            Assert.That(known.State, Is.EqualTo(new WitnessState("node-a", 3, 3)));
        }
        foreach (string holder in new[] { "127.0.0.1:7420", "observer", "operator" })
        {
            await File.WriteAllTextAsync(state, $"holder {holder}\nholder_epoch 3\nhighest_epoch 3\n");
            var e = Assert.Throws<InvalidDataException>(() => _ = new WitnessServer(s_any, 300, witness, _ => { }, state));
            Assert.That(e!.Message, Does.Contain($"'{holder}'").And.Contain("not a node"));
        }
    }

    [Test]
    public async Task Strangers_are_refused_and_change_nothing_and_the_nodes_go_on()
    {
        using var directory = new TempDirectory("witness");
        ClusterSetup.Init(directory.Sub("ours"));
        ClusterSetup.Init(directory.Sub("theirs"));
        ClusterCredentials Ours(string name) => ClusterCredentials.Load(directory.Sub("ours/cluster.json"), directory.Sub($"ours/{name}.key"));
        ClusterCredentials nodeA = Ours("node-a"), nodeB = Ours("node-b");
        string state = directory.Sub("witness.state");
        var lines = new System.Collections.Concurrent.ConcurrentQueue<string>();
        await using var witness = new WitnessServer(s_any, 300, Ours("witness"), lines.Enqueue, state);
        witness.Start();
        Assert.That(await Acquire(witness, nodeA, 1), Is.InstanceOf<WitnessAnswer.Granted>());
        Assert.That(await Release(witness, nodeA), Is.EqualTo(new WitnessAnswer.Released()), "the pair is whole: nobody holds the lease");
        string before = await File.ReadAllTextAsync(state);

        // No handshake: yesterday's protocol, with the epoch that would fence every node for good.
        // (At most the handshake's refusal comes back, a few bytes, never an answer.)
        Assert.That(await RawAsync(witness.Endpoint, "ACQUIRE x 18446744073709551615\n"u8.ToArray()), Has.Length.LessThan(8), "closed without an answer");
        Assert.That(await RawAsync(witness.Endpoint, "RELEASE node-a\n"u8.ToArray()), Has.Length.LessThan(8));
        // A real handshake, but an observer's key, the operator's, another witness's, another cluster's node.
        foreach ((ClusterCredentials who, RefusalReason why) in new[]
        {
            (Ours("observer"), RefusalReason.RoleNotAllowed), (Ours("operator"), RefusalReason.RoleNotAllowed), (Ours("witness"), RefusalReason.RoleNotAllowed),
            (ClusterCredentials.Load(directory.Sub("theirs/cluster.json"), directory.Sub("theirs/node-a.key")), RefusalReason.WrongCluster),
            (ClusterCredentials.Development("node-a"), RefusalReason.WrongCluster),
        })
        {
            WitnessAnswer answer = await Acquire2(witness.Endpoint, who, ulong.MaxValue);
            Assert.That(answer, Is.InstanceOf<WitnessAnswer.NoAnswer>(), who.ToString());
            Assert.That(((WitnessAnswer.NoAnswer)answer).Why, Is.EqualTo($"refused: {why}"), who.ToString());
        }
        Assert.That(witness.State, Is.EqualTo(new WitnessState(null, 1, 1)), "nothing changed");
        Assert.That(await File.ReadAllTextAsync(state), Is.EqualTo(before), "nothing written");
        // Counted by the witness's side of each connection, which may finish after the stranger has
        // already seen the refusal: wait for the count, do not race it.
        var counting = System.Diagnostics.Stopwatch.StartNew();
        while (witness.Refused < 7 && counting.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(5);
        }
        Assert.That(witness.Refused, Is.GreaterThanOrEqualTo(7), "each refusal counted");

        // A node of the cluster: it gets the lease, and b can take over once a gives it back.
        Assert.That(await Acquire(witness, nodeA, 1), Is.InstanceOf<WitnessAnswer.Granted>());
        Assert.That(await Release(witness, nodeA), Is.EqualTo(new WitnessAnswer.Released()));
        Assert.That(await Acquire(witness, nodeB, 2), Is.InstanceOf<WitnessAnswer.Granted>());
        Assert.That(witness.State, Is.EqualTo(new WitnessState("node-b", 2, 2)));
    }

    /// <summary>A real node's key, a request that is not one: the connection is closed, nothing decided, counted; the next request is served.</summary>
    [TestCase("ACQUIRE 1 2")]
    [TestCase("ACQUIRE node-a 1")]
    [TestCase("ACQUIRE 0")]
    [TestCase("ACQUIRE 18446744073709551616")]
    [TestCase("RELEASE node-a")]
    [TestCase("acquire 1")]
    [TestCase("ACQUIRE 1\u00ff")]
    [TestCase("ACQUIRE 000000000000000000000000000001")]
    public async Task A_malformed_request_from_a_node_closes_only_its_connection(string line)
    {
        await using var witness = new WitnessServer(s_any, 300, s_witness, _ => { });
        witness.Start();
        using (SecureChannel channel = await ConnectAsync(witness.Endpoint, s_a))
        {
            await channel.SendAsync(Encoding.Latin1.GetBytes(line));
            Assert.That(await ReceiveOrClosedAsync(channel), Is.Null, "closed without an answer");
        }
        Until.True(() => witness.Malformed == 1, "the malformed request to be counted");
        Assert.That(witness.State, Is.EqualTo(WitnessState.Empty));
        Assert.That(await Acquire(witness, s_a, 1), Is.InstanceOf<WitnessAnswer.Granted>(), "the listener goes on");
    }

    [Test]
    public async Task Idle_and_surplus_connections_are_closed_and_a_node_is_served_afterwards()
    {
        await using var witness = new WitnessServer(s_any, 300, s_witness, _ => { });
        witness.Start();
        var idle = new List<Socket>();
        try
        {
            for (int i = 0; i < WitnessServer.MaxConnections + 8; i++)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await socket.ConnectAsync(witness.Endpoint);
                idle.Add(socket);
            }
            // Every one is closed by the witness: the surplus at once, the rest after the connection timeout.
            foreach (Socket socket in idle)
            {
                using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                int read = await socket.ReceiveAsync(new byte[64], SocketFlags.None, patience.Token);
                Assert.That(read, Is.Zero, "closed by the witness");
            }
            Until.True(() => witness.Refused >= WitnessServer.MaxConnections + 8, "every idle or surplus connection to be counted as refused");
        }
        finally
        {
            idle.ForEach(s => s.Dispose());
        }
        Assert.That(await Acquire(witness, s_a, 1), Is.InstanceOf<WitnessAnswer.Granted>());
    }

    [Test]
    public async Task A_record_longer_than_any_request_closes_the_connection()
    {
        await using var witness = new WitnessServer(s_any, 300, s_witness, _ => { });
        witness.Start();
        using (SecureChannel channel = await ConnectAsync(witness.Endpoint, s_a))
        {
            await channel.SendAsync(Encoding.ASCII.GetBytes("ACQUIRE 1" + new string(' ', 4096)));
            Assert.That(await ReceiveOrClosedAsync(channel), Is.Null);
        }
        Until.True(() => witness.Malformed == 1, "the overlong record to be counted");
        Assert.That(witness.State, Is.EqualTo(WitnessState.Empty));
    }

    /// <summary>
    /// A node gave up on a channel (no answer in time) and asked again on a new one: a request still in
    /// flight on the old channel must not be decided after the new one's (a late ACQUIRE after the
    /// RELEASE would give it a lease it believes it gave back, and the other node could never take over).
    /// </summary>
    [Test]
    public async Task A_request_on_a_channel_the_node_has_replaced_is_dropped_unanswered()
    {
        await using var witness = new WitnessServer(s_any, 300, s_witness, _ => { });
        witness.Start();
        using SecureChannel old = await ConnectAsync(witness.Endpoint, s_a);
        using SecureChannel newer = await ConnectAsync(witness.Endpoint, s_a);
        await newer.SendAsync(WitnessLine.Format(new WitnessRequest(WitnessVerb.Release, 0)));
        Assert.That(await ReceiveOrClosedAsync(newer), Is.EqualTo(WitnessLine.Format(new WitnessAnswer.NotHolder(null))), "the newer channel is served");
        await old.SendAsync(WitnessLine.Format(new WitnessRequest(WitnessVerb.Acquire, 1)));
        Assert.That(await ReceiveOrClosedAsync(old), Is.Null, "the older one is closed unanswered");
        Assert.That(witness.State, Is.EqualTo(WitnessState.Empty), "and its request not decided");
        Assert.That(witness.Superseded, Is.EqualTo(1));
        using SecureChannel b = await ConnectAsync(witness.Endpoint, s_b);
        await newer.SendAsync(WitnessLine.Format(new WitnessRequest(WitnessVerb.Acquire, 1)));
        Assert.That(await ReceiveOrClosedAsync(newer), Is.EqualTo(WitnessLine.Format(new WitnessAnswer.Granted(300))), "another node's channel supersedes nothing of a's");
    }

    [Test]
    public void Only_a_witness_runs_the_witness_and_only_a_node_asks()
    {
        Assert.Throws<ArgumentException>(() => _ = new WitnessServer(s_any, 300, ClusterCredentials.Development("operator"), _ => { }));
        Assert.ThrowsAsync<ArgumentException>(() => WitnessClient.AcquireAsync(s_any, ClusterCredentials.Development("observer"), 1, new PairSettings().LeaseMarginMs, CancellationToken.None));
    }

    /// <summary>As <see cref="WitnessClient.AcquireAsync"/> for credentials of any role (it refuses a non-node itself): what a stranger's client does.</summary>
    private static async Task<WitnessAnswer> Acquire2(IPEndPoint witness, ClusterCredentials who, ulong epoch)
    {
        try
        {
            using SecureChannel channel = await ConnectAsync(witness, who);
            await channel.SendAsync(WitnessLine.Format(new WitnessRequest(WitnessVerb.Acquire, epoch)));
            byte[]? answer = await ReceiveOrClosedAsync(channel);
            return answer is null ? new WitnessAnswer.NoAnswer("closed") : WitnessLine.TryParseAnswer(answer, out WitnessAnswer parsed, out _) ? parsed : new WitnessAnswer.NoAnswer("garbled");
        }
        catch (LinkRefusedException e)
        {
            return new WitnessAnswer.NoAnswer($"refused: {e.Reason}");
        }
    }

    private static async Task<SecureChannel> ConnectAsync(IPEndPoint witness, ClusterCredentials who)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(witness);
        return await SecureChannel.ConnectAsync(socket, who, LinkPurpose.Witness, PrincipalRole.Witness);
    }

    /// <summary>The next record, or null when the witness closed the channel.</summary>
    private static async Task<byte[]?> ReceiveOrClosedAsync(SecureChannel channel)
    {
        var buffer = new byte[256];
        try
        {
            using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            int read = await channel.ReceiveAsync(buffer, patience.Token);
            return read == 0 ? null : buffer[..read];
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>Sends raw bytes (no handshake) and returns whatever comes back before the witness closes.</summary>
    private static async Task<byte[]> RawAsync(IPEndPoint witness, byte[] bytes)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(witness);
        await socket.SendAsync(bytes, SocketFlags.None);
        var received = new List<byte>();
        var buffer = new byte[256];
        using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            while (await socket.ReceiveAsync(buffer, SocketFlags.None, patience.Token) is int read and > 0)
            {
                received.AddRange(buffer.AsSpan(0, read));
            }
        }
        catch (SocketException)
        {
            // Reset: closed all the same.
        }
        return [.. received];
    }
}
