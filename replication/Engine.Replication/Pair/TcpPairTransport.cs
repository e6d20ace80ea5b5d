using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Engine.Core.Server;
using Engine.Security;

namespace Engine.Replication.Pair;

/// <summary>What a <see cref="TcpPairTransport"/> tells its host (which hands it to its <see cref="PairNode"/> under its lock).</summary>
public interface IPairLinkEvents
{
    void Connected(int connection);

    void Accepted(int connection);

    void Frame(int connection, ReplicationType type, ReadOnlySpan<byte> payload);

    /// <summary>The connection's bytes were corrupt; it is closed, and no <see cref="Closed"/> follows.</summary>
    void Corrupt(int connection, string why);

    void Closed(int connection);
}

/// <summary>
/// The real <see cref="IPairTransport"/>: TCP connections, each a <see cref="SecureChannel"/> between
/// two nodes of the cluster (authenticated, encrypted), carrying <see cref="ReplicationFrame"/>s. It
/// listens on the node's replication endpoint for its whole life (a node that is not primary closes
/// what it is offered) and connects to the peer; every connection has a queue (bounded, see
/// <see cref="MaxQueuedBytes"/>), a writer that sends the whole queue as one record, and a reader
/// that hands every frame to the host.
/// </summary>
/// <remarks>
/// <para>Trust: a connection is a handshake first (up to <see cref="MaxHandshakes"/> at once, each
/// within the channel's timeout, beside the accept loop, which never waits for one), and only a node
/// of the cluster gets further (or an observer, whose link goes to the host's <see cref="ObserverFeed"/>). Nothing a connection sends ends the accept loop: every failure is
/// that connection's, logged (rate-limited per source) and closed.</para>
/// <para><see cref="Send(int, ReadOnlySpan{byte})"/> never blocks on the network: it copies into the
/// queue. A full queue waits for the writer; a writer that makes no progress for
/// <see cref="PairSettings.MaxSendBlockedMs"/> (a peer that authenticated and then never reads) closes
/// that connection, so nothing waits on it for ever.</para>
/// </remarks>
public sealed class TcpPairTransport : IPairTransport, IAsyncDisposable
{
    /// <summary>Bytes queued for one connection and not yet sent, at most: the primary's sealer waits beyond it (back-pressure).</summary>
    public const int MaxQueuedBytes = 16 << 20;

    /// <summary>Handshakes under way at once, at most; a connection past it is closed at once (strangers cannot queue up the real backup).</summary>
    public const int MaxHandshakes = 8;

    /// <summary>The roles that may connect: nodes, and observers when the host serves them (<see cref="ObserverFeed"/>, outside the pair's logic).</summary>
    private static readonly IReadOnlyCollection<PrincipalRole> s_nodes = [PrincipalRole.Node], s_nodesAndObservers = [PrincipalRole.Node, PrincipalRole.Observer];

    private readonly IPEndPoint? _peer;
    private readonly ClusterCredentials _credentials;
    private readonly PairSettings _settings;
    private readonly IPairLinkEvents _events;
    private readonly Action<PairEvent> _say;
    private readonly Func<Task> _readyToConnect;
    private readonly Action<ReplicationLink>? _observers;
    private readonly RefusalLog _refusals;
    private readonly Socket? _listener;
    private readonly ConcurrentDictionary<int, Connection> _connections = new();
    private readonly CancellationTokenSource _stop = new();
    private Task? _acceptLoop;
    private int _nextId;
    private int _handshakes;
    private string? _lastConnectRefusal;

    /// <param name="listen">The replication endpoint (bound now: a port in use fails here), or null.</param>
    /// <param name="peer">The other node's replication endpoint, or null.</param>
    /// <param name="credentials">This node's principal: it proves it to every peer and checks theirs.</param>
    /// <param name="settings">The pair's clocks.</param>
    /// <param name="events">The host.</param>
    /// <param name="say">Where refusals are told.</param>
    /// <param name="readyToConnect">Asked within every <see cref="Connect"/>, and awaited before it connects (the host holds connects back while its journal changes hands).</param>
    /// <param name="observers">Takes every authenticated observer's link (and owns it); null: observers are refused at the handshake.</param>
    public TcpPairTransport(IPEndPoint? listen, IPEndPoint? peer, ClusterCredentials credentials, PairSettings settings, IPairLinkEvents events, Action<PairEvent> say,
        Func<Task> readyToConnect, Action<ReplicationLink>? observers = null)
    {
        _observers = observers;
        _peer = peer;
        _credentials = credentials;
        _settings = settings;
        _events = events;
        _say = say;
        _readyToConnect = readyToConnect;
        _refusals = new RefusalLog(line => say(new PairEvent(PairEventKind.Refused, line)), "replication endpoint");
        _listener = listen is null ? null : Listener.Bind(listen, backlog: 4);
    }

    /// <summary>Connections refused or closed for what they sent, so far (strangers, protocol violations).</summary>
    public long Refusals => _refusals.Count;

    /// <summary>Frames sent whole on the thread that queued them (no writer wake-up), so far.</summary>
    public long InlineSends => Interlocked.Read(ref _inlineSends);

    private long _inlineSends;

    /// <summary>Starts accepting on the replication endpoint.</summary>
    public void Start()
    {
        if (_listener is not null)
        {
            _acceptLoop = Task.Run(AcceptLoop, CancellationToken.None);
        }
    }

    public int Connect()
    {
        int id = Interlocked.Increment(ref _nextId);
        var connection = new Connection(this, id);
        _connections[id] = connection;
        Task ready = _readyToConnect(); // asked now, within the caller's call
        _ = Task.Run(() => ConnectAsync(connection, ready), CancellationToken.None);
        return id;
    }

    public void Send(int connection, ReadOnlySpan<byte> frame)
    {
        if (_connections.TryGetValue(connection, out Connection? c))
        {
            c.Enqueue(frame, default, hasType: false);
        }
    }

    public void Send(int connection, ReplicationType type, ReadOnlySpan<byte> payload)
    {
        if (_connections.TryGetValue(connection, out Connection? c))
        {
            c.Enqueue(payload, type, hasType: true);
        }
    }

    public string PeerName(int connection) => _connections.TryGetValue(connection, out Connection? c) ? c.PeerName : "?";

    /// <summary>Closes <paramref name="connection"/> once what is queued on it is sent (an answer then a close: the answer arrives); nothing more is heard from it.</summary>
    public void Close(int connection)
    {
        if (_connections.TryRemove(connection, out Connection? c))
        {
            c.CloseWhenSent();
        }
    }

    /// <summary>
    /// The connection failed or ended by itself (<paramref name="corrupt"/>: its bytes were corrupt):
    /// gone from the table and, if it was still there (not closed by the node), reported once.
    /// </summary>
    private void Lost(Connection connection, string? corrupt = null)
    {
        if (!_connections.TryRemove(new KeyValuePair<int, Connection>(connection.Id, connection)))
        {
            return;
        }
        connection.Shutdown();
        if (corrupt is null)
        {
            _events.Closed(connection.Id);
        }
        else
        {
            _events.Corrupt(connection.Id, corrupt); // the node resets (or drops) that link
        }
    }

    private async Task ConnectAsync(Connection connection, Task ready)
    {
        try
        {
            await ready.WaitAsync(_stop.Token).ConfigureAwait(false);
            if (_peer is null)
            {
                throw new SocketException((int)SocketError.AddressNotAvailable);
            }
            ReplicationLink link = await ReplicationLink.ConnectAsync(_peer, _credentials, TimeSpan.FromMilliseconds(_settings.SilenceMs), _stop.Token).ConfigureAwait(false);
            Volatile.Write(ref _lastConnectRefusal, null);
            if (!connection.Attach(link))
            {
                return; // closed meanwhile
            }
            _events.Connected(connection.Id);
            connection.Run();
        }
        catch (LinkRefusedException e)
        {
            // Not a node of our cluster there, or it will not have us: said once, then retried quietly
            // (the operator may be fixing the other side's files).
            if (Interlocked.Exchange(ref _lastConnectRefusal, e.Message) != e.Message)
            {
                _say(new PairEvent(PairEventKind.Refused, $"the replication endpoint at {_peer} did not authenticate: {e.Message}; retrying"));
            }
            Lost(connection);
        }
        catch (Exception e) when (e is SocketException or IOException or OperationCanceledException or ObjectDisposedException or InvalidDataException)
        {
            Lost(connection); // nobody there (yet), no answer in time, or stopping
        }
    }

    private Task AcceptLoop() => Listener.AcceptAllAsync(_listener!, socket =>
    {
        if (Interlocked.Increment(ref _handshakes) > MaxHandshakes)
        {
            Interlocked.Decrement(ref _handshakes);
            _refusals.Refused(RemoteOf(socket), $"busy: {MaxHandshakes} handshakes under way");
            socket.Dispose();
            return Task.CompletedTask;
        }
        _ = Task.Run(() => AcceptAsync(socket), CancellationToken.None);
        return Task.CompletedTask;
    }, _stop.Token);

    /// <summary>One inbound connection: the handshake, then the host hears of it. Whatever goes wrong stays with this connection.</summary>
    private async Task AcceptAsync(Socket socket)
    {
        EndPoint? remote = RemoteOf(socket);
        try
        {
            AcceptOutcome outcome;
            try
            {
                outcome = await SecureChannel.AcceptAsync(socket, _credentials, LinkPurpose.Replication, _observers is null ? s_nodes : s_nodesAndObservers, cancel: _stop.Token).ConfigureAwait(false);
            }
            finally
            {
                Interlocked.Decrement(ref _handshakes);
            }
            if (!outcome.Accepted)
            {
                _refusals.Refused(remote, outcome.Refusal!.Detail);
                socket.Dispose();
                return;
            }
            // A connecting node sends hellos, acks and heartbeats, in records of one frame each (an observer
            // less: where it starts): small buffers suffice, and a bigger record is a violation that closes the link.
            var link = new ReplicationLink(outcome.Channel!, ReplicationFrame.HeaderBytes + ReplicationFrame.HelloBytes, 4096);
            if (link.Peer.Role == PrincipalRole.Observer)
            {
                _observers!(link); // never the pair's: it is not counted, and nothing it does reaches the node
                return;
            }
            int id = Interlocked.Increment(ref _nextId);
            var connection = new Connection(this, id);
            connection.Attach(link);
            if (_stop.IsCancellationRequested)
            {
                connection.Shutdown();
                return;
            }
            _connections[id] = connection;
            _events.Accepted(id);
            connection.Run();
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            socket.Dispose();
        }
#pragma warning disable CA1031 // One connection's failure, whatever it is, must never stop the endpoint or reach another connection.
        catch (Exception e)
#pragma warning restore CA1031
        {
            _refusals.Refused(remote, $"closed: {e.GetType().Name}: {e.Message}");
            socket.Dispose();
        }
    }

    private static EndPoint? RemoteOf(Socket socket)
    {
        try
        {
            return socket.RemoteEndPoint;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return null;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener?.Dispose();
        foreach (int id in _connections.Keys)
        {
            Close(id);
        }
        if (_acceptLoop is not null)
        {
            await _acceptLoop.ConfigureAwait(false);
        }
        _stop.Dispose();
    }

    /// <summary>One connection: its link, its queue and writer, its reader.</summary>
#pragma warning disable CA1001 // Its semaphore never makes a wait handle (nothing to release); the writer may still be waiting on it when the connection is shut down.
    private sealed class Connection(TcpPairTransport transport, int id)
    {
        private readonly object _queueLock = new();
        private readonly SemaphoreSlim _sendWanted = new(0, int.MaxValue);
        private ReplicationLink? _link;
        private byte[] _queued = new byte[64 << 10];
        private byte[] _sending = new byte[64 << 10];
        private int _queuedLength;
        private volatile bool _closed;
        private bool _closing; // under _queueLock: close once the queue is sent
        private bool _writing; // under _queueLock: the writer holds a batch it has not finished sending
        private long _sendingSince; // Environment.TickCount64 when the send under way started; 0: none

        public int Id { get; } = id;

        public string PeerName => Volatile.Read(ref _link)?.Peer.Name ?? "?";

        /// <summary>The link is up: false (and the link closed) if this connection was closed meanwhile.</summary>
        public bool Attach(ReplicationLink link)
        {
            lock (_queueLock)
            {
                if (!_closed)
                {
                    _link = link;
                    return true;
                }
            }
            link.Dispose();
            return false;
        }

        /// <summary>Starts the reader, the writer and the send watchdog.</summary>
        public void Run()
        {
            _ = Task.Run(ReadLoop, CancellationToken.None);
            _ = Task.Run(WriteLoop, CancellationToken.None);
            _ = Task.Run(Watchdog, CancellationToken.None);
        }

        /// <summary>Queues a frame (the host, under its lock): <paramref name="hasType"/>: a header of <paramref name="type"/> around <paramref name="bytes"/>, else <paramref name="bytes"/> is whole frames.</summary>
        public void Enqueue(ReadOnlySpan<byte> bytes, ReplicationType type, bool hasType)
        {
            int length = bytes.Length + (hasType ? ReplicationFrame.HeaderBytes : 0);
            lock (_queueLock)
            {
                while (!_closed && _queuedLength + length > _queued.Length)
                {
                    if (_queued.Length < MaxQueuedBytes)
                    {
                        // Grown (rarely: a catch-up, a burst), never shrunk; the writer's buffer follows at its next swap.
                        int size = _queued.Length;
                        while (size < _queuedLength + length && size < MaxQueuedBytes)
                        {
                            size *= 2;
                        }
                        byte[] grown = new byte[Math.Min(size, MaxQueuedBytes)];
                        _queued.AsSpan(0, _queuedLength).CopyTo(grown);
                        _queued = grown;
                        continue;
                    }
                    Monitor.Wait(_queueLock, 10); // the writer empties it (or the watchdog closes a link that takes nothing)
                }
                if (_closed)
                {
                    return;
                }
                if (hasType)
                {
                    ReplicationFrame.Write(_queued.AsSpan(_queuedLength), type, bytes);
                }
                else
                {
                    bytes.CopyTo(_queued.AsSpan(_queuedLength));
                }
                _queuedLength += length;
                if (_queuedLength == length && !_writing && !_closing && _link is { } link)
                {
                    // Nothing queued or being sent before this frame: send it on this thread, without a writer's wake-up.
                    SendNow sent = link.TrySendNow(_queued.AsSpan(0, _queuedLength));
                    if (sent != SendNow.NotNow)
                    {
                        _queuedLength = 0;
                        if (sent == SendNow.Sent)
                        {
                            Interlocked.Increment(ref transport._inlineSends);
                            return;
                        }
                    }
                }
            }
            _sendWanted.Release(); // the writer sends the queue (or, after a partial send now, flushes the rest)
        }

        /// <summary>Sends the whole queue at a time: one record (one AEAD operation) per batch of frames.</summary>
        private async Task WriteLoop()
        {
            try
            {
                while (!_closed)
                {
                    await _sendWanted.WaitAsync().ConfigureAwait(false);
                    int length;
                    lock (_queueLock)
                    {
                        (_queued, _sending) = (_sending, _queued);
                        if (_queued.Length < _sending.Length)
                        {
                            _queued = new byte[_sending.Length];
                        }
                        length = _queuedLength;
                        _queuedLength = 0;
                        _writing = length > 0;
                        Monitor.PulseAll(_queueLock);
                    }
                    if (_closed)
                    {
                        continue;
                    }
                    Volatile.Write(ref _sendingSince, Environment.TickCount64);
                    // Nothing queued: woken for what is left of a record sent in part on the enqueuer's thread (if anything).
                    if (length == 0)
                    {
                        await _link!.FlushAsync(CancellationToken.None).ConfigureAwait(false);
                    }
                    else
                    {
                        await _link!.SendAsync(_sending.AsMemory(0, length), CancellationToken.None).ConfigureAwait(false);
                    }
                    Volatile.Write(ref _sendingSince, 0);
                    bool sentAll;
                    lock (_queueLock)
                    {
                        _writing = false;
                        sentAll = _closing && _queuedLength == 0;
                    }
                    if (sentAll)
                    {
                        Shutdown();
                    }
                }
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException)
            {
                transport.Lost(this);
            }
        }

        private async Task ReadLoop()
        {
            try
            {
                while (!_closed)
                {
                    (ReplicationType Type, ReadOnlyMemory<byte> Payload)? frame = await _link!.ReadAsync(CancellationToken.None).ConfigureAwait(false);
                    if (frame is null)
                    {
                        break;
                    }
                    if (Volatile.Read(ref _closing))
                    {
                        continue; // closed by the node: nothing more is heard from it
                    }
                    transport._events.Frame(Id, frame.Value.Type, frame.Value.Payload.Span);
                }
                transport.Lost(this);
            }
            catch (InvalidDataException e)
            {
                transport.Lost(this, corrupt: e.Message);
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException or OperationCanceledException)
            {
                transport.Lost(this);
            }
        }

        private async Task Watchdog()
        {
            int blockedMs = transport._settings.MaxSendBlockedMs;
            while (!_closed)
            {
                await Task.Delay(Math.Max(10, transport._settings.HeartbeatMs / 2)).ConfigureAwait(false);
                long since = Volatile.Read(ref _sendingSince);
                if (since != 0 && Environment.TickCount64 - since > blockedMs)
                {
                    transport._say(new PairEvent(PairEventKind.LinkIncident, $"the peer has taken nothing for {blockedMs} ms (it does not read): closing the link"));
                    transport.Lost(this);
                    return;
                }
            }
        }

        /// <summary>The writer closes the link once the queue is sent (at once if it is empty or the link never came up).</summary>
        public void CloseWhenSent()
        {
            lock (_queueLock)
            {
                _closing = true;
                if ((_queuedLength > 0 || _writing) && _link is not null && !_closed)
                {
                    _sendWanted.Release();
                    return;
                }
            }
            Shutdown();
        }

        /// <summary>Closes the link; the reader and writer end. Idempotent.</summary>
        public void Shutdown()
        {
            lock (_queueLock)
            {
                if (_closed)
                {
                    return;
                }
                _closed = true;
                Monitor.PulseAll(_queueLock);
            }
            _link?.Dispose();
            _sendWanted.Release();
        }
    }
#pragma warning restore CA1001
}
