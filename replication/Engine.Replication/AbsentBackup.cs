using Engine.Core.Ledger;

namespace Engine.Replication;

/// <summary>
/// The mirror of a primary that has no backup and no permission to act alone (no solo lease): it
/// is never connected, so the gateway answers "no backup" and nothing is ever acknowledged.
/// </summary>
public sealed class AbsentBackup : IBlockMirror
{
    private readonly object _never = new();

    public bool IsConnected => false;

    public void Send(ReadOnlySpan<byte> block, ulong blockNo)
    {
    }

    /// <summary>Never returns: nothing is acknowledged without a backup.</summary>
    public void WaitAcked(ulong blockNo)
    {
        lock (_never)
        {
            while (true)
            {
                Monitor.Wait(_never);
            }
        }
    }
}
