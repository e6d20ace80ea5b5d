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
    private readonly TaskCompletionSource<StateReport> _report = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task<StateReport> Report => _report.Task;

    public void Complete(StateReport report) => _report.TrySetResult(report);
}
