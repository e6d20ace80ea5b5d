namespace Engine.Security;

/// <summary>A handshake that made no channel: the reason, and a sentence for the log.</summary>
/// <param name="Reason">Why, as a value a caller can branch on.</param>
/// <param name="Detail">What exactly, for a person (names the peer's claimed name, cluster id or role where they are known).</param>
public sealed record LinkRefusal(RefusalReason Reason, string Detail)
{
    public override string ToString() => Detail;
}

/// <summary>
/// The client's side of a refusal: thrown by <see cref="SecureChannel.ConnectAsync"/>. An
/// <see cref="IOException"/>, so code that already treats a failed connection as "no peer there"
/// keeps doing so.
/// </summary>
public sealed class LinkRefusedException : IOException
{
    public LinkRefusedException(LinkRefusal refusal, bool byPeer)
        : base(byPeer ? $"the server refused the handshake: {refusal.Detail}" : refusal.Detail)
    {
        Refusal = refusal;
        ByPeer = byPeer;
    }

    public LinkRefusedException()
        : this(new LinkRefusal(RefusalReason.Malformed, "refused"), false)
    {
    }

    public LinkRefusedException(string message)
        : this(new LinkRefusal(RefusalReason.Malformed, message), false)
    {
    }

    public LinkRefusedException(string message, Exception innerException)
        : base(message, innerException)
    {
        Refusal = new LinkRefusal(RefusalReason.Closed, message);
    }

    /// <summary>Why.</summary>
    public LinkRefusal Refusal { get; }

    /// <summary>Shorthand for <c>Refusal.Reason</c>.</summary>
    public RefusalReason Reason => Refusal.Reason;

    /// <summary>True when the server said no (its reason came over the wire); false when this side refused the server.</summary>
    public bool ByPeer { get; }
}
