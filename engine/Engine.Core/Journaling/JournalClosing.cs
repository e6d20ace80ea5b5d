namespace Engine.Core.Journaling;

/// <summary>Closing a journal when a node stops serving.</summary>
public static class JournalClosing
{
    /// <summary>
    /// Disposes <paramref name="journal"/> (a clean close commits what was appended) and returns its
    /// fault if it has failed, before or in that last commit; null when everything appended is
    /// committed. The node that stops halts on a fault rather than going on with the journal.
    /// </summary>
    public static Exception? CloseReportingFault(this IJournal journal)
    {
        ArgumentNullException.ThrowIfNull(journal);
        try
        {
            journal.Dispose();
        }
        catch (JournalFaultException)
        {
            // The last commit failed: the fault below says so.
        }
        return journal.Fault;
    }
}
