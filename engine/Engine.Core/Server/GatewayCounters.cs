namespace Engine.Core.Server;

/// <summary>
/// What happened at the client port, counted (never logged one by one under attack: see
/// <see cref="EventDigest"/>). Written with <see cref="Interlocked"/> by the accept loop, the
/// pending logons and the sessions; read by /status through <see cref="Snapshot"/>.
/// </summary>
public sealed class GatewayCounters
{
    /// <summary>Connections accepted (before any check).</summary>
    public long Accepted;

    /// <summary>Logons answered "ok".</summary>
    public long LogonsOk;

    /// <summary>Logons refused for an unknown client or a wrong token.</summary>
    public long LogonsFailed;

    /// <summary>Connections refused at accept because their address failed too often lately.</summary>
    public long RefusedThrottled;

    /// <summary>Connections closed because no logon came within the logon timeout.</summary>
    public long LogonTimeouts;

    /// <summary>Connections closed, before their logon, to make room under the pending-logon limits.</summary>
    public long PendingEvicted;

    /// <summary>Connections closed for bytes that are not the protocol (a bad first frame, a bad length later).</summary>
    public long ProtocolViolations;

    /// <summary>Connections closed by the peer before they logged on.</summary>
    public long ClosedBeforeLogon;

    /// <summary>TLS handshakes that failed (including a plaintext client on a TLS port).</summary>
    public long TlsFailures;

    /// <summary>Logons answered "not primary".</summary>
    public long NotPrimary;

    /// <summary>Logons answered "unavailable" (no session slot).</summary>
    public long Unavailable;

    /// <summary>Logged-on sessions closed, for any reason.</summary>
    public long SessionsClosed;

    /// <summary>Log lines left out by the aggregation (each is counted in a summary line instead).</summary>
    public long LogLinesSuppressed;

    /// <summary>Tokens of logons held by a backup about to take over, checked while held (the takeover's gateway then only decides).</summary>
    public long TokensCheckedAhead;

    public GatewayStats Snapshot(int pendingLogons, int blockedAddresses) => new(
        Interlocked.Read(ref Accepted),
        Interlocked.Read(ref LogonsOk),
        Interlocked.Read(ref LogonsFailed),
        Interlocked.Read(ref RefusedThrottled),
        Interlocked.Read(ref LogonTimeouts),
        Interlocked.Read(ref PendingEvicted),
        Interlocked.Read(ref ProtocolViolations),
        Interlocked.Read(ref ClosedBeforeLogon),
        Interlocked.Read(ref TlsFailures),
        Interlocked.Read(ref NotPrimary),
        Interlocked.Read(ref Unavailable),
        Interlocked.Read(ref SessionsClosed),
        Interlocked.Read(ref LogLinesSuppressed),
        pendingLogons,
        blockedAddresses)
    {
        TokensCheckedAhead = Interlocked.Read(ref TokensCheckedAhead),
    };
}

/// <summary>The client port's counters at one moment (see <see cref="GatewayCounters"/> for each), and the pending logons and refused addresses now.</summary>
public sealed record GatewayStats(
    long Accepted,
    long LogonsOk,
    long LogonsFailed,
    long RefusedThrottled,
    long LogonTimeouts,
    long PendingEvicted,
    long ProtocolViolations,
    long ClosedBeforeLogon,
    long TlsFailures,
    long NotPrimary,
    long Unavailable,
    long SessionsClosed,
    long LogLinesSuppressed,
    int PendingLogons,
    int BlockedAddresses)
{
    /// <summary>See <see cref="GatewayCounters.TokensCheckedAhead"/>.</summary>
    public long TokensCheckedAhead { get; init; }
}
