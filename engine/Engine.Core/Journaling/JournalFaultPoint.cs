using System.Globalization;

namespace Engine.Core.Journaling;

/// <summary>
/// The journal's fault-injection point, <b>for tests only</b>: with
/// <c>ENGINE_FAULT_JOURNAL_APPEND_AFTER_BLOCKS=N</c> in the environment, every journal the process
/// opens accepts N blocks through <see cref="Journal.Append"/> and fails the next one, as a broken
/// device would. A test of the pair makes a node's disk fail at a chosen block this way,
/// deterministically, where a full disk (a small tmpfs) fails wherever the page flushes happen to fall.
/// </summary>
/// <remarks>
/// <para>Faults it may cause, and no others:</para>
/// <list type="bullet">
/// <item>The (N+1)-th append after the journal was opened (the genesis block of a new journal is not
/// counted) throws <see cref="JournalFaultException"/>; nothing of that block is enqueued.</item>
/// <item>That failure becomes the journal's sticky fault, as a failed commit does:
/// <see cref="Journal.Fault"/> is set, <see cref="Journal.FaultToken"/> is cancelled, every later
/// append, <see cref="Journal.WaitDurable"/> and <see cref="Journal.Flush"/> throws, and the committer
/// issues no further commit. What was appended before and not yet committed is therefore never
/// committed (a device that fails loses what it had not written); what was committed stays.</item>
/// </list>
/// <para>Read once per journal, when it is opened (every journal a process opens counts its own
/// appends, so a backup's warm-up journal, which appends none, does not consume it). Unset, the
/// default, it is inert and costs one compare of a field per appended block (never per
/// transaction). A value that is not a whole number ≥ 0 refuses the journal rather than being
/// silently ignored.</para>
/// </remarks>
public static class JournalFaultPoint
{
    /// <summary>The environment variable: blocks appended before the next append fails.</summary>
    public const string AppendAfterBlocksVariable = "ENGINE_FAULT_JOURNAL_APPEND_AFTER_BLOCKS";

    /// <summary>How many appends succeed before one fails; −1 when the fault point is unset.</summary>
    /// <exception cref="InvalidOperationException">The variable is set to something other than a whole number ≥ 0.</exception>
    public static long AppendsBeforeFault()
    {
        string? value = Environment.GetEnvironmentVariable(AppendAfterBlocksVariable);
        if (string.IsNullOrEmpty(value))
        {
            return -1;
        }
        if (!long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out long blocks))
        {
            throw new InvalidOperationException($"{AppendAfterBlocksVariable}='{value}': a whole number of blocks ≥ 0 is expected (a fault point for tests)");
        }
        return blocks;
    }
}
