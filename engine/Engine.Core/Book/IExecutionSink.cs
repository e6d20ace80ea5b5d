using Engine.Protocol;

namespace Engine.Core.Book;

/// <summary>
/// Hears the outcome of each transaction the <see cref="Exchange"/> applies, in order: first
/// <see cref="Accepted"/> or <see cref="Rejected"/> for the transaction itself, then the execution
/// reports it caused (fills on both sides, cancels, replaces).
/// </summary>
/// <remarks>Implement on a struct: <see cref="Exchange.Apply{TSink}"/> takes it as a type parameter, so the calls inline.</remarks>
public interface IExecutionSink
{
    /// <summary>The transaction is applied: it is at <paramref name="lsn"/> in block <paramref name="blockNo"/>.</summary>
    void Accepted(in Transaction tx, ulong lsn, ulong blockNo, in Hash32 blockHash);

    /// <summary>A logged rejection: the transaction is in the ledger at <paramref name="lsn"/>, and this is its outcome.</summary>
    void Rejected(in Transaction tx, RejectReason reason, ulong lsn);

    void Execution(in ExecutionReport report);
}

/// <summary>Discards every outcome: replay at start-up, benchmarks.</summary>
public struct NullSink : IExecutionSink
{
    public readonly void Accepted(in Transaction tx, ulong lsn, ulong blockNo, in Hash32 blockHash)
    {
    }

    public readonly void Rejected(in Transaction tx, RejectReason reason, ulong lsn)
    {
    }

    public readonly void Execution(in ExecutionReport report)
    {
    }
}

/// <summary>What a transaction's outcome was, kept per client so a duplicate gets the same answer.</summary>
public struct Outcome
{
    public ulong ClientSeq;
    public ulong Lsn;
    public ulong BlockNo;
    public Hash32 BlockHash;

    /// <summary><see cref="RejectReason.None"/> when it was accepted.</summary>
    public RejectReason Reason;
}
