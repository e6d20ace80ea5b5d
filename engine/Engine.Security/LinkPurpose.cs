namespace Engine.Security;

/// <summary>
/// What a secure channel is for. It is the first thing a client says and it is inside both signed
/// transcripts, so a handshake made for one purpose cannot be replayed or relayed into a listener
/// of another (a witness's signature on a replication handshake is worth nothing at the admin port).
/// A server refuses a purpose it does not serve. The numbers go on the wire: never reuse one.
/// </summary>
public enum LinkPurpose : byte
{
    /// <summary>The pair's replication link: a backup (or a probe, or later an observer) to a primary.</summary>
    Replication = 1,

    /// <summary>A node to the witness: ACQUIRE and RELEASE of the solo lease.</summary>
    Witness = 2,

    /// <summary>The operator to a node's admin verbs.</summary>
    Admin = 3,

    /// <summary>The operator (or a drill) to a fault proxy's control port.</summary>
    Control = 4,
}
