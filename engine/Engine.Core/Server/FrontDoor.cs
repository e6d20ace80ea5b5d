using System.Net;
using System.Net.Sockets;
using System.Security.Authentication;
using Engine.Protocol;

namespace Engine.Core.Server;

/// <summary>Decides what a connection whose logon frame has been read gets: a session, a refusal, or (held) a decision later.</summary>
internal interface ILogonAnswerer
{
    /// <summary>
    /// <paramref name="logon"/>'s frame is read and well-formed (a Logon, right size). The answerer
    /// calls <see cref="FrontDoor.TryTake"/> before it answers (false: the door already ended it),
    /// or sets <see cref="PendingLogon.Held"/> and returns, and is asked again at the door's next tick.
    /// Runs on a socket completion thread: nothing slow here.
    /// </summary>
    void OnLogon(FrontDoor door, PendingLogon logon);
}

/// <summary>
/// The client port up to the logon: accepts, keeps unauthenticated connections cheap and bounded,
/// reads each one's logon frame (after the TLS handshake, on a TLS port) and hands it to the
/// current <see cref="ILogonAnswerer"/>: the <see cref="Gateway"/> of a serving node, or a
/// <see cref="LogonResponder"/> while the node does not serve. At a takeover the answerer changes and
/// the door, its listening socket, its accept loop and every connection in it stay as they are.
/// </summary>
/// <remarks>
/// <para>What one unauthenticated connection may cost, whatever it does: a socket and about 1 KiB
/// (<see cref="PendingLogon"/>), for at most <see cref="EngineSettings.LogonTimeoutMs"/>. At most
/// <see cref="GatewaySettings.MaxPendingLogons"/> of them (and
/// <see cref="GatewaySettings.MaxPendingLogonsPerAddress"/> per address) exist: a new one past a
/// limit closes the oldest (of its address, for the per-address limit). Failed logons are counted
/// per address (<see cref="LogonThrottle"/>); an address past the limit is refused right after the
/// accept, before anything is read. Every event is counted (<see cref="GatewayCounters"/>) and
/// logged through an <see cref="EventDigest"/>, so a flood writes a few lines a second.</para>
/// <para>Time: one timer tick every <see cref="TickMs"/> closes what timed out, asks the answerer
/// again about held logons, and once a second writes the digest's summary lines.</para>
/// </remarks>
internal sealed class FrontDoor : IAsyncDisposable
{
    public const int TickMs = 50;

    private readonly EngineSettings _settings;
    private readonly GatewaySettings _limits;
    private readonly Action<string> _log;
    private readonly object _lock = new();
    private readonly LinkedList<PendingLogon> _pending = new();
    private readonly Dictionary<IPAddress, int> _pendingByAddress = [];
    private readonly CancellationTokenSource _stopAccepting = new();
    private readonly Timer _ticker;
    private volatile ILogonAnswerer? _answerer;
    private Task? _acceptLoop;
    private long _lastFlushMs;
    private long _lastExpireMs;
    private int _disposed;

    public FrontDoor(Socket listener, EngineSettings settings, Action<string> log)
    {
        Listener = listener;
        LocalEndPoint = (IPEndPoint)listener.LocalEndPoint!;
        _settings = settings;
        _limits = settings.Gateway;
        _log = log;
        Tls = GatewayTls.From(_limits);
        OtherNode = _limits.PeerListen.Length > 0 ? EngineSettings.ParseEndpoint(_limits.PeerListen, "--peer-listen") : null;
        Digest = new EventDigest(log, Counters);
        Throttle = new LogonThrottle(_limits);
        _lastFlushMs = _lastExpireMs = Now;
        _ticker = new Timer(_ => SafeTick(), null, TickMs, TickMs);
    }

    public Socket Listener { get; }

    public IPEndPoint LocalEndPoint { get; }

    public GatewayCounters Counters { get; } = new();

    public EventDigest Digest { get; }

    public LogonThrottle Throttle { get; }

    public GatewayTls? Tls { get; }

    /// <summary>The other node's client endpoint, named in "not primary" answers (from <see cref="GatewaySettings.PeerListen"/>).</summary>
    public IPEndPoint? OtherNode { get; }

    public GatewaySettings Limits => _limits;

    /// <summary>Milliseconds of the door's clock (monotonic).</summary>
    public static long Now => Environment.TickCount64;

    public int PendingCount
    {
        get
        {
            lock (_lock)
            {
                return _pending.Count;
            }
        }
    }

    public GatewayStats Stats() => Counters.Snapshot(PendingCount, Throttle.Blocked(Now));

    /// <summary>Starts accepting, logons going to <paramref name="answerer"/>.</summary>
    public void Start(ILogonAnswerer answerer)
    {
        _answerer = answerer;
        _acceptLoop = Server.Listener.AcceptAllAsync(Listener, socket =>
        {
            try
            {
                OnAccepted(socket);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                socket.Dispose(); // reset while we looked at it: the accept loop goes on
            }
            return Task.CompletedTask;
        }, _stopAccepting.Token);
    }

    /// <summary>
    /// From now on logons go to <paramref name="answerer"/>; the logons the old one was holding are
    /// offered to it at once. The listener and the accept loop carry on untouched.
    /// </summary>
    public void HandOver(ILogonAnswerer answerer)
    {
        _answerer = answerer;
        OfferHeld(answerer);
    }

    /// <summary>Stops accepting (the listener stays bound and listening: connections wait in its backlog).</summary>
    public async Task StopAcceptingAsync()
    {
        await _stopAccepting.CancelAsync().ConfigureAwait(false);
        if (_acceptLoop is not null)
        {
            await _acceptLoop.ConfigureAwait(false);
        }
    }

    /// <summary>Takes <paramref name="logon"/> out of the door to answer it; false when the door already ended it (timeout, eviction, shutdown).</summary>
    public bool TryTake(PendingLogon logon)
    {
        if (!logon.TryFinish())
        {
            return false;
        }
        Remove(logon);
        return true;
    }

    /// <summary>Answers "not primary" (naming the other node if known) and closes; after <see cref="TryTake"/>.</summary>
    public void AnswerNotPrimary(PendingLogon logon, string why)
    {
        Interlocked.Increment(ref Counters.NotPrimary);
        Digest.Report(GatewayEvent.NotPrimary, logon.Address, $"logon of client {logon.ClientId} from {logon.Remote}: not primary ({why}){(OtherNode is null ? "" : $", sent to {OtherNode}")}");
        _ = logon.AnswerAndCloseAsync(new LogonAck { ClientId = logon.ClientId, Status = LogonStatus.NotPrimary, OtherNode = OtherNode });
    }

    /// <summary>A logon refused for its credentials: counted against its address; after <see cref="TryTake"/>.</summary>
    public void AnswerBadCredentials(PendingLogon logon)
    {
        Interlocked.Increment(ref Counters.LogonsFailed);
        Digest.Report(GatewayEvent.LogonFailed, logon.Address, $"logon refused for client {logon.ClientId} from {logon.Remote} (unknown client or wrong token)");
        CountFailure(logon.Address);
        _ = logon.AnswerAndCloseAsync(new LogonAck { ClientId = logon.ClientId, Status = LogonStatus.BadCredentials });
    }

    /// <summary>A logon with good credentials of a client the ledger does not have enabled; after <see cref="TryTake"/>.</summary>
    public void AnswerClientDisabled(PendingLogon logon, string why)
    {
        Interlocked.Increment(ref Counters.LogonsFailed);
        Digest.Report(GatewayEvent.LogonFailed, logon.Address, $"logon refused for client {logon.ClientId} from {logon.Remote}: {why}");
        _ = logon.AnswerAndCloseAsync(new LogonAck { ClientId = logon.ClientId, Status = LogonStatus.ClientDisabled });
    }

    public void AnswerUnavailable(PendingLogon logon, string why)
    {
        Interlocked.Increment(ref Counters.Unavailable);
        Digest.Report(GatewayEvent.Unavailable, logon.Address, $"logon of client {logon.ClientId} from {logon.Remote} refused: {why}");
        _ = logon.AnswerAndCloseAsync(new LogonAck { ClientId = logon.ClientId, Status = LogonStatus.Unavailable });
    }

    /// <summary>A logon that succeeded: its address's failure count starts again.</summary>
    public void LoggedOn(PendingLogon logon, string message)
    {
        Interlocked.Increment(ref Counters.LogonsOk);
        Throttle.Succeeded(logon.Address);
        Digest.Report(GatewayEvent.LoggedOn, logon.Address, message);
    }

    private void OnAccepted(Socket socket)
    {
        Interlocked.Increment(ref Counters.Accepted);
        long now = Now;
        IPAddress address = socket.RemoteEndPoint is IPEndPoint remote
            ? remote.Address.IsIPv4MappedToIPv6 ? remote.Address.MapToIPv4() : remote.Address
            : IPAddress.None;
        if (Volatile.Read(ref _disposed) != 0)
        {
            socket.Dispose();
            return;
        }
        if (Throttle.IsBlocked(address, now))
        {
            Refuse(socket, address);
            return;
        }
        // Plaintext: non-blocking, for the direct send of a refusal now and of replies once logged
        // on. TLS goes through a NetworkStream, which wants a blocking socket (it never blocks on it:
        // every operation on it is asynchronous).
        socket.Blocking = Tls is not null;
        var logon = new PendingLogon(socket, address, now);
        List<PendingLogon>? evicted = Add(logon);
        foreach (PendingLogon old in evicted ?? [])
        {
            bool sameAddress = old.Address.Equals(address);
            End(old, GatewayEvent.Evicted, ref Counters.PendingEvicted,
                $"dropped a connection from {old.Remote} that had not logged on after {now - old.AcceptedMs} ms: " +
                (sameAddress ? $"{_limits.MaxPendingLogonsPerAddress} pending from that address" : $"{_limits.MaxPendingLogons} pending logons"),
                failure: sameAddress);
        }
        _ = ReadLogonAsync(logon);
    }

    /// <summary>Refuses a connection from a throttled address: a plaintext port says why (one non-blocking send), then closes.</summary>
    private void Refuse(Socket socket, IPAddress address)
    {
        Interlocked.Increment(ref Counters.RefusedThrottled);
        Digest.Report(GatewayEvent.Refused, address, $"refused a connection from {address}: too many failed logons lately");
        try
        {
            if (Tls is null)
            {
                Span<byte> frame = stackalloc byte[Frame.HeaderBytes + ReplyCodec.LogonAckBodyBytes];
                var ack = new LogonAck { Status = LogonStatus.Throttled };
                ReplyCodec.EncodeLogonAck(in ack, frame);
                socket.Blocking = false;
                socket.Send(frame, SocketFlags.None, out _);
                socket.Shutdown(SocketShutdown.Send);
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }
        socket.Dispose();
    }

    private async Task ReadLogonAsync(PendingLogon logon)
    {
        try
        {
            if (Tls is not null && !await HandshakeAsync(logon).ConfigureAwait(false))
            {
                return;
            }
            while (true)
            {
                Memory<byte> free = logon.Buffer.AsMemory(logon.Filled);
                int read = logon.Tls is null
                    ? await logon.Socket.ReceiveAsync(free, SocketFlags.None).ConfigureAwait(false)
                    : await logon.Tls.ReadAsync(free).ConfigureAwait(false);
                if (read == 0)
                {
                    if (logon.Filled > 0)
                    {
                        Violation(logon, $"protocol violation: closed after {logon.Filled} bytes, no complete logon");
                    }
                    else
                    {
                        // Not counted against the address: a port probe or a health check looks like this.
                        End(logon, GatewayEvent.ClosedBeforeLogon, ref Counters.ClosedBeforeLogon, $"a connection from {logon.Remote} closed before a logon", failure: false);
                    }
                    return;
                }
                logon.Filled += read;
                if (logon.Filled >= 4 && Frame.PeekLength(logon.Buffer) != PendingLogon.LogonFrameBytes)
                {
                    Violation(logon, $"protocol violation: a first frame of {Frame.PeekLength(logon.Buffer)} bytes (the first frame must be a {PendingLogon.LogonFrameBytes}-byte logon)");
                    return;
                }
                if (logon.Filled >= PendingLogon.LogonFrameBytes)
                {
                    break;
                }
            }
            ReadOnlySpan<byte> frame = logon.Buffer.AsSpan(0, PendingLogon.LogonFrameBytes);
            RejectReason reason = Frame.Check(frame, out MessageType type, out ReadOnlySpan<byte> body);
            if (reason != RejectReason.None || type != MessageType.Logon || body.Length != ReplyCodec.LogonBodyBytes)
            {
                Violation(logon, $"protocol violation: the first frame must be a well-formed logon ({(reason != RejectReason.None ? reason : type)})");
                return;
            }
            logon.LogonReadMs = Now;
            _answerer?.OnLogon(this, logon);
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException or AuthenticationException or InvalidOperationException)
        {
            if (!logon.IsFinished)
            {
                End(logon, GatewayEvent.ClosedBeforeLogon, ref Counters.ClosedBeforeLogon, $"a connection from {logon.Remote} failed before a logon: {e.Message}", failure: false);
            }
        }
    }

    /// <summary>The TLS handshake; a plaintext client on a TLS port (its first byte is not a TLS handshake record) is told so in plaintext. False when the connection ended.</summary>
    private async Task<bool> HandshakeAsync(PendingLogon logon)
    {
        int peeked = await logon.Socket.ReceiveAsync(logon.Buffer.AsMemory(0, 1), SocketFlags.Peek).ConfigureAwait(false);
        if (peeked == 0)
        {
            End(logon, GatewayEvent.ClosedBeforeLogon, ref Counters.ClosedBeforeLogon, $"a connection from {logon.Remote} closed before a logon", failure: false);
            return false;
        }
        const byte TlsHandshakeRecord = 0x16;
        if (logon.Buffer[0] != TlsHandshakeRecord)
        {
            if (TryTake(logon))
            {
                Interlocked.Increment(ref Counters.TlsFailures);
                Digest.Report(GatewayEvent.TlsFailed, logon.Address, $"a plaintext connection from {logon.Remote} on a TLS port: answered \"TLS required\" and closed");
                CountFailure(logon.Address);
                await logon.AnswerAndCloseAsync(new LogonAck { Status = LogonStatus.TlsRequired }).ConfigureAwait(false);
            }
            return false;
        }
        logon.TlsTransport = new PreLogonStream(logon.Socket);
        logon.Tls = new System.Net.Security.SslStream(logon.TlsTransport, leaveInnerStreamOpen: false);
        try
        {
            await logon.Tls.AuthenticateAsServerAsync(Tls!.ServerOptions, CancellationToken.None).ConfigureAwait(false);
            return true;
        }
        catch (Exception e) when (e is AuthenticationException or IOException)
        {
            if (!logon.IsFinished)
            {
                End(logon, GatewayEvent.TlsFailed, ref Counters.TlsFailures, $"TLS handshake with {logon.Remote} failed: {e.Message}", failure: true);
            }
            return false;
        }
    }

    private void Violation(PendingLogon logon, string message) =>
        End(logon, GatewayEvent.ProtocolViolation, ref Counters.ProtocolViolations, $"connection from {logon.Remote}: {message}", failure: true);

    /// <summary>Ends a pending logon the door decided about: closed, counted, logged (digested), and as a failure of its address if <paramref name="failure"/>.</summary>
    private void End(PendingLogon logon, GatewayEvent kind, ref long counter, string message, bool failure)
    {
        if (!TryTake(logon))
        {
            return;
        }
        Interlocked.Increment(ref counter); // counted before the close, so whoever sees the close sees the count
        logon.Close();
        Digest.Report(kind, logon.Address, message);
        if (failure)
        {
            CountFailure(logon.Address);
        }
    }

    private void CountFailure(IPAddress address)
    {
        if (Throttle.Failed(address, Now))
        {
            Digest.Report(GatewayEvent.Refused, address,
                $"{address} failed {_limits.FailedLogonLimit} logons within {_limits.FailedLogonWindowMs} ms: refusing its connections for {_limits.FailedLogonBlockMs} ms");
        }
    }

    /// <summary>Adds to the age-ordered set; returns what must be evicted to respect the limits (not yet ended).</summary>
    private List<PendingLogon>? Add(PendingLogon logon)
    {
        List<PendingLogon>? evicted = null;
        lock (_lock)
        {
            _pendingByAddress.TryGetValue(logon.Address, out int fromAddress);
            if (fromAddress >= _limits.MaxPendingLogonsPerAddress)
            {
                // The oldest of this address: a scan, bounded by MaxPendingLogons, only when one address is at its limit.
                for (LinkedListNode<PendingLogon>? node = _pending.First; node is not null; node = node.Next)
                {
                    if (node.Value.Address.Equals(logon.Address))
                    {
                        (evicted ??= []).Add(node.Value);
                        RemoveLocked(node.Value);
                        break;
                    }
                }
            }
            else if (_pending.Count >= _limits.MaxPendingLogons && _pending.First is { } oldest)
            {
                (evicted ??= []).Add(oldest.Value);
                RemoveLocked(oldest.Value);
            }
            logon.Node = _pending.AddLast(logon);
            _pendingByAddress[logon.Address] = _pendingByAddress.GetValueOrDefault(logon.Address) + 1;
            AssertInvariants();
        }
        return evicted;
    }

    private void Remove(PendingLogon logon)
    {
        lock (_lock)
        {
            RemoveLocked(logon);
        }
    }

    private void RemoveLocked(PendingLogon logon)
    {
        if (logon.Node is null)
        {
            return;
        }
        _pending.Remove(logon.Node);
        logon.Node = null;
        int left = _pendingByAddress[logon.Address] - 1;
        if (left == 0)
        {
            _pendingByAddress.Remove(logon.Address);
        }
        else
        {
            _pendingByAddress[logon.Address] = left;
        }
    }

    [System.Diagnostics.Conditional("DEBUG")]
    private void AssertInvariants()
    {
        // The set respects its bounds, and the per-address counts add up to it.
        System.Diagnostics.Debug.Assert(_pending.Count <= _limits.MaxPendingLogons, "no more pending logons than the limit");
        System.Diagnostics.Debug.Assert(_pendingByAddress.Values.Sum() == _pending.Count, "per-address counts sum to the set");
    }

    /// <summary>A timer callback must not throw (it would end the process): whatever a tick hits is logged, and the next tick runs.</summary>
    private void SafeTick()
    {
        try
        {
            Tick(Now);
        }
        catch (Exception e)
        {
            _log($"client port: a housekeeping tick failed: {e}");
        }
    }

    private void Tick(long now)
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            return;
        }
        List<PendingLogon>? expired = null;
        List<PendingLogon>? held = null;
        lock (_lock)
        {
            for (LinkedListNode<PendingLogon>? node = _pending.First; node is not null; node = node.Next)
            {
                PendingLogon logon = node.Value;
                if (now - logon.AcceptedMs >= _settings.LogonTimeoutMs)
                {
                    (expired ??= []).Add(logon);
                }
                else if (logon.Held)
                {
                    (held ??= []).Add(logon);
                }
            }
        }
        foreach (PendingLogon logon in expired ?? [])
        {
            // A connection whose logon was read but not yet decided (waiting for the token check) is
            // not its client's fault: it is not counted against the address.
            End(logon, GatewayEvent.LogonTimeout, ref Counters.LogonTimeouts,
                logon.LogonReadMs == 0 ? $"no logon from {logon.Remote} within {_settings.LogonTimeoutMs} ms" : $"the logon from {logon.Remote} was not decided within {_settings.LogonTimeoutMs} ms",
                failure: logon.LogonReadMs == 0);
        }
        if (held is not null && _answerer is { } answerer)
        {
            foreach (PendingLogon logon in held)
            {
                logon.Held = false;
                answerer.OnLogon(this, logon);
            }
        }
        if (now - _lastFlushMs >= 1000)
        {
            _lastFlushMs = now;
            Digest.Flush(now);
        }
        if (now - _lastExpireMs >= 10_000)
        {
            _lastExpireMs = now;
            Throttle.Expire(now);
        }
    }

    private void OfferHeld(ILogonAnswerer answerer)
    {
        List<PendingLogon> held;
        lock (_lock)
        {
            held = [.. _pending.Where(p => p.Held)];
        }
        foreach (PendingLogon logon in held)
        {
            logon.Held = false;
            answerer.OnLogon(this, logon);
        }
    }

    /// <summary>Closes the listener (nobody will take connections on it any more).</summary>
    public void CloseListener() => Listener.Close();

    /// <summary>Stops accepting, the timer, and closes every connection that has not logged on. The listener is the owner's to close.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        await StopAcceptingAsync().ConfigureAwait(false);
        await _ticker.DisposeAsync().ConfigureAwait(false);
        List<PendingLogon> left;
        lock (_lock)
        {
            left = [.. _pending];
        }
        foreach (PendingLogon logon in left)
        {
            if (TryTake(logon))
            {
                logon.Close();
            }
        }
        Digest.Flush(Now);
        _stopAccepting.Dispose();
    }
}
