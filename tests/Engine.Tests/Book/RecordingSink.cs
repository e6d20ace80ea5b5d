using Engine.Core.Book;
using Engine.Protocol;

namespace Engine.Tests.Book;

/// <summary>Keeps every outcome, in order.</summary>
public sealed class Outcomes
{
    public List<(ulong ClientSeq, RejectReason Reason, ulong Lsn)> Replies { get; } = [];

    public List<ExecutionReport> Reports { get; } = [];
}

public readonly struct RecordingSink(Outcomes outcomes) : IExecutionSink
{
    public void Accepted(in Transaction tx, ulong lsn, ulong blockNo, in Hash32 blockHash) => outcomes.Replies.Add((tx.ClientSeq, RejectReason.None, lsn));

    public void Rejected(in Transaction tx, RejectReason reason, ulong lsn) => outcomes.Replies.Add((tx.ClientSeq, reason, lsn));

    public void Execution(in ExecutionReport report) => outcomes.Reports.Add(report);
}
