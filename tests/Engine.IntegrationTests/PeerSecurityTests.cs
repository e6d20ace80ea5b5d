using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;
using Engine.Cli;
using Engine.IntegrationTests.Support;
using Engine.Replication;
using Engine.Security;

namespace Engine.IntegrationTests;

/// <summary>
/// Strangers at the pair's peer endpoints, as real processes: the witness, the admin endpoint's
/// go-solo and the fault proxy's control port refuse anyone without the cluster's credential of the
/// right role, and what they guard is left as it was.
/// </summary>
/// <remarks>
/// The pair here runs in the development cluster (no --cluster/--key: each node is the development
/// principal "node@" + its replication endpoint), so its own keys are no secret; the strangers are
/// those without a key of the right role in it: no handshake at all (the protocol before), the
/// observer's or the operator's key, another cluster's key. The test code touches the witness and
/// admin formats only in small helpers, so the same tests can be run against an engine without
/// authentication (they then fail on their first assertion).
/// </remarks>
public class PeerSecurityTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    [Test]
    public async Task A_stranger_at_the_witness_changes_nothing_and_the_pair_still_takes_over()
    {
        string root = Path.Combine(Path.GetTempPath(), $"peer-{Guid.NewGuid():N}");
        int primaryPort = Ports.Free(), backupPort = Ports.Free(), primaryReplication = Ports.Free(), backupReplication = Ports.Free(), witnessPort = Ports.Free();
        string state = Path.Combine(root, "witness.state");
        var witnessAt = new IPEndPoint(IPAddress.Loopback, witnessPort);
        string a = $"127.0.0.1:{primaryReplication}", b = $"127.0.0.1:{backupReplication}";
        string nodeA = $"node@{a}", nodeB = $"node@{b}"; // the development principals the nodes are
        Directory.CreateDirectory(root);
        ClusterSetup.Init(Path.Combine(root, "other"));
        ClusterCredentials observer = ClusterCredentials.Development("observer"), operatorKey = ClusterCredentials.Development("operator");
        ClusterCredentials otherCluster = ClusterCredentials.Load(Path.Combine(root, "other", "cluster.json"), Path.Combine(root, "other", "node-a.key"));
        try
        {
            using var witness = EngineProcess.Start("witness", "--listen", $"127.0.0.1:{witnessPort}", "--state", state);
            witness.WaitForOutput(o => o.Contains("listening", StringComparison.Ordinal), "the witness to start", Wait);
            string[] Node(string role, string data, int port, int replication) => ["serve", "--role", role, "--data", Path.Combine(root, data), "--listen", $"127.0.0.1:{port}",
                "--replication-listen", $"127.0.0.1:{replication}", "--witness", $"127.0.0.1:{witnessPort}"];
            // The primary alone first: it holds the lease until its backup is in step, then gives it back, so the
            // witness's state is settled ("holder -") before the strangers come (requests the primary gave up on
            // in between are dropped by the witness, not decided late).
            using var primary = EngineProcess.Start([.. Node("primary", "a", primaryPort, primaryReplication)]);
            primary.WaitForEvent(PairEventKind.LeaseGranted, "the lone primary's lease", Wait);
            EngineProcess backup = EngineProcess.Start([.. Node("backup", "b", backupPort, backupReplication), "--peer", a]);
            try
            {
                primary.WaitForEvents(events => events.Any(e => e.Kind == PairEventKind.BackupInStep) && events.Any(e => e.Kind == PairEventKind.LeaseReleased),
                    "the pair to be in step and the lease given back", Wait);
                WaitForFile(state, "holder -\nholder_epoch 1\nhighest_epoch 1\n", "the witness to have the lease free");
                string whole = await File.ReadAllTextAsync(state);

                // Strangers try to take the free lease: the epoch that would fence both nodes for good, and the next epoch (a takeover blocked).
                Assert.That(await RawAsync(witnessAt, "ACQUIRE x 18446744073709551615\n"), Does.Not.Contain("GRANTED"), "no handshake: no answer");
                Assert.That(await RawAsync(witnessAt, $"ACQUIRE {nodeB} 2\n"), Does.Not.Contain("GRANTED"));
                Assert.That(await HandshakeAsync(witnessAt, observer, LinkPurpose.Witness, PrincipalRole.Witness, "ACQUIRE 18446744073709551615"), Is.EqualTo("refused: RoleNotAllowed"));
                Assert.That(await HandshakeAsync(witnessAt, operatorKey, LinkPurpose.Witness, PrincipalRole.Witness, "ACQUIRE 2"), Is.EqualTo("refused: RoleNotAllowed"));
                Assert.That(await HandshakeAsync(witnessAt, otherCluster, LinkPurpose.Witness, PrincipalRole.Witness, "ACQUIRE 2"), Is.EqualTo("refused: WrongCluster"));
                Assert.That(await File.ReadAllTextAsync(state), Is.EqualTo(whole), "the witness's state is unchanged");

                // The backup dies: the primary takes the lease and goes on alone.
                backup.KillHard();
                WaitForFile(state, $"holder {nodeA}\nholder_epoch 1\nhighest_epoch 1\n", "the primary to hold the lease");
                string held = await File.ReadAllTextAsync(state);
                // Strangers try to break the sticky lease (then the backup, back, could take over beside the primary).
                Assert.That(await RawAsync(witnessAt, $"RELEASE {nodeA}\n"), Does.Not.Contain("RELEASED"));
                Assert.That(await HandshakeAsync(witnessAt, observer, LinkPurpose.Witness, PrincipalRole.Witness, "RELEASE"), Is.EqualTo("refused: RoleNotAllowed"));
                Assert.That(await HandshakeAsync(witnessAt, otherCluster, LinkPurpose.Witness, PrincipalRole.Witness, "RELEASE"), Is.EqualTo("refused: WrongCluster"));
                Assert.That(await HandshakeAsync(witnessAt, ClusterCredentials.Development("127.0.0.1:1"), LinkPurpose.Witness, PrincipalRole.Witness, "RELEASE"),
                    Is.EqualTo($"NOT-HOLDER {nodeA}"), "a node that is not the holder releases nothing");
                Assert.That(await File.ReadAllTextAsync(state), Is.EqualTo(held), "the primary still holds the lease");
                Assert.That(witness.StdOut, Does.Contain("witness: refused"), "the refusals are told");

                // The real pair is unharmed: the backup comes back, the primary gives the lease back, the primary dies, the backup takes over.
                backup.Dispose();
                backup = EngineProcess.Start([.. Node("backup", "b", backupPort, backupReplication), "--peer", a]);
                WaitForFile(state, "holder -\nholder_epoch 1\nhighest_epoch 1\n", "the primary to give the lease back once the backup is in step");
                primary.KillHard();
                backup.WaitForEvent(PairEventKind.TakeOver, "the backup to take over with the witness's lease", Wait);
                WaitForFile(state, $"holder {nodeB}\nholder_epoch 2\nhighest_epoch 2\n", "the lease with the new primary in epoch 2");
            }
            finally
            {
                backup.Dispose();
            }
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Test]
    public async Task Go_solo_needs_a_fresh_operator_signature_for_this_node()
    {
        string root = Path.Combine(Path.GetTempPath(), $"peer-{Guid.NewGuid():N}");
        int port = Ports.Free(), replication = Ports.Free(), adminPort = Ports.Free(), otherPort = Ports.Free();
        string admin = $"127.0.0.1:{adminPort}";
        Directory.CreateDirectory(root);
        ClusterSetup.Init(Path.Combine(root, "other"));
        try
        {
            using var primary = EngineProcess.Start("serve", "--role", "primary", "--data", Path.Combine(root, "a"), "--listen", $"127.0.0.1:{port}",
                "--replication-listen", $"127.0.0.1:{replication}", "--admin", admin);
            primary.WaitForLog(o => o.Contains("listening for front-ends", StringComparison.Ordinal), "the primary to start", Wait);
            using var http = new HttpClient { Timeout = Wait };
            var goSolo = new Uri($"http://{admin}/admin/go-solo");

            using (HttpResponseMessage none = await http.PostAsync(goSolo, null))
            {
                Assert.That((int)none.StatusCode, Is.EqualTo(401), "no signature");
            }
            Assert.That(await SoloLeaseAsync(http, admin), Is.False);
            string other = $"127.0.0.1:{otherPort}";
            (string Header, string Host, int Status, string Why)[] refused =
            [
                (Forged(admin), admin, 401, "a signature that is not the operator's"),
                (Signed(ClusterCredentials.Development("observer"), admin, "/admin/go-solo"), admin, 403, "an observer's signature"),
                (Signed(ClusterCredentials.Development("127.0.0.1:1"), admin, "/admin/go-solo"), admin, 403, "a node's signature"),
                (Signed(ClusterCredentials.Load(Path.Combine(root, "other", "cluster.json"), Path.Combine(root, "other", "operator.key")), admin, "/admin/go-solo"), admin, 401, "another cluster's operator"),
                (Signed(ClusterCredentials.Development("operator"), other, "/admin/go-solo"), other, 401, "a request for another node, replayed here"),
                (Signed(ClusterCredentials.Development("operator"), other, "/admin/go-solo"), admin, 401, "signed for another node"),
                (Signed(ClusterCredentials.Development("operator"), admin, "/admin/go-solo?minutes=1"), admin, 401, "signed for other arguments"),
                (Signed(ClusterCredentials.Development("operator"), admin, "/admin/go-solo", DateTimeOffset.UtcNow.AddMinutes(-2)), admin, 401, "signed two minutes ago"),
                ("Engine-Ed25519 name=operator", admin, 401, "a malformed header"),
            ];
            foreach ((string header, string host, int status, string why) in refused)
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, goSolo);
                request.Headers.Host = host;
                request.Headers.TryAddWithoutValidation("Authorization", header);
                using HttpResponseMessage response = await http.SendAsync(request);
                Assert.That((int)response.StatusCode, Is.EqualTo(status), $"{why}: {await response.Content.ReadAsStringAsync()}");
            }
            Assert.That(await SoloLeaseAsync(http, admin), Is.False, "nothing granted");

            string good = Signed(ClusterCredentials.Development("operator"), admin, "/admin/go-solo");
            for (int attempt = 0; attempt < 2; attempt++)
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, goSolo);
                request.Headers.TryAddWithoutValidation("Authorization", good);
                using HttpResponseMessage response = await http.SendAsync(request);
                Assert.That((int)response.StatusCode, Is.EqualTo(attempt == 0 ? 200 : 401), attempt == 0 ? "the operator's signature" : "the same request replayed");
            }
            Assert.That(await SoloLeaseAsync(http, admin), Is.True, "granted");
            NodeStatusReport granted = await StatusAsync(http, admin);
            Assert.That(granted.SoloLeaseMsLeft, Is.InRange(1, 10 * 60 * 1000), "a go-solo lease ends");

            using var command = EngineProcess.Start("admin", "go-solo", "--admin", admin, "--minutes", "1");
            Assert.That(command.WaitForExit(Wait), Is.Zero, command.StdErr);
            Assert.That(command.StdOut, Does.Contain("for 1 min"));
            Assert.That((await StatusAsync(http, admin)).SoloLeaseMsLeft, Is.InRange(1, 60 * 1000), "the command's lease: one minute");
            Assert.That(primary.EventsOf(PairEventKind.Refused).Select(e => e.Text), Has.Some.Contains("admin endpoint: refused"), "the refusals are told");
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Test]
    public async Task The_proxy_control_port_takes_commands_only_from_an_operator()
    {
        int listen = Ports.Free(), control = Ports.Free(), target = Ports.Free();
        using var proxy = EngineProcess.Start("proxy", "--listen", $"127.0.0.1:{listen}", "--target", $"127.0.0.1:{target}", "--control", $"127.0.0.1:{control}");
        proxy.WaitForOutput(o => o.Contains("control on", StringComparison.Ordinal), "the proxy to listen", Wait);
        var at = new IPEndPoint(IPAddress.Loopback, control);

        Assert.That(await RawAsync(at, "blackhole\n"), Does.Not.Contain("proxy:"), "no handshake: no command");
        Assert.That(await HandshakeAsync(at, ClusterCredentials.Development("observer"), LinkPurpose.Control, PrincipalRole.Operator, "blackhole"), Is.EqualTo("refused: RoleNotAllowed"));
        Assert.That(await HandshakeAsync(at, ClusterCredentials.Development("127.0.0.1:1"), LinkPurpose.Control, PrincipalRole.Operator, "blackhole"), Is.EqualTo("refused: RoleNotAllowed"));
        Assert.That(await HandshakeAsync(at, ClusterCredentials.Development("operator"), LinkPurpose.Witness, PrincipalRole.Operator, "blackhole"), Is.EqualTo("refused: Purpose"),
            "a handshake for another purpose");
        Assert.That(await HandshakeAsync(at, ClusterCredentials.Development("operator"), LinkPurpose.Control, PrincipalRole.Operator, "status"), Does.StartWith("proxy: None"),
            "no fault was set; the operator is served");
        Assert.That(await HandshakeAsync(at, ClusterCredentials.Development("operator"), LinkPurpose.Control, PrincipalRole.Operator, "blackhole"), Does.StartWith("proxy: Blackhole"));
    }

    [Test]
    public void The_development_cluster_stays_on_loopback_unless_the_risk_is_named()
    {
        using var witness = EngineProcess.Start("witness", "--listen", $"0.0.0.0:{Ports.Free()}");
        Assert.That(witness.WaitForExit(Wait), Is.EqualTo(2));
        Assert.That(witness.StdErr, Does.Contain("loopback"));
        using var proxy = EngineProcess.Start("proxy", "--listen", $"127.0.0.1:{Ports.Free()}", "--target", $"127.0.0.1:{Ports.Free()}", "--control", $"0.0.0.0:{Ports.Free()}");
        Assert.That(proxy.WaitForExit(Wait), Is.EqualTo(2));
        Assert.That(proxy.StdErr, Does.Contain("loopback"));
    }

    /// <summary>The operator's Authorization header for POST <paramref name="pathAndQuery"/> at <paramref name="host"/>, signed at <paramref name="at"/> (now).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static string Signed(ClusterCredentials who, string host, string pathAndQuery, DateTimeOffset? at = null) =>
        Engine.Replication.AdminAuthorization.Create(who.Self.Name, (at ?? DateTimeOffset.UtcNow).ToUnixTimeMilliseconds(), "POST", host, pathAndQuery, [],
            bytes => who.Sign(Engine.Replication.AdminAuthorization.SigningContext, bytes));

    /// <summary>A well-formed header naming the operator, with a signature that is not its own.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static string Forged(string host) =>
        Engine.Replication.AdminAuthorization.Create("operator", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), "POST", host, "/admin/go-solo", [], _ => new byte[64]);

    private static Task<NodeStatusReport> StatusAsync(HttpClient http, string admin) => NodeStatusReport.GetAsync(http, admin, state: false, CancellationToken.None);

    private static async Task<bool> SoloLeaseAsync(HttpClient http, string admin) => (await StatusAsync(http, admin)).SoloLease!.Value;

    /// <summary>A secure channel to <paramref name="at"/> as <paramref name="who"/>, one line sent, the answer or "refused: REASON".</summary>
    private static async Task<string> HandshakeAsync(IPEndPoint at, ClusterCredentials who, LinkPurpose purpose, PrincipalRole serverRole, string line)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await socket.ConnectAsync(at);
            using SecureChannel channel = await SecureChannel.ConnectAsync(socket, who, purpose, serverRole, timeout: Wait);
            await channel.SendAsync(Encoding.ASCII.GetBytes(line));
            var buffer = new byte[1024];
            using var patience = new CancellationTokenSource(Wait);
            int read = await channel.ReceiveAsync(buffer, patience.Token);
            return read == 0 ? "closed" : Encoding.ASCII.GetString(buffer, 0, read);
        }
        catch (LinkRefusedException e)
        {
            return $"refused: {e.Reason}";
        }
        finally
        {
            socket.Dispose();
        }
    }

    /// <summary>Sends <paramref name="line"/> with no handshake; returns what came back (as Latin-1) until the other side closed or a whole line came back.</summary>
    private static async Task<string> RawAsync(IPEndPoint at, string line)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(at);
        await socket.SendAsync(Encoding.ASCII.GetBytes(line), SocketFlags.None);
        var received = new StringBuilder();
        var buffer = new byte[256];
        using var patience = new CancellationTokenSource(Wait);
        try
        {
            while (await socket.ReceiveAsync(buffer, SocketFlags.None, patience.Token) is int read and > 0)
            {
                received.Append(Encoding.Latin1.GetString(buffer, 0, read));
                if (buffer.AsSpan(0, read).Contains((byte)'\n'))
                {
                    break; // an answer (a server without authentication keeps the connection for more)
                }
            }
        }
        catch (SocketException)
        {
            // Reset: closed all the same.
        }
        return received.ToString();
    }

    private static void WaitForFile(string path, string content, string what)
    {
        var clock = Stopwatch.StartNew();
        string last = "";
        while (clock.Elapsed < Wait)
        {
            try
            {
                last = File.ReadAllText(path);
                if (last == content)
                {
                    return;
                }
            }
            catch (IOException)
            {
                // Not written yet, or being replaced.
            }
            Thread.Sleep(20);
        }
        Assert.Fail($"timed out after {Wait.TotalSeconds} s waiting for {what}; the file says:\n{last}");
    }

}
