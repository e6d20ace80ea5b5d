using Engine.Core.Chain;

namespace Engine.Core.Journaling;

/// <summary>
/// The journal on disk cannot be trusted: a block does not verify, or FASTER could not recover.
/// The journal is not opened for writing. Carries the first bad block when there is one.
/// <see cref="JournalClusterMismatchException"/> and <see cref="JournalFormatException"/> are the
/// two kinds of journal that are whole but must not be continued by this node.
/// </summary>
public class JournalCorruptException : Exception
{
    public JournalCorruptException(string message, BlockFault? fault = null, Exception? inner = null)
        : base(message, inner) => Fault = fault;

    public JournalCorruptException()
    {
    }

    public JournalCorruptException(string message)
        : base(message)
    {
    }

    public JournalCorruptException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public BlockFault? Fault { get; }
}
