namespace Engine.Security;

/// <summary>
/// What a principal of the cluster may be. A role is fixed in the roster (<c>cluster.json</c>) next
/// to the principal's public key, so holding a key gives exactly one role: a server names the roles
/// it accepts for a purpose (<see cref="SecureChannel.AcceptAsync"/>), a client the role it expects
/// of the server (<see cref="SecureChannel.ConnectAsync"/>), and an observer's key can therefore never
/// pass as a node's, the witness's or the operator's.
/// </summary>
/// <remarks>The numbers are stable (they are never written to the wire, but keep them so).</remarks>
public enum PrincipalRole : byte
{
    /// <summary>An engine node: primary or backup of the pair, in turn.</summary>
    Node = 1,

    /// <summary>The witness that grants the solo lease.</summary>
    Witness = 2,

    /// <summary>The operator's tools: the admin verbs that change anything, the proxy's control port.</summary>
    Operator = 3,

    /// <summary>A read-only follower (an auditor's copy of the ledger): never counted for acknowledgements, never acts.</summary>
    Observer = 4,
}
