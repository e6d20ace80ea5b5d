using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Engine.Core.Book;
using Engine.Core.Ledger;
using Engine.Core.Ring;

namespace Engine.Core.Server;

/// <summary>
/// The TCP front door: accepts connections up to <see cref="EngineSettings.MaxSessions"/>, runs a
/// <see cref="Session"/> for each, and stops them on shutdown.
/// </summary>
internal sealed class Gateway : IAsyncDisposable
{
    private readonly EngineSettings _settings;
    private readonly Socket _listener;
    private readonly ConcurrentDictionary<long, (Session Session, Task Run)> _sessions = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly Action<string> _log;
    private readonly Func<ulong> _lastLsn;
    private Task? _acceptLoop;
    private long _nextSessionId;
    private long _busy;
    private volatile string? _redirecting;

    public Gateway(EngineSettings settings, RingBuffer<TxSlot> ring, ClientRegistry clients, ReferenceData reference, ClientSeqTable clientSeqs,
        Func<ulong> lastLsn, Action<string> log, Socket? listener = null)
    {
        _settings = settings;
        Ring = ring;
        Clients = clients;
        Reference = reference;
        ClientSeqs = clientSeqs;
        _lastLsn = lastLsn;
        _log = log;
        _listener = listener ?? BindListener(settings);
        LocalEndPoint = (IPEndPoint)_listener.LocalEndPoint!;
    }

    /// <summary>
    /// Binds and listens on <see cref="EngineSettings.Listen"/>. A backup does this at start-up and
    /// hands the socket over at takeover: clients that fail over meanwhile are already connected
    /// (in the kernel's backlog) and are answered the moment the new primary accepts.
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

    public ulong LastLsn => _lastLsn();

    public int SessionCount => _sessions.Count;

    public long BusyReplies => Interlocked.Read(ref _busy);

    public void Start() => _acceptLoop = AcceptLoop();

    public void Log(string message) => _log(message);

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
        _log($"session {session.Id} (client {session.ClientId}) closed: {session.CloseReason}");
    }

    private Task AcceptLoop() => Listener.AcceptAllAsync(_listener, socket =>
    {
        if (_sessions.Count >= _settings.MaxSessions)
        {
            _log($"refused a connection from {socket.RemoteEndPoint}: {_settings.MaxSessions} sessions already");
            socket.Close();
            return Task.CompletedTask;
        }
        var session = new Session(Interlocked.Increment(ref _nextSessionId), socket, this, _settings);
        _sessions[session.Id] = (session, Task.Run(() => session.Run(_stopping.Token)));
        return Task.CompletedTask;
    }, _stopping.Token);

    /// <summary>Stops accepting and reading; sessions stay open so queued replies can still be sent.</summary>
    public async Task StopAcceptingAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        _listener.Close();
        if (_acceptLoop is not null)
        {
            await _acceptLoop.ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAcceptingAsync().ConfigureAwait(false);
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
