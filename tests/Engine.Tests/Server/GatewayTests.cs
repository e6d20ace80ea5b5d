using System.Net;
using System.Net.Sockets;
using Engine.Core.Book;
using Engine.Core.Journaling;
using Engine.Core.Server;
using Engine.Protocol;
using Engine.Tests.Support;

namespace Engine.Tests.Server;

/// <summary>
/// The client port of a node in this process, driven with raw sockets from several loopback
/// addresses (127.0.0.0/8 is all local on Linux): what a connection costs before its logon, the
/// pending-logon limits, and the responder that answers while a node does not serve.
/// </summary>
public class GatewayTests
{
    private TempDirectory _temp = null!;

    [SetUp]
    public void SetUp() => _temp = new TempDirectory("gateway");

    [TearDown]
    public void TearDown() => _temp.Dispose();

    private EngineSettings Settings(GatewaySettings? gateway = null, int logonTimeoutMs = 5000) => new()
    {
        Data = _temp.Sub("node"),
        Listen = "127.0.0.1:0",
        RingSize = 1024,
        OutboundRingSize = 2048,
        LogonTimeoutMs = logonTimeoutMs,
        Gateway = gateway ?? new GatewaySettings(),
    };

    [Test]
    public async Task A_connection_costs_a_few_KiB_until_it_has_logged_on()
    {
        await using EngineNode node = EngineNode.Start(Settings(logonTimeoutMs: 60_000), ReferenceData.Development());
        IPEndPoint port = node.ListenEndPoint;
        using Socket warm = await Connect(port, "127.0.0.2"); // JIT and first-use allocations out of the way
        Until.True(() => node.Status().Gateway!.PendingLogons == 1, "the first connection to be pending");

        const int Connections = 32;
        long before = GC.GetTotalAllocatedBytes(precise: true);
        var idle = new List<Socket>();
        try
        {
            for (int i = 0; i < Connections; i++)
            {
                idle.Add(await Connect(port, $"127.0.{1 + i / 16}.{10 + i % 16}"));
            }
            Until.True(() => node.Status().Gateway!.PendingLogons == Connections + 1, "every connection to be pending");
            long perConnection = (GC.GetTotalAllocatedBytes(precise: true) - before) / Connections;
            TestContext.Out.WriteLine($"{perConnection:N0} bytes allocated per connection before logon (both ends, this process)");
            Assert.That(perConnection, Is.LessThan(64 * 1024), "before its logon a connection gets no session buffers (they are 2 × 4 MiB)");

            // A real client is not bothered by them.
            using Socket client = await Connect(port, "127.0.0.1");
            Assert.That((await Logon(client, 1, "dev-token-1")).Status, Is.EqualTo(LogonStatus.Ok));
        }
        finally
        {
            idle.ForEach(s => s.Dispose());
        }
    }

    [Test]
    public async Task Past_the_pending_limits_the_oldest_goes_first_of_its_own_address_then_of_all()
    {
        var limits = new GatewaySettings { MaxPendingLogons = 6, MaxPendingLogonsPerAddress = 3 };
        await using EngineNode node = EngineNode.Start(Settings(limits, logonTimeoutMs: 120_000), ReferenceData.Development());
        IPEndPoint port = node.ListenEndPoint;
        var a = new List<Socket>();
        var b = new List<Socket>();
        var c = new List<Socket>();
        try
        {
            for (int i = 0; i < 3; i++)
            {
                a.Add(await Connect(port, "127.0.0.2"));
                Until.True(() => node.Status().Gateway!.PendingLogons == a.Count, "a's connection to be pending");
            }
            a.Add(await Connect(port, "127.0.0.2"));
            Until.True(() => IsClosed(a[0]), "a's oldest to be dropped for its fourth");
            for (int i = 0; i < 2; i++)
            {
                b.Add(await Connect(port, "127.0.0.3"));
            }
            c.Add(await Connect(port, "127.0.0.4"));
            Until.True(() => node.Status().Gateway!.PendingLogons == 6, "six pending");
            c.Add(await Connect(port, "127.0.0.4"));
            Until.True(() => IsClosed(a[1]), "the oldest of all (a's second) to be dropped for the seventh");

            GatewayStats stats = node.Status().Gateway!;
            Assert.Multiple(() =>
            {
                Assert.That(stats.PendingEvicted, Is.EqualTo(2));
                Assert.That(stats.PendingLogons, Is.EqualTo(6));
                Assert.That(a.Skip(2).Concat(b).Concat(c).Count(IsClosed), Is.Zero, "nobody else was dropped");
            });
            // The dropped ones left room for a real client, which logs on.
            using Socket client = await Connect(port, "127.0.0.1");
            Assert.That((await Logon(client, 1, "dev-token-1")).Status, Is.EqualTo(LogonStatus.Ok));
        }
        finally
        {
            a.Concat(b).Concat(c).ToList().ForEach(s => s.Dispose());
        }
    }

    [Test]
    public async Task A_node_that_does_not_serve_answers_not_primary_at_once_and_names_the_other_node()
    {
        EngineSettings settings = Settings(new GatewaySettings { PeerListen = "127.0.0.1:7999" });
        using Socket listener = EngineNode.BindClientListener(settings);
        var log = new List<string>();
        await using LogonResponder responder = LogonResponder.Start(listener, settings, line => { lock (log) { log.Add(line); } });

        using Socket client = await Connect((IPEndPoint)listener.LocalEndPoint!, "127.0.0.1");
        LogonAck ack = await Logon(client, 1, "dev-token-1");
        Assert.Multiple(() =>
        {
            Assert.That(ack.Status, Is.EqualTo(LogonStatus.NotPrimary));
            Assert.That(ack.OtherNode, Is.EqualTo(IPEndPoint.Parse("127.0.0.1:7999")));
            Assert.That(responder.Stats().NotPrimary, Is.EqualTo(1));
        });
        Until.True(() => IsClosed(client), "the responder to close after its answer");
    }

    [Test]
    public async Task A_logon_held_by_a_backup_about_to_take_over_is_answered_ok_by_the_node_it_becomes()
    {
        EngineSettings settings = Settings(new GatewaySettings { HoldLogonMs = 60_000 }, logonTimeoutMs: 120_000);
        Socket listener = EngineNode.BindClientListener(settings);
        bool mayServeSoon = true;
        var log = new List<string>();
        await using LogonResponder responder = LogonResponder.Start(listener, settings, line => { lock (log) { log.Add(line); } }, () => Volatile.Read(ref mayServeSoon));
        var port = (IPEndPoint)listener.LocalEndPoint!;

        using Socket held = await Connect(port, "127.0.0.1");
        await held.SendAsync(LogonFrame(2, "dev-token-2"));
        Until.True(() => responder.Stats().PendingLogons == 1, "the logon to be read and held");
        Assert.That(held.Available, Is.Zero, "no answer while held");

        // The takeover: a node started on the same listener takes the port over, held logon included.
        (Journal journal, Exchange exchange, _) = EngineNode.OpenAndRecover(settings, _ => { });
        await using EngineNode node = EngineNode.StartWith(settings, ReferenceData.Development(), _ => { }, journal, exchange, null, journal.Head, journal.Head.Epoch, "primary (took over)", listener);
        Assert.That((await ReadAck(held)).Status, Is.EqualTo(LogonStatus.Ok), "the held logon is answered by the new primary");
        Assert.That(responder.HandedOver, Is.True);
        Assert.That(node.ListenEndPoint, Is.EqualTo(port), "the same port, never closed");

        using Socket later = await Connect(port, "127.0.0.1");
        Assert.That((await Logon(later, 3, "dev-token-3")).Status, Is.EqualTo(LogonStatus.Ok));
        // Counted once the answer is queued: wait for it rather than race it.
        Until.True(() => node.Status().Gateway!.LogonsOk == 2, "both logons counted by the node (the counters carry on across the hand-over)");
    }

    [Test]
    public async Task A_held_logons_token_is_checked_while_held_and_the_node_it_becomes_only_decides()
    {
        EngineSettings settings = Settings(new GatewaySettings { HoldLogonMs = 60_000 }, logonTimeoutMs: 120_000);
        Socket listener = EngineNode.BindClientListener(settings);
        await using LogonResponder responder = LogonResponder.Start(listener, settings, _ => { }, () => true, credentials: ReferenceData.Development());
        var port = (IPEndPoint)listener.LocalEndPoint!;

        using Socket good = await Connect(port, "127.0.0.1");
        using Socket bad = await Connect(port, "127.0.0.1");
        await good.SendAsync(LogonFrame(2, "dev-token-2"));
        await bad.SendAsync(LogonFrame(3, "not-the-token"));
        Until.True(() => responder.Stats().TokensCheckedAhead == 2, "both held logons' tokens to be checked while held");
        Assert.That(good.Available + bad.Available, Is.Zero, "still held: no answer before the takeover");

        (Journal journal, Exchange exchange, _) = EngineNode.OpenAndRecover(settings, _ => { });
        await using EngineNode node = EngineNode.StartWith(settings, ReferenceData.Development(), _ => { }, journal, exchange, null, journal.Head, journal.Head.Epoch, "primary (took over)", listener);
        LogonAck toGood = await ReadAck(good);
        LogonAck toBad = await ReadAck(bad);
        Assert.Multiple(() =>
        {
            Assert.That(toGood.Status, Is.EqualTo(LogonStatus.Ok), "the good token, checked ahead, is let in");
            Assert.That(toBad.Status, Is.EqualTo(LogonStatus.BadCredentials), "the wrong token, checked ahead, is refused");
        });
        Until.True(() => node.Status().Gateway is { LogonsOk: 1, LogonsFailed: 1 }, "the node to count one logon of each");
        Assert.That(node.Status().Gateway!.TokensCheckedAhead, Is.EqualTo(2), "the counters carry on across the hand-over");
    }

    [Test]
    public async Task A_held_logon_is_answered_not_primary_when_the_hold_ends()
    {
        EngineSettings settings = Settings(new GatewaySettings { HoldLogonMs = 100 });
        using Socket listener = EngineNode.BindClientListener(settings);
        await using LogonResponder responder = LogonResponder.Start(listener, settings, _ => { }, () => true);
        using Socket client = await Connect((IPEndPoint)listener.LocalEndPoint!, "127.0.0.1");
        Assert.That((await Logon(client, 1, "dev-token-1")).Status, Is.EqualTo(LogonStatus.NotPrimary));
    }

    private static async Task<Socket> Connect(IPEndPoint port, string from)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        socket.Bind(new IPEndPoint(IPAddress.Parse(from), 0));
        await socket.ConnectAsync(port);
        return socket;
    }

    private static byte[] LogonFrame(uint clientId, string token)
    {
        var frame = new byte[Frame.HeaderBytes + ReplyCodec.LogonBodyBytes];
        ReplyCodec.EncodeLogon(clientId, token, frame);
        return frame;
    }

    private static async Task<LogonAck> Logon(Socket socket, uint clientId, string token)
    {
        await socket.SendAsync(LogonFrame(clientId, token));
        return await ReadAck(socket);
    }

    private static async Task<LogonAck> ReadAck(Socket socket)
    {
        var frame = new byte[Frame.HeaderBytes + ReplyCodec.LogonAckBodyBytes];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        int got = 0;
        while (got < frame.Length)
        {
            int read = await socket.ReceiveAsync(frame.AsMemory(got), SocketFlags.None, timeout.Token);
            Assert.That(read, Is.Not.Zero, "closed before the logon answer");
            got += read;
        }
        Assert.That(ReplyCodec.DecodeLogonAck(frame, out LogonAck ack), Is.EqualTo(RejectReason.None));
        return ack;
    }

    /// <summary>True once the peer has closed: readable with nothing to read (or reset).</summary>
    private static bool IsClosed(Socket socket)
    {
        try
        {
            return socket.Poll(0, SelectMode.SelectRead) && socket.Available == 0;
        }
        catch (SocketException)
        {
            return true;
        }
    }
}
