namespace Engine.Security;

/// <summary>
/// Why a handshake did not make a channel. A server sends its reason to the client (one byte) before
/// it closes, so the client's exception names it; nothing in it is secret (the roster is public).
/// The numbers go on the wire: never reuse one.
/// </summary>
public enum RefusalReason : byte
{
    /// <summary>Not a refusal: the handshake succeeded (the value a server sends to say so).</summary>
    None = 0,

    /// <summary>Bytes that are not a handshake of ours: wrong magic, length or layout.</summary>
    Malformed = 1,

    /// <summary>A handshake version this side does not speak.</summary>
    Version = 2,

    /// <summary>The server does not serve the purpose the client asked for.</summary>
    Purpose = 3,

    /// <summary>The peer belongs to another cluster (another <c>engine cluster init</c>).</summary>
    WrongCluster = 4,

    /// <summary>The peer's name is not in this side's roster.</summary>
    UnknownPrincipal = 5,

    /// <summary>The peer is in the roster, but its role may not do this (an observer as a node, a node where the witness was expected).</summary>
    RoleNotAllowed = 6,

    /// <summary>The peer's signature does not verify with its roster key: it does not hold the key of the name it claims.</summary>
    BadSignature = 7,

    /// <summary>An ephemeral key that gives no shared secret (a low-order X25519 point).</summary>
    BadKey = 8,

    /// <summary>The handshake did not finish within its time limit.</summary>
    Timeout = 9,

    /// <summary>The connection closed (or failed) during the handshake.</summary>
    Closed = 10,

    /// <summary>The server is handling as many handshakes as it allows at once.</summary>
    Busy = 11,
}
