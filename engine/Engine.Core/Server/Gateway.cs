using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Engine.Core.Book;
using Engine.Core.Ledger;
using Engine.Core.Ring;
using Engine.Protocol;

namespace Engine.Core.Server;

/// <summary>
/// The TCP front door of a serving node: the <see cref="FrontDoor"/> brings each connection to its
/// logon; the gateway checks the credentials, makes a <see cref="Session"/> for each client that
/// logs on (up to <see cref="EngineSettings.MaxSessions"/>), and stops them on shutdown.
/// </summary>
/// <remarks>
/// Token checks cost a slow hash (<see cref="TokenHash"/>): they run on the thread pool, one at a
/// time (<see cref="_tokenChecks"/>), so logons never take more than one core from the pipeline
/// and a socket completion thread never waits for one. A logon waiting for its check stays in the
/// door's bounded set, under its timeout, so a flood of logons queues at most that many checks.
/// </remarks>
internal sealed class Gateway : IAsyncDisposable, ILogonAnswerer
{
    private readonly EngineSettings _settings;
    private readonly FrontDoor _door;
    private readonly ConcurrentDictionary<long, (Session Session, Task Run)> _sessions = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly Action<string> _log;
    private readonly Func<ulong> _lastLsn;
    private readonly Func<ReferenceView> _ledger;
    private readonly SemaphoreSlim _tokenChecks = new(1, 1);
    private readonly ArrayPool<byte> _buffers;
    private readonly bool _doorTakenOver;
    private long _nextSessionId;
    private long _busy;
    private volatile string? _redirecting;

    /// <summary>The client listener and its sessions.</summary>
    /// <remarks><paramref name="reference"/> is this node's configuration (the clients' credentials); <paramref name="ledger"/> the ledger's reference data as last published (which clients are enabled).</remarks>
    public Gateway(EngineSettings settings, RingBuffer<TxSlot> ring, ClientRegistry clients, ReferenceData reference, Func<ReferenceView> ledger, ClientSeqTable clientSeqs,
        Func<ulong> lastLsn, Action<string> log, Socket? listener = null)
    {
        _ledger = ledger;
        _settings = settings;
        Ring = ring;
        Clients = clients;
        Reference = reference;
        ClientSeqs = clientSeqs;
        _lastLsn = lastLsn;
        _log = log;
        // Outbound buffers of sessions that ended, kept for the next (a client that reconnects): at
        // most 16 of each size, so what the pool keeps stays bounded.
        _buffers = ArrayPool<byte>.Create(maxArrayLength: Math.Max(settings.MaxOutboundBytesPerSession, 64 * 1024), maxArraysPerBucket: 16);
        // A listener a LogonResponder answers on (a backup's, bound ahead of time) is taken over with
        // its door: connections in it, held logons, counters and failed-logon counts carry on.
        FrontDoor? taken = listener is null ? null : LogonResponder.TakeOver(listener);
        _doorTakenOver = taken is not null;
        _door = taken ?? new FrontDoor(listener ?? BindListener(settings), settings, log);
        LocalEndPoint = _door.LocalEndPoint;
    }

    /// <summary>
    /// Binds and listens on <see cref="EngineSettings.Listen"/>. A backup does this at start-up and
    /// hands the socket over at takeover: clients that fail over meanwhile are already connected
    /// and are answered the moment the new primary takes them (see <see cref="LogonResponder"/>).
    /// </summary>
    public static Socket BindListener(EngineSettings settings) =>
        Listener.Bind(EngineSettings.ParseEndpoint(settings.Listen, nameof(settings.Listen)), backlog: 512);

    public RingBuffer<TxSlot> Ring { get; }

    public ClientRegistry Clients { get; }

    public ReferenceData Reference { get; }

    public ClientSeqTable ClientSeqs { get; }

    public IPEndPoint LocalEndPoint { get; }

    public ulong Epoch { get; set; } = 1;

    /// <summary>The backup, in a pair: while it is not connected, requests are answered "no backup".</summary>
    public IBlockMirror? Mirror { get; init; }

    /// <summary>Where clients' proof requests go; null on a node that signs no heads (they are refused).</summary>
    public ProofDesk? Proofs { get; init; }

    public ulong LastLsn => _lastLsn();

    public int SessionCount => _sessions.Count;

    public long BusyReplies => Interlocked.Read(ref _busy);

    /// <summary>The client port's counters (shared with the responder that ran the port before, if any).</summary>
    public GatewayStats Stats() => _door.Stats();

    public void Start()
    {
        if (_settings.Gateway.HeartbeatMs > 0)
        {
            // Its own thread, above the others: a busy pipeline or thread pool must not delay the
            // heartbeats that tell clients this node is alive (a late one makes them fail over).
            new Thread(SendHeartbeats) { IsBackground = true, Name = "client-heartbeats", Priority = ThreadPriority.AboveNormal }.Start();
        }
        if (_doorTakenOver)
        {
            _door.HandOver(this);
        }
        else
        {
            _door.Start(this);
        }
    }

    public void Log(string message) => _log(message);

    /// <summary>Every <see cref="GatewaySettings.HeartbeatMs"/>, a heartbeat to each session that gets them and was sent nothing for its interval, until the gateway stops.</summary>
    private void SendHeartbeats()
    {
        WaitHandle stopping = _stopping.Token.WaitHandle;
        try
        {
            while (!stopping.WaitOne(_settings.Gateway.HeartbeatMs))
            {
                long now = System.Diagnostics.Stopwatch.GetTimestamp();
                // The dictionary itself, not .Values (a copy of every entry, 50 times a second).
                foreach (KeyValuePair<long, (Session Session, Task Run)> entry in _sessions)
                {
                    entry.Value.Session.HeartbeatIfIdle(now);
                }
            }
        }
        catch (ObjectDisposedException)
        {
            // The gateway was disposed: done.
        }
    }

    public void CountBusy(int count) => Interlocked.Add(ref _busy, count);

    /// <summary>While set, why clients are sent to the other node: logons are answered "not primary".</summary>
    public string? Redirecting => _redirecting;

    /// <summary>
    /// Sends every client to the other node (closes the sessions; logons are answered "not primary"
    /// until <paramref name="reason"/> is null again): a primary that can acknowledge nothing, while
    /// the other node may have taken over. The pipeline runs on; clients resend what was unanswered.
    /// </summary>
    public void Redirect(string? reason)
    {
        _redirecting = reason;
        if (reason is not null)
        {
            foreach (var (session, _) in _sessions.Values)
            {
                session.Close($"sent to the other node: {reason}");
            }
        }
    }

    public void OnClosed(Session session)
    {
        _sessions.TryRemove(session.Id, out _);
        Interlocked.Increment(ref _door.Counters.SessionsClosed);
        _door.Digest.Report(GatewayEvent.SessionClosed, session.Address, $"session {session.Id} (client {session.ClientId}) closed: {session.CloseReason}");
    }

    void ILogonAnswerer.OnLogon(FrontDoor door, PendingLogon logon)
    {
        if (_redirecting is { } reason)
        {
            if (door.TryTake(logon))
            {
                door.AnswerNotPrimary(logon, reason);
            }
            return;
        }
        if (Clients[logon.ClientId] is null)
        {
            // No token to check: refused at once, without the slow hash.
            if (door.TryTake(logon))
            {
                door.AnswerBadCredentials(logon);
            }
            return;
        }
        if (logon.TokenVerdict is { } checkedAhead)
        {
            // Held by the backup this node was, and checked while held: decided here, with no slow hash and no hop to the pool.
            logon.WipeToken();
            if (door.TryTake(logon))
            {
                Decide(door, logon, checkedAhead);
            }
            return;
        }
        _ = CheckTokenAsync(door, logon);
    }

    private async Task CheckTokenAsync(FrontDoor door, PendingLogon logon)
    {
        // Forced onto the thread pool: this may be a socket completion thread, and the check is slow.
        await _tokenChecks.WaitAsync().ConfigureAwait(ConfigureAwaitOptions.ForceYielding);
        bool ok;
        try
        {
            if (logon.IsFinished)
            {
                return; // timed out or pushed out while it waited
            }
            ok = logon.TokenVerdict ?? Reference.Authenticate(logon.ClientId, logon.Token);
        }
        finally
        {
            _tokenChecks.Release();
        }
        logon.WipeToken();
        if (door.TryTake(logon))
        {
            Decide(door, logon, ok);
        }
    }

    /// <summary>Answers a logon whose token was checked (<paramref name="ok"/>), after <see cref="FrontDoor.TryTake"/>: refused, or a session opened.</summary>
    private void Decide(FrontDoor door, PendingLogon logon, bool ok)
    {
        if (!ok)
        {
            door.AnswerBadCredentials(logon);
            return;
        }
        if (!_ledger().Clients.TryGetValue(logon.ClientId, out ClientGrants? grants) || !grants.Enabled)
        {
            door.AnswerClientDisabled(logon, grants is null ? "not a client in the ledger" : "disabled in the ledger");
            return;
        }
        if (_redirecting is { } reason)
        {
            door.AnswerNotPrimary(logon, reason);
            return;
        }
        if (_stopping.IsCancellationRequested)
        {
            door.AnswerUnavailable(logon, "the engine is stopping");
            return;
        }
        if (_sessions.Count >= _settings.MaxSessions)
        {
            door.AnswerUnavailable(logon, $"{_settings.MaxSessions} sessions already");
            return;
        }
        Open(door, logon, Clients[logon.ClientId]!);
    }

    /// <summary>Makes the session: its buffers now, the "ok" first in them, then the client's replies routed to it.</summary>
    private void Open(FrontDoor door, PendingLogon logon, ClientRegistry.Entry entry)
    {
        uint clientId = logon.ClientId;
        var session = new Session(Interlocked.Increment(ref _nextSessionId), logon, entry, this, _settings, _buffers);
        var ack = new LogonAck
        {
            ClientId = clientId,
            Status = LogonStatus.Ok,
            LastClientSeq = ClientSeqs.Highest(clientId),
            Epoch = Epoch,
            LastLsn = LastLsn,
        };
        Span<byte> reply = stackalloc byte[ReplyCodec.MaxFrameBytes];
        // The answer goes in before the session is the client's: no reply to an earlier request can overtake it.
        int length = ReplyCodec.EncodeLogonAck(in ack, reply);
        if (session.HeartbeatMs > 0)
        {
            // A heartbeat right behind it, for a client that asked: it knows from the start that this engine
            // heartbeats, so it judges the session by its silence at once (a node frozen right after a logon included).
            length += ReplyCodec.EncodeHeartbeat(reply[length..]);
        }
        session.Enqueue(reply[..length]);
        _sessions[session.Id] = (session, Task.Run(() => session.Run(_stopping.Token)));
        if (session.IsClosed)
        {
            _sessions.TryRemove(session.Id, out _); // closed before it was listed (its OnClosed found nothing to remove)
            return;
        }
        Session? replaced = entry.Attach(session);
        replaced?.Close($"client {clientId} logged on again from {session.Remote}");
        door.LoggedOn(logon, $"session {session.Id} from {session.Remote}: client {clientId} logged on (last seq {ack.LastClientSeq}){(logon.Tls is null ? "" : " over TLS")}");
    }

    /// <summary>Stops accepting and reading; sessions stay open so queued replies can still be sent.</summary>
    public async Task StopAcceptingAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _door.StopAcceptingAsync().ConfigureAwait(false);
        _door.CloseListener();
    }

    public async ValueTask DisposeAsync()
    {
        await StopAcceptingAsync().ConfigureAwait(false);
        await _door.DisposeAsync().ConfigureAwait(false);
        // Give each session a moment to send what is queued for it, then close it.
        long deadline = Environment.TickCount64 + 2000;
        while (_sessions.Values.Any(s => !s.Session.IsClosed && !s.Session.IsFlushed) && Environment.TickCount64 < deadline)
        {
            await Task.Delay(5).ConfigureAwait(false);
        }
        foreach (var (session, _) in _sessions.Values)
        {
            session.Close("the engine stopped");
        }
        await Task.WhenAll(_sessions.Values.Select(s => s.Run)).WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        _stopping.Dispose();
    }
}
