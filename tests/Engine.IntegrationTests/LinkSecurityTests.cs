using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Engine.Cli;
using Engine.Client;
using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.IntegrationTests.Support;
using Engine.Protocol;
using Engine.Replication;
using Engine.Security;

namespace Engine.IntegrationTests;

/// <summary>
/// The replication endpoint of a real primary against an attacker on the network: strangers are
/// refused and get nothing, a backup that lies about its acks is cut off, and no input stops the
/// endpoint from serving the real backup. Each test runs a pair with a cluster made by
/// <c>engine cluster init</c> (node-a primary, node-b backup); the attacker works in-process.
/// </summary>
public class LinkSecurityTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    [Test]
    public async Task Strangers_are_refused_get_no_block_and_the_pair_stays_whole()
    {
        using var pair = SecurePair.Start();
        pair.StartBackup();
        pair.Primary.WaitForEvent(PairEventKind.BackupInStep, "the pair to be in step", Wait);
        // Both sides' events of the first attach, before the marks: the backup raises its catching_up
        // when the primary's answer arrives, which can be after the primary's backup_in_step.
        pair.Backup!.WaitForEvent(PairEventKind.InStep, "the backup to be in step", Wait);
        int primaryMark = pair.Primary.EventCount, backupMark = pair.Backup.EventCount;

        // 1. Today's protocol in plaintext: a Hello with the genesis block, as any process could send.
        BlockBuilder.Genesis(ClusterId.Development, 1, 0, out ChainHead genesis);
        using (var plain = new TcpClient())
        {
            await plain.ConnectAsync(pair.ReplicationEndPoint);
            await plain.GetStream().WriteAsync(ReplicationFrame.Hello(ReplicationType.Hello, 0, in genesis));
            byte[] got = await ReadUntilClosedAsync(plain.Client);
            Assert.That(got.Length, Is.LessThanOrEqualTo(4), $"a plaintext hello got {got.Length} bytes back (a hello answer, blocks?), and no close");
        }

        // 2. The right names and roles, but the keys of another cluster.
        string other = Path.Combine(pair.Root, "other-cluster");
        SecurePair.InitCluster(other);
        ClusterCredentials foreign = ClusterCredentials.Load(Path.Combine(other, "cluster.json"), Path.Combine(other, "node-b.key"));
        var refused = Assert.ThrowsAsync<LinkRefusedException>(() => ReplicationLink.ConnectAsync(pair.ReplicationEndPoint, foreign, Wait, CancellationToken.None));
        Assert.That((refused!.Reason, refused.ByPeer), Is.EqualTo((RefusalReason.WrongCluster, true)), refused.Message);

        // 3. A member of this cluster, but an observer: served as an observer only, never as a backup: a
        // backup's Hello is refused (no hello answer, no block) and the link closed.
        using (ReplicationLink observer = await ReplicationLink.ConnectAsync(pair.ReplicationEndPoint, pair.Key("observer"), Wait, CancellationToken.None))
        {
            await observer.SendAsync(ReplicationFrame.Hello(ReplicationType.Hello, 0, in genesis), CancellationToken.None);
            using var answer = new CancellationTokenSource(Wait);
            (ReplicationType Type, ReadOnlyMemory<byte> Payload)? frame = await observer.ReadAsync(answer.Token);
            Assert.That(frame?.Type, Is.EqualTo(ReplicationType.ObserveRefused), "an observer's hello is refused");
            Assert.That(await observer.ReadAsync(answer.Token), Is.Null, "and the link closed");
        }
        // 4. The witness's key: not a node, not an observer.
        refused = Assert.ThrowsAsync<LinkRefusedException>(() => ReplicationLink.ConnectAsync(pair.ReplicationEndPoint, pair.Key("witness"), Wait, CancellationToken.None));
        Assert.That((refused!.Reason, refused.ByPeer), Is.EqualTo((RefusalReason.RoleNotAllowed, true)), refused.Message);

        // The pair is whole: the real backup was never displaced, and orders are acknowledged.
        NodeStatusReport status = await AdminStatus.GetAsync(pair.PrimaryAdmin);
        Assert.That(status.BackupInStep, Is.True, status.ToString());
        await using (EngineClient client = await pair.ConnectClientAsync(1))
        {
            SubmitResult result = await client.SubmitAsync(Order(1)).WaitAsync(Wait);
            Assert.That(result.Accepted, Is.True, result.ToString());
        }
        Assert.Multiple(() =>
        {
            Assert.That(pair.Primary.HasEvent(PairEventKind.BackupLost, since: primaryMark), Is.False);
            Assert.That(pair.Primary.HasEvent(PairEventKind.BackupInStep, since: primaryMark), Is.False, "nobody else attached");
            Assert.That(pair.Primary.EventsOf(PairEventKind.Refused, since: primaryMark).Select(e => e.Text), Has.Some.Contains("replication endpoint: refused"), "the refusals are logged");
            Assert.That(pair.Backup.HasEvent(PairEventKind.CatchingUp, since: backupMark), Is.False, "the real backup kept its link");
        });
    }

    /// <param name="lie">huge: block 2^64-1; unsent: the block after the last one sent; wrong-hash: the block just sent, with another hash.</param>
    [TestCase("huge")]
    [TestCase("unsent")]
    [TestCase("wrong-hash")]
    public async Task A_backup_that_acknowledges_what_it_was_not_sent_is_cut_off_and_nothing_is_acknowledged_on_its_word(string lie)
    {
        using var pair = SecurePair.Start();
        ChainHead head = pair.PrimaryHead();

        // An authenticated backup (node-b's own key: a compromised or buggy node), in this process.
        using var fake = new FakeBackup(await ReplicationLink.ConnectAsync(pair.ReplicationEndPoint, pair.Key("node-b"), Wait, CancellationToken.None));
        fake.Hello(head);
        (ReplicationType Type, byte[] Payload) frame = await fake.NextAsync(t => t == ReplicationType.HelloAck);
        Assert.That(frame.Payload[0], Is.Zero, "the fake's head is on the primary's chain");
        await fake.NextAsync(t => t == ReplicationType.CaughtUp);
        pair.Primary.WaitForEvent(PairEventKind.BackupInStep, "the fake backup to be in step", Wait);

        await using EngineClient client = await pair.ConnectClientAsync(1, answerTimeout: Wait);
        Task<SubmitResult> order = client.SubmitAsync(Order(1));
        frame = await fake.NextOrderBlockAsync();
        BlockFormat.TryReadHeader(frame.Payload, out BlockHeader header);
        Hash32 hash = BlockFormat.StoredHash(frame.Payload, in header);
        var ack = new byte[ReplicationFrame.HeaderBytes + ReplicationFrame.AckBytes];
        switch (lie)
        {
            case "huge":
                ReplicationFrame.WriteAck(ack, ReplicationType.Ack, ulong.MaxValue, default);
                break;
            case "unsent":
                ReplicationFrame.WriteAck(ack, ReplicationType.Ack, header.BlockNo + 1, in hash);
                break;
            default:
                Hash32 other = hash;
                other[0] ^= 0xFF;
                ReplicationFrame.WriteAck(ack, ReplicationType.Ack, header.BlockNo, in other);
                break;
        }
        await fake.Link.SendAsync(ack, CancellationToken.None);

        PairEvent incident = pair.Primary.WaitForEvent(PairEventKind.LinkIncident, "the primary to see the false ack", Wait);
        PairEvent lost = pair.Primary.WaitForEvent(PairEventKind.BackupLost, "the primary to reset the link", Wait);
        Assert.That(incident.Text, Does.Contain("INCIDENT: backup node-b acknowledged"));
        Assert.That(lost.Text, Does.Contain("lost the backup (a false acknowledgement"));
        Assert.That(order.IsCompleted, Is.False, $"the order was answered on a false ack: {(order.IsCompletedSuccessfully ? order.Result.ToString() : order.Exception?.Message)}");
        Assert.That(await fake.Closed.WaitAsync(Wait), Is.False, "the fake's link was closed, and no block came after the false ack but the one it lied about");
        NodeStatusReport status = await AdminStatus.GetAsync(pair.PrimaryAdmin);
        Assert.That(status.BackupInStep, Is.False, status.ToString());

        // The real backup: it receives the block, really acknowledges it, and only then is the order accepted.
        pair.StartBackup();
        SubmitResult result = await order.WaitAsync(Wait);
        Assert.That(result.Accepted, Is.True, result.ToString());
        PairEvent inStep = pair.Backup!.WaitForEvent(PairEventKind.InStep, "the real backup to be in step", Wait);
        Assert.That(inStep.Text, Does.Contain("in step with the primary node-a"));
    }

    /// <summary>
    /// A client that reconnects while its order waits at the ack gate of a primary that lost its backup
    /// resends it. The resend used to be refused `NoBackup` at the door, a final answer: the client took
    /// the order for rejected while the ledger accepted it once a backup was back. Now it waits behind its
    /// original and gets the original's outcome.
    /// </summary>
    [Test]
    public async Task A_resend_of_an_order_waiting_at_the_ack_gate_gets_its_outcome_not_no_backup()
    {
        using var pair = SecurePair.Start();
        ChainHead head = pair.PrimaryHead();
        var fake = new FakeBackup(await ReplicationLink.ConnectAsync(pair.ReplicationEndPoint, pair.Key("node-b"), Wait, CancellationToken.None));
        try
        {
            fake.Hello(head);
            await fake.NextAsync(t => t == ReplicationType.CaughtUp);
            pair.Primary.WaitForEvent(PairEventKind.BackupInStep, "the fake backup to be in step", Wait);

            // A short answer timeout: the client gives the connection up while its order waits, and resends it.
            await using EngineClient client = await pair.ConnectClientAsync(1, answerTimeout: TimeSpan.FromMilliseconds(300));
            int reconnects = 0;
            client.Reconnected += (_, _) => Interlocked.Increment(ref reconnects);
            Task<SubmitResult> order = client.SubmitAsync(Order(1));
            await fake.NextOrderBlockAsync();
            fake.Dispose(); // the backup goes, the block unacknowledged: the order waits at the gate
            pair.Primary.WaitForEvent(PairEventKind.BackupLost, "the primary to lose its backup", Wait);

            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (Volatile.Read(ref reconnects) < 2 && !order.IsCompleted)
            {
                Assert.That(clock.Elapsed, Is.LessThan(Wait), "the client to reconnect and resend, twice");
                await Task.Delay(5);
            }
            Assert.That(order.IsCompleted, Is.False, $"the resend was answered while its original waits: {(order.IsCompletedSuccessfully ? order.Result.ToString() : order.Exception?.Message)}");

            pair.StartBackup();
            SubmitResult result = await order.WaitAsync(Wait);
            Assert.That(result.Accepted, Is.True, result.ToString());
        }
        finally
        {
            fake.Dispose();
        }
    }

    [Test]
    public async Task Garbage_half_handshakes_and_malformed_hellos_leave_the_endpoint_serving_the_real_backup()
    {
        using var pair = SecurePair.Start();
        pair.StartBackup();
        pair.Primary.WaitForEvent(PairEventKind.BackupInStep, "the pair to be in step", Wait);
        int mark = pair.Primary.EventCount;

        // Garbage, and a handshake that stops after its first message: closed by the primary.
        using (var garbage = new TcpClient())
        {
            await garbage.ConnectAsync(pair.ReplicationEndPoint);
            var bytes = new byte[300];
            new Random(20261202).NextBytes(bytes);
            await garbage.GetStream().WriteAsync(bytes);
            Assert.That((await ReadUntilClosedAsync(garbage.Client)).Length, Is.LessThanOrEqualTo(4), "garbage is answered with a refusal at most");
        }
        byte[] clientHello = await ClientHelloAsync(pair.Key("node-b"));
        using (var half = new TcpClient())
        {
            await half.ConnectAsync(pair.ReplicationEndPoint);
            await half.GetStream().WriteAsync(clientHello); // and never the finish: the handshake times out
            await ReadUntilClosedAsync(half.Client);
        }

        // Authenticated, then: an empty hello, a short one, an unknown frame type, a truncated frame.
        var empty = new byte[ReplicationFrame.HeaderBytes];
        ReplicationFrame.Write(empty, ReplicationType.Hello, []);
        var shortHello = new byte[ReplicationFrame.HeaderBytes + 10];
        ReplicationFrame.Write(shortHello, ReplicationType.Hello, new byte[10]);
        var unknown = new byte[ReplicationFrame.HeaderBytes + 4];
        ReplicationFrame.Write(unknown, (ReplicationType)99, new byte[4]);
        BlockBuilder.Genesis(ClusterId.Development, 1, 0, out ChainHead genesis);
        byte[] truncated = ReplicationFrame.Hello(ReplicationType.Hello, 0, in genesis)[..40];
        foreach (byte[] bad in new[] { empty, shortHello, unknown, truncated })
        {
            using ReplicationLink link = await ReplicationLink.ConnectAsync(pair.ReplicationEndPoint, pair.Key("node-b"), Wait, CancellationToken.None);
            await link.SendAsync(bad, CancellationToken.None);
            if (bad == truncated)
            {
                link.Dispose(); // the rest never comes
                continue;
            }
            Assert.That(await ReadToEndAsync(link), Is.True, $"a connection that sent a bad {bad.Length}-byte frame is closed");
        }

        // The real backup still has its link, and a restarted one attaches again: the endpoint serves on.
        Assert.That(pair.Primary.HasEvent(PairEventKind.BackupLost, since: mark), Is.False);
        pair.Backup!.KillHard();
        pair.Primary.WaitForEvent(PairEventKind.BackupLost, "the primary to notice the killed backup", Wait, since: mark);
        pair.StartBackup();
        pair.Primary.WaitForEvent(PairEventKind.BackupInStep, "the restarted backup to attach", Wait, since: mark);
        await using (EngineClient client = await pair.ConnectClientAsync(1))
        {
            SubmitResult result = await client.SubmitAsync(Order(1)).WaitAsync(Wait);
            Assert.That(result.Accepted, Is.True, result.ToString());
        }
        List<string> refusals = [.. pair.Primary.EventsOf(PairEventKind.Refused, since: mark).Select(e => e.Text)];
        Assert.Multiple(() =>
        {
            Assert.That(refusals, Has.Some.Contains("replication endpoint: refused 127.0.0.1:"));
            Assert.That(refusals, Has.Some.Contains("did not finish the handshake"), "the half handshake, by timeout");
        });
    }

    private static Transaction Order(ulong id) => Transaction.NewOrder(0, 0, 1, 1, id, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 990, 1);

    /// <summary>Reads what the other end sends until it closes (at most a minute); returns it all.</summary>
    private static async Task<byte[]> ReadUntilClosedAsync(Socket socket)
    {
        var received = new List<byte>();
        var buffer = new byte[64 << 10];
        using var deadline = new CancellationTokenSource(Wait);
        try
        {
            while (true)
            {
                int n = await socket.ReceiveAsync(buffer, SocketFlags.None, deadline.Token);
                if (n == 0)
                {
                    return [.. received];
                }
                received.AddRange(buffer.AsSpan(0, n).ToArray());
            }
        }
        catch (SocketException)
        {
            return [.. received]; // reset: closed too
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"the connection stayed open for {Wait.TotalSeconds} s after {received.Count} bytes");
            throw;
        }
    }

    /// <summary>True once the primary closed the link (it may send heartbeats first, never blocks here).</summary>
    private static async Task<bool> ReadToEndAsync(ReplicationLink link)
    {
        using var deadline = new CancellationTokenSource(Wait);
        try
        {
            while (await link.ReadAsync(deadline.Token) is { } frame)
            {
                Assert.That(frame.Type, Is.Not.EqualTo(ReplicationType.Block).And.Not.EqualTo(ReplicationType.CatchUpBatch), "no block after the refusal");
            }
            return true;
        }
        catch (Exception e) when (e is IOException or InvalidDataException)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>
    /// An authenticated backup in this process that behaves until told otherwise: it sends a heartbeat
    /// every 50 ms from a thread of its own and echoes the primary's (so the silence rule does not drop
    /// it while the test is busy, on a busy machine), and queues every other frame for <see cref="NextAsync"/>.
    /// </summary>
    private sealed class FakeBackup : IDisposable
    {
        private readonly System.Threading.Channels.Channel<(ReplicationType Type, byte[] Payload)> _frames =
            System.Threading.Channels.Channel.CreateUnbounded<(ReplicationType, byte[])>();

        private readonly Thread _heartbeats;
        private volatile bool _stopped;

        public FakeBackup(ReplicationLink link)
        {
            Link = link;
            Closed = Task.Run(ReadAll);
            _heartbeats = new Thread(() =>
            {
                var heartbeat = new byte[ReplicationFrame.HeaderBytes];
                ReplicationFrame.Write(heartbeat, ReplicationType.Heartbeat, []);
                try
                {
                    while (!_stopped)
                    {
                        Link.Send(heartbeat);
                        Thread.Sleep(new PairSettings().HeartbeatMs);
                    }
                }
                catch (IOException)
                {
                    // Closed.
                }
            }) { IsBackground = true, Name = "fake backup heartbeats" };
        }

        /// <summary>Says hello with <paramref name="head"/>, then heartbeats every 50 ms.</summary>
        public void Hello(ChainHead head)
        {
            Link.Send(ReplicationFrame.Hello(ReplicationType.Hello, 0, in head));
            _heartbeats.Start();
        }

        public ReplicationLink Link { get; }

        /// <summary>Completes when the primary closes the link: true if a block or batch came after the last <see cref="NextAsync"/> for one.</summary>
        public Task<bool> Closed { get; }

        /// <summary>
        /// The next block that carries transactions: a block with none, which only carries the records root of
        /// earlier ones (sealed whenever a root is ready on an idle ledger), is passed over.
        /// </summary>
        public async Task<(ReplicationType Type, byte[] Payload)> NextOrderBlockAsync()
        {
            while (true)
            {
                (ReplicationType Type, byte[] Payload) frame = await NextAsync(t => t == ReplicationType.Block);
                if (BlockFormat.TryReadHeader(frame.Payload, out BlockHeader header) is null && header.Count > 0)
                {
                    return frame;
                }
            }
        }

        public async Task<(ReplicationType Type, byte[] Payload)> NextAsync(Func<ReplicationType, bool> wanted)
        {
            using var deadline = new CancellationTokenSource(Wait);
            while (true)
            {
                (ReplicationType Type, byte[] Payload) frame;
                try
                {
                    frame = await _frames.Reader.ReadAsync(deadline.Token);
                }
                catch (System.Threading.Channels.ChannelClosedException)
                {
                    Assert.Fail("the primary closed the link");
                    throw;
                }
                if (wanted(frame.Type))
                {
                    return frame;
                }
            }
        }

        private async Task<bool> ReadAll()
        {
            var heartbeat = new byte[ReplicationFrame.HeaderBytes];
            ReplicationFrame.Write(heartbeat, ReplicationType.Heartbeat, []);
            try
            {
                while (await Link.ReadAsync(CancellationToken.None) is { } frame)
                {
                    if (frame.Type == ReplicationType.Heartbeat)
                    {
                        await Link.SendAsync(heartbeat, CancellationToken.None);
                        continue;
                    }
                    _frames.Writer.TryWrite((frame.Type, frame.Payload.ToArray()));
                }
            }
            catch (Exception e) when (e is IOException or InvalidDataException or ObjectDisposedException)
            {
                // Closed by the primary.
            }
            _frames.Writer.TryComplete();
            bool blocksUnread = false;
            while (_frames.Reader.TryRead(out var left))
            {
                blocksUnread |= left.Type is ReplicationType.Block or ReplicationType.CatchUpBatch;
            }
            return blocksUnread;
        }

        public void Dispose()
        {
            _stopped = true;
            Link.Dispose();
            if (_heartbeats.IsAlive)
            {
                _heartbeats.Join();
            }
        }
    }

    /// <summary>The first message of a real handshake by <paramref name="self"/> (taken from a client talking to a listener of ours that never answers).</summary>
    private static async Task<byte[]> ClientHelloAsync(ClusterCredentials self)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(listener.LocalEndpoint);
        Task<SecureChannel> client = SecureChannel.ConnectAsync(socket, self, LinkPurpose.Replication, PrincipalRole.Node, TimeSpan.FromSeconds(30));
        using Socket server = await listener.AcceptSocketAsync();
        var header = new byte[2];
        Assert.That(await server.ReceiveAsync(header, SocketFlags.None), Is.EqualTo(2));
        var hello = new byte[2 + BinaryPrimitives.ReadUInt16LittleEndian(header)];
        header.CopyTo(hello, 0);
        int got = 2;
        while (got < hello.Length)
        {
            got += await server.ReceiveAsync(hello.AsMemory(got), SocketFlags.None);
        }
        server.Dispose();
        Assert.ThrowsAsync<LinkRefusedException>(() => client);
        return hello;
    }

    /// <summary>A cluster made by <c>engine cluster init</c>, a primary (node-a) with an admin endpoint and, on demand, its backup (node-b).</summary>
    private sealed class SecurePair : IDisposable
    {
        private readonly List<EngineProcess> _processes = [];
        private readonly int _primaryPort = Ports.Free();
        private readonly int _backupPort = Ports.Free();
        private readonly int _replication = Ports.Free();
        private readonly int _backupReplication = Ports.Free();

        private SecurePair()
        {
            InitCluster(Cluster);
        }

        public string Root { get; } = Path.Combine(Path.GetTempPath(), $"linksec-{Guid.NewGuid():N}");

        public string Cluster => Path.Combine(Root, "cluster");

        public string PrimaryAdmin { get; } = $"127.0.0.1:{Ports.Free()}";

        public IPEndPoint ReplicationEndPoint => new(IPAddress.Loopback, _replication);

        public EngineProcess Primary { get; private set; } = null!;

        public EngineProcess? Backup { get; private set; }

        /// <param name="withWitness">Also a witness (the cluster's): the primary takes its solo lease from it.</param>
        public static SecurePair Start(bool withWitness = false)
        {
            var pair = new SecurePair();
            try
            {
                if (withWitness)
                {
                    pair.StartWitness();
                }
                pair.StartPrimary();
                return pair;
            }
            catch
            {
                pair.Dispose();
                throw;
            }
        }

        public static void InitCluster(string directory)
        {
            using EngineProcess init = EngineProcess.Start("cluster", "init", directory);
            Assert.That(init.WaitForExit(Wait), Is.Zero, init.StdErr);
        }

        public ClusterCredentials Key(string name) => ClusterCredentials.Load(Path.Combine(Cluster, "cluster.json"), Path.Combine(Cluster, $"{name}.key"));

        /// <summary>The primary's chain head, read from its journal while it is stopped (then it starts again).</summary>
        public ChainHead PrimaryHead()
        {
            Assert.That(Primary.Terminate(Wait), Is.Zero);
            ChainHead head = default;
            using (JournalReader reader = JournalReader.Open(Path.Combine(Root, "a", "journal")))
            {
                reader.Scan((entry, _) =>
                {
                    BlockFormat.TryReadHeader(entry, out BlockHeader header);
                    head = new ChainHead(header.Epoch, header.BlockNo, 0, BlockFormat.StoredHash(entry, in header));
                    return true;
                });
            }
            StartPrimary();
            return head;
        }

        public void StartBackup()
        {
            Backup = EngineProcess.Start("serve", "--role", "backup", "--data", Path.Combine(Root, "b"), "--listen", $"127.0.0.1:{_backupPort}",
                "--peer", $"127.0.0.1:{_replication}", "--replication-listen", $"127.0.0.1:{_backupReplication}",
                "--cluster", Path.Combine(Cluster, "cluster.json"), "--key", Path.Combine(Cluster, "node-b.key"));
            _processes.Add(Backup);
        }

        public Task<EngineClient> ConnectClientAsync(uint client, TimeSpan? answerTimeout = null)
        {
            var options = new ClientOptions
            {
                Endpoints = [$"127.0.0.1:{_primaryPort}"],
                ClientId = client,
                Token = $"dev-token-{client}",
                AnswerTimeout = answerTimeout ?? TimeSpan.FromSeconds(2),
            };
            // A client told to wait that long for its answer (an order held at the ack gate) does not leave
            // a quiet primary sooner either (a test host starved under CI load once took 1 s of its own delay
            // for the engine's silence): a reconnect's resend would be answered NoBackup.
            return EngineClient.ConnectAsync(answerTimeout is { } wait ? options with { SilenceTimeout = wait } : options);
        }

        private int? _witnessPort;

        private void StartWitness()
        {
            _witnessPort = Ports.Free();
            EngineProcess witness = EngineProcess.Start("witness", "--listen", $"127.0.0.1:{_witnessPort}",
                "--cluster", Path.Combine(Cluster, "cluster.json"), "--key", Path.Combine(Cluster, "witness.key"));
            _processes.Add(witness);
            witness.WaitForOutput(o => o.Contains("listening", StringComparison.Ordinal), "the witness to start", Wait);
        }

        private void StartPrimary()
        {
            string[] witness = _witnessPort is { } port ? ["--witness", $"127.0.0.1:{port}"] : [];
            Primary = EngineProcess.Start(["serve", "--role", "primary", "--data", Path.Combine(Root, "a"), "--listen", $"127.0.0.1:{_primaryPort}",
                "--replication-listen", $"127.0.0.1:{_replication}", "--admin", PrimaryAdmin,
                "--cluster", Path.Combine(Cluster, "cluster.json"), "--key", Path.Combine(Cluster, "node-a.key"), .. witness]);
            _processes.Add(Primary);
            Primary.WaitForEvent(PairEventKind.PrimaryStarted, "the primary to start", Wait);
        }


        public void Dispose()
        {
            foreach (EngineProcess process in _processes)
            {
                if (TestContext.CurrentContext.Result.Outcome.Status == NUnit.Framework.Interfaces.TestStatus.Failed)
                {
                    TestContext.Out.WriteLine($"--- an engine process:\n{process.LogText}");
                }
                process.Dispose();
            }
            if (Directory.Exists(Root))
            {
                Directory.Delete(Root, recursive: true);
            }
        }
    }
}
