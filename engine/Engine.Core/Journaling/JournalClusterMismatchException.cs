
namespace Engine.Core.Journaling;

/// <summary>
/// The journal belongs to another cluster than the node's settings name: its genesis carries
/// another cluster id. It is refused, never appended to, so that a node never continues another
/// cluster's chain. A <see cref="JournalCorruptException"/>, so that every place that refuses to
/// start on a bad journal refuses on this one too.
/// </summary>
public sealed class JournalClusterMismatchException : JournalCorruptException
{
    public JournalClusterMismatchException(string message, ClusterId expected, ClusterId found)
        : base(message)
    {
        Expected = expected;
        Found = found;
    }

    public JournalClusterMismatchException()
    {
    }

    public JournalClusterMismatchException(string message)
        : base(message)
    {
    }

    public JournalClusterMismatchException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>The cluster id the node was started with.</summary>
    public ClusterId Expected { get; }

    /// <summary>The cluster id in the journal's genesis block.</summary>
    public ClusterId Found { get; }
}
