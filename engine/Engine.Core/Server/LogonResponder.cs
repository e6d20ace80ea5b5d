using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace Engine.Core.Server;

/// <summary>
/// Answers the client port of a node that does not serve (a backup, a node starting or stepping
/// down): every logon hears "not primary" within milliseconds, naming the other node's client
/// endpoint when it is configured (<see cref="GatewaySettings.PeerListen"/>), instead of waiting in
/// the listen backlog for an answer that may never come. Unauthenticated connections get the
/// same bounds as a serving node's (<see cref="FrontDoor"/>): pending-logon limits, timeout,
/// failed-logon throttle, aggregated log.
/// </summary>
/// <remarks>
/// <para>At takeover the node's <see cref="Gateway"/> is given the same listening socket and takes
/// the responder's door over (<see cref="TakeOver"/>): the socket stays bound and listening, the
/// accept loop runs on, only who answers the logons changes. A takeover is as fast as when the
/// backlog simply waited.</para>
/// <para>While <c>mayServeSoon</c> says so (a backup that has lost its primary and may take over in
/// a moment), a logon is held for up to <see cref="GatewaySettings.HoldLogonMs"/> before it is
/// answered "not primary": a takeover within that time answers it "ok" instead, as the backlog did,
/// and a client is not sent away from the node about to serve it. Given the node's credentials, it
/// checks a held logon's token meanwhile (one at a time, on the pool, as the gateway does), so the
/// node it becomes only decides: the slow hash is not on the takeover's path (4 ms a client with
/// the default iterations, one after the other).</para>
/// </remarks>
public sealed class LogonResponder : IAsyncDisposable, ILogonAnswerer
{
    // The responder answering on a listener, found by the gateway that is given that listener.
    private static readonly ConditionalWeakTable<Socket, LogonResponder> s_byListener = [];

    private readonly FrontDoor _door;
    private readonly Func<bool>? _mayServeSoon;
    private readonly Book.ReferenceData? _credentials;
    private readonly SemaphoreSlim _tokenChecks = new(1, 1);
    private readonly int _holdMs;
    private int _state; // Answering, then HandedOver or Disposed

    private const int Answering = 0;
    private const int HandedOverState = 1;
    private const int Disposed = 2;

    private LogonResponder(FrontDoor door, Func<bool>? mayServeSoon, Book.ReferenceData? credentials)
    {
        _door = door;
        _mayServeSoon = mayServeSoon;
        _credentials = credentials;
        _holdMs = door.Limits.HoldLogonMs;
    }

    /// <summary>
    /// Starts answering on <paramref name="listener"/> (bound and listening, e.g. by
    /// <see cref="EngineNode.BindClientListener"/>). The caller keeps owning the socket: a node
    /// started on it takes the port over; otherwise dispose this, then the socket.
    /// </summary>
    /// <param name="listener">The node's client port.</param>
    /// <param name="settings">The node's settings: the client port's limits, TLS, the other node's endpoint.</param>
    /// <param name="log">Where the (aggregated) log lines go.</param>
    /// <param name="mayServeSoon">True while this node may start serving in a moment (hold logons briefly); null: never hold.</param>
    /// <param name="credentials">The node's clients and their token hashes: held logons' tokens are checked against them while held; null: not.</param>
    /// <exception cref="InvalidDataException">The TLS certificate or key of <paramref name="settings"/> cannot be loaded.</exception>
    public static LogonResponder Start(Socket listener, EngineSettings settings, Action<string> log, Func<bool>? mayServeSoon = null, Book.ReferenceData? credentials = null)
    {
        var door = new FrontDoor(listener, settings, log);
        var responder = new LogonResponder(door, mayServeSoon, credentials);
        s_byListener.AddOrUpdate(listener, responder);
        door.Start(responder);
        return responder;
    }

    public IPEndPoint LocalEndPoint => _door.LocalEndPoint;

    /// <summary>The port's counters while this answers it (<see cref="GatewayStats.NotPrimary"/> and the rest).</summary>
    public GatewayStats Stats() => _door.Stats();

    /// <summary>True once a gateway took the port over.</summary>
    public bool HandedOver => Volatile.Read(ref _state) == HandedOverState;

    /// <summary>The door of the responder answering on <paramref name="listener"/>, for the gateway that now serves it; null if none is.</summary>
    internal static FrontDoor? TakeOver(Socket listener)
    {
        if (!s_byListener.TryGetValue(listener, out LogonResponder? responder) || Interlocked.CompareExchange(ref responder._state, HandedOverState, Answering) != Answering)
        {
            return null;
        }
        s_byListener.Remove(listener);
        return responder._door;
    }

    void ILogonAnswerer.OnLogon(FrontDoor door, PendingLogon logon)
    {
        if (_mayServeSoon is not null && FrontDoor.Now - logon.LogonReadMs < _holdMs && _mayServeSoon())
        {
            logon.Held = true; // asked again at the door's next tick, or offered to the gateway at takeover
            if (_credentials is not null && logon.TryStartCheckingAhead())
            {
                _ = CheckTokenAheadAsync(door, logon, _credentials);
            }
            return;
        }
        if (door.TryTake(logon))
        {
            door.AnswerNotPrimary(logon, "this node does not serve clients now");
        }
    }

    private async Task CheckTokenAheadAsync(FrontDoor door, PendingLogon logon, Book.ReferenceData credentials)
    {
        // Forced onto the thread pool: this is a socket completion thread or the door's tick, and the check is slow.
        await _tokenChecks.WaitAsync().ConfigureAwait(ConfigureAwaitOptions.ForceYielding);
        try
        {
            if (logon.IsFinished)
            {
                return; // answered, timed out or pushed out while it waited
            }
            logon.SetTokenVerdict(credentials.Authenticate(logon.ClientId, logon.Token));
            Interlocked.Increment(ref door.Counters.TokensCheckedAhead);
        }
        finally
        {
            _tokenChecks.Release();
        }
    }

    /// <summary>Closes the connections in the port that have not logged on, unless a gateway took the port over. The listener stays open (the caller's).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.CompareExchange(ref _state, Disposed, Answering) != Answering)
        {
            return;
        }
        foreach (var (listener, responder) in s_byListener)
        {
            if (ReferenceEquals(responder, this))
            {
                s_byListener.Remove(listener);
                break;
            }
        }
        await _door.DisposeAsync().ConfigureAwait(false);
    }
}
