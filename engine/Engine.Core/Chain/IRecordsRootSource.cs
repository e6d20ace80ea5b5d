namespace Engine.Core.Chain;

/// <summary>Where a block builder takes a finished records root from (<see cref="Ledger.RecordsRootBuilder"/>, on a thread of its own).</summary>
public interface IRecordsRootSource
{
    /// <summary>Takes the root ready, if any: the caller must write it into the next block it seals.</summary>
    bool TryTake(out RecordsRoot root);
}
