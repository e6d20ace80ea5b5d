namespace Engine.Core.Journaling;

/// <summary>
/// The journal's blocks are of a format version this engine does not continue (version 1, from
/// before cluster ids): it is refused for writing, since a chain never changes version.
/// <c>engine log verify|dump</c> still read it. A <see cref="JournalCorruptException"/>, so that
/// every place that refuses to start on a bad journal refuses on this one too.
/// </summary>
public sealed class JournalFormatException : JournalCorruptException
{
    public JournalFormatException(string message, ushort version)
        : base(message)
    {
        Version = version;
    }

    public JournalFormatException()
    {
    }

    public JournalFormatException(string message)
        : base(message)
    {
    }

    public JournalFormatException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>The block format version found in the journal.</summary>
    public ushort Version { get; }
}
