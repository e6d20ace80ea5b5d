namespace Engine.Core.Server;

/// <summary>
/// The client port's defences and options: what an unauthenticated connection may hold, how
/// failing sources are slowed down, TLS, and where clients are sent when this node does not serve
/// them. Part of <see cref="EngineSettings"/> (section <c>Gateway</c>: <c>ENGINE_GATEWAY__MAXPENDINGLOGONS</c>, …).
/// </summary>
/// <remarks>
/// Why these numbers: a pending logon holds a socket and about 1 KiB (a 256-byte read buffer and
/// the socket's bookkeeping), so 1,024 of them are about 1 MiB whatever a flood does; a real client
/// sends its logon with the connect, so it is pending for a round trip, and a flood must open
/// <see cref="MaxPendingLogons"/> connections within that round trip to push it out. Failed logons
/// from one address are counted in a window; past the limit the address is refused before a byte
/// is read, so a source that keeps failing costs an accept and a close.
/// </remarks>
public sealed record GatewaySettings
{
    /// <summary>Connections that have not logged on yet, at most; past it the oldest is closed. Default 1,024.</summary>
    public int MaxPendingLogons { get; init; } = 1024;

    /// <summary>Connections from one address that have not logged on yet, at most; past it that address's oldest is closed. Default 64.</summary>
    public int MaxPendingLogonsPerAddress { get; init; } = 64;

    /// <summary>
    /// Failed logons (wrong credentials, a first frame that is not a logon, no logon in time, a
    /// failed TLS handshake) from one address within <see cref="FailedLogonWindowMs"/> after which
    /// that address is refused for <see cref="FailedLogonBlockMs"/>. Default 10.
    /// </summary>
    public int FailedLogonLimit { get; init; } = 10;

    /// <summary>The window failed logons are counted in. Default 10 s.</summary>
    public int FailedLogonWindowMs { get; init; } = 10_000;

    /// <summary>How long an address that failed too often is refused. Default 30 s.</summary>
    public int FailedLogonBlockMs { get; init; } = 30_000;

    /// <summary>Addresses whose failures are remembered, at most (about 100 bytes each). Default 16,384.</summary>
    public int MaxTrackedAddresses { get; init; } = 16_384;

    /// <summary>
    /// How long a node that is not primary, but may become it soon (a backup that has lost its
    /// primary), holds a logon before answering "not primary": a takeover within that time answers
    /// it "ok" instead. Default 1 s (below the client's default connect timeout of 2 s).
    /// </summary>
    public int HoldLogonMs { get; init; } = 1000;

    /// <summary>PEM certificate (chain) file: with <see cref="TlsKeyFile"/>, the client port speaks TLS 1.2/1.3 only. Empty for plaintext.</summary>
    public string TlsCertificateFile { get; init; } = "";

    /// <summary>PEM private key file of <see cref="TlsCertificateFile"/>.</summary>
    public string TlsKeyFile { get; init; } = "";

    /// <summary>
    /// The other node's client endpoint (HOST:PORT), named in the "not primary" answer so a client
    /// knows where to go. Empty: the answer names none.
    /// </summary>
    public string PeerListen { get; init; } = "";

    /// <summary>
    /// The shortest heartbeat interval granted, and how often the heartbeat thread looks. A client asks
    /// for heartbeats in its logon (an interval, as FIX's HeartBtInt); a session of such a client that
    /// has been sent nothing for its interval (at least this) gets a heartbeat, a frame with no body,
    /// from a thread of its own: a client that hears nothing for its silence timeout knows the engine
    /// is gone or frozen and fails over. Default 20 ms; 0: no heartbeats to anyone.
    /// </summary>
    public int HeartbeatMs { get; init; } = 20;

    public bool Tls => TlsCertificateFile.Length > 0;

    public GatewaySettings Validate()
    {
        if (MaxPendingLogons < 1 || MaxPendingLogonsPerAddress < 1 || MaxPendingLogonsPerAddress > MaxPendingLogons)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxPendingLogons), $"pending logons: at least 1, and per address at most the total ({MaxPendingLogons})");
        }
        if (FailedLogonLimit < 1 || FailedLogonWindowMs < 1 || FailedLogonBlockMs < 0 || MaxTrackedAddresses < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(FailedLogonLimit), "failed-logon limit, window and tracked addresses must be positive");
        }
        if (HeartbeatMs is < 0 or > 60_000)
        {
            throw new ArgumentOutOfRangeException(nameof(HeartbeatMs), HeartbeatMs, "0 (none) to 60,000 ms");
        }
        if (HoldLogonMs < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(HoldLogonMs), HoldLogonMs, "0 or more");
        }
        if ((TlsCertificateFile.Length == 0) != (TlsKeyFile.Length == 0))
        {
            throw new ArgumentException("TLS needs both a certificate (--tls-cert) and its key (--tls-key)");
        }
        if (PeerListen.Length > 0)
        {
            EngineSettings.ParseEndpoint(PeerListen, "--peer-listen");
        }
        return this;
    }

    public override string ToString() =>
        $"{(Tls ? $"TLS ({TlsCertificateFile})" : "plaintext")}, ≤ {MaxPendingLogons} pending logons (≤ {MaxPendingLogonsPerAddress}/address), " +
        $"an address refused for {FailedLogonBlockMs / 1000.0:0.#} s after {FailedLogonLimit} failed logons in {FailedLogonWindowMs / 1000.0:0.#} s" +
        (HeartbeatMs > 0 ? $", heartbeats to idle sessions that ask (every {HeartbeatMs} ms at most)" : ", no heartbeats") +
        (PeerListen.Length > 0 ? $", other node {PeerListen}" : "");
}
