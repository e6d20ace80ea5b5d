namespace Engine.Security;

/// <summary>
/// What <see cref="SecureChannel.AcceptAsync"/> made of a connection: a channel with an authenticated
/// peer, or a refusal (the connection is then already closed). A stranger is an expected event for a
/// listener, so it is a value, not an exception.
/// </summary>
public readonly record struct AcceptOutcome(SecureChannel? Channel, LinkRefusal? Refusal)
{
    /// <summary>True when <see cref="Channel"/> is set.</summary>
    public bool Accepted => Channel is not null;
}
