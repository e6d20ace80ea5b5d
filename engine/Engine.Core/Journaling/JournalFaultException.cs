namespace Engine.Core.Journaling;

/// <summary>
/// The journal has failed (a commit or an append did not reach the device) and accepts nothing
/// more: the fault is sticky, so every later append and every wait throws this too. An
/// <see cref="IOException"/>, so code that treats I/O failures alike still does; code that must
/// tell its own disk from a peer's socket (a backup) catches this type first.
/// </summary>
public sealed class JournalFaultException : IOException
{
    public JournalFaultException()
    {
    }

    public JournalFaultException(string message)
        : base(message)
    {
    }

    public JournalFaultException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
