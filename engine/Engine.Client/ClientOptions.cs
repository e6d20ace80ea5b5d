using System.Net;

namespace Engine.Client;

/// <summary>How a front-end connects: the engine's endpoints (primary first), its identity, its limits.</summary>
public sealed record ClientOptions
{
    /// <summary>HOST:PORT of each node; on a dropped connection the client tries the next one.</summary>
    public required IReadOnlyList<string> Endpoints { get; init; }

    public required uint ClientId { get; init; }

    public required string Token { get; init; }

    /// <summary>Requests sent and not yet answered, at most. Default 1,024 (the engine's default allows 4,096).</summary>
    public int MaxInFlight { get; init; } = 1024;

    /// <summary>How long one connect-and-logon attempt may take. Default 2 s.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// How long the oldest unanswered request may wait before the client gives up on this
    /// connection and fails over (a stalled or cut-off engine never closes the socket). Default 2 s.
    /// </summary>
    public TimeSpan AnswerTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// How long the engine may say nothing at all (no answer, no report, no heartbeat) before the client
    /// takes it for gone or frozen and fails over; it applies once the engine has sent a heartbeat on
    /// the connection (so an engine that sends none is judged by <see cref="AnswerTimeout"/> alone).
    /// A node whose client port was left for silence is tried again only after twice this, or when no
    /// other endpoint takes the logon. Default 1 s (the client asks for a heartbeat every fifth of it):
    /// 500 ms was seen to expire in a client process starved of the CPU (a test host under CI load) while
    /// its engine was fine; a false failover costs a reconnect and the resends. <see cref="TimeSpan.Zero"/>: off.
    /// </summary>
    public TimeSpan SilenceTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The heartbeat interval asked of the engine in the logon: a fifth of the silence timeout (10 ms to 60 s), or none.</summary>
    internal ushort HeartbeatMs => SilenceTimeout > TimeSpan.Zero ? (ushort)Math.Clamp(SilenceTimeout.TotalMilliseconds / 5, 10, 60_000) : (ushort)0;

    /// <summary>How long the client keeps trying to reconnect before it fails every pending request. Default 30 s.</summary>
    public TimeSpan ReconnectFor { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>TLS to the engine (its port must be started with a certificate); null (default) for plaintext.</summary>
    public ClientTlsOptions? Tls { get; init; }

    internal IPEndPoint[] Parse() => [.. Endpoints.Select(e =>
        e.StartsWith("localhost:", StringComparison.OrdinalIgnoreCase) && int.TryParse(e.AsSpan(10), out int port)
            ? new IPEndPoint(IPAddress.Loopback, port)
            : IPEndPoint.TryParse(e, out IPEndPoint? endpoint) ? endpoint : throw new ArgumentException($"'{e}' is not HOST:PORT"))];

    /// <summary>Each endpoint's host as written (the default TLS target host).</summary>
    internal string[] Hosts() => [.. Endpoints.Select(e =>
    {
        int colon = e.LastIndexOf(':');
        string host = colon > 0 ? e[..colon] : e;
        return host.StartsWith('[') && host.EndsWith(']') ? host[1..^1] : host;
    })];
}
