using Engine.Protocol;

namespace Engine.Client;

/// <summary>The engine's answer to one request: a receipt, or a rejection with its reason.</summary>
public readonly record struct SubmitResult(bool Accepted, Receipt Receipt, Rejection Rejection)
{
    public ulong ClientSeq => Accepted ? Receipt.ClientSeq : Rejection.ClientSeq;

    public override string ToString() => Accepted ? Receipt.ToString() : Rejection.ToString();
}

/// <summary>Thrown to pending requests when the client gives up reconnecting, or is disposed.</summary>
public sealed class EngineUnavailableException : Exception
{
    public EngineUnavailableException(string message)
        : base(message)
    {
    }

    public EngineUnavailableException()
    {
    }

    public EngineUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
