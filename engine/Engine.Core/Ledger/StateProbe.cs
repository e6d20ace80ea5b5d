using Engine.Protocol;

namespace Engine.Core.Ledger;

/// <summary>What the apply stage reports when a probe passes it: the state at that point.</summary>
public sealed record StateReport(ulong LastLsn, Hash32 Checksum, int OpenOrders, ulong Trades);

/// <summary>
/// Travels through the inbound ring like a request (so it is answered even when the engine is idle,
/// and at a consistent point between two transactions); the apply stage fills it in.
/// </summary>
public sealed class StateProbe
{
    /// <summary>
    /// Not a question: asks the sealer to seal the records root that waits, in a block of its own,
    /// when no transaction is there to carry it (<see cref="RecordsRootBuilder.RootWaiting"/>). The
    /// apply stage passes it by.
    /// </summary>
    public static StateProbe SealRoot { get; } = new() { SealsRoot = true };

    public bool SealsRoot { get; private init; }

    private readonly TaskCompletionSource<StateReport> _report = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task<StateReport> Report => _report.Task;

    public void Complete(StateReport report) => _report.TrySetResult(report);
}

/// <summary>The outcome of one admin transaction: its LSN and block when the book accepted it, or why not.</summary>
public sealed record AdminOutcome(Transaction Transaction, RejectReason Reason, ulong Lsn, ulong BlockNo)
{
    public bool Accepted => Reason == RejectReason.None;

    public override string ToString() => Accepted
        ? $"{AdminTransaction.Describe(Transaction)}: done at LSN {Lsn} in block {BlockNo}"
        : $"{AdminTransaction.Describe(Transaction)}: refused ({Reason})";
}

/// <summary>
/// An operator's admin transaction on its way through the inbound ring: sealed and journaled like a
/// request, applied by the apply stage, which completes it with the outcome (after the journal gate:
/// in a pair, once the backup has it too).
/// </summary>
public sealed class AdminSubmission(Transaction transaction)
{
    private readonly TaskCompletionSource<AdminOutcome> _outcome = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Transaction Transaction { get; } = transaction;

    public Task<AdminOutcome> Outcome => _outcome.Task;

    public void Complete(RejectReason reason, ulong lsn, ulong blockNo) => _outcome.TrySetResult(new AdminOutcome(Transaction, reason, lsn, blockNo));
}
