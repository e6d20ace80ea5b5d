namespace Engine.Core.Ledger;

/// <summary>
/// The highest clientSeq sealed into the ledger per client id: written by the sealer, read by
/// sessions at logon (so a reconnecting client knows where to resend from). An array indexed by
/// client id; client ids are at most <see cref="MaxClientId"/>.
/// </summary>
public sealed class ClientSeqTable
{
    public const uint MaxClientId = 65_535;

    private readonly ulong[] _highest = new ulong[MaxClientId + 1];

    /// <summary>Moves the client's highest seq to <paramref name="clientSeq"/> if it is higher; false for a duplicate or an older seq.</summary>
    public bool TryAdvance(uint clientId, ulong clientSeq)
    {
        if (clientId > MaxClientId)
        {
            return true; // not tracked: the state machine's own window still dedupes
        }
        ref ulong highest = ref _highest[clientId];
        if (clientSeq <= highest)
        {
            return false;
        }
        Volatile.Write(ref highest, clientSeq);
        return true;
    }

    public ulong Highest(uint clientId) => clientId > MaxClientId ? 0 : Volatile.Read(ref _highest[clientId]);

    /// <summary>Seeds the table from a replayed state.</summary>
    public void Seed(IEnumerable<(uint ClientId, ulong LastSeq)> clients)
    {
        foreach (var (clientId, lastSeq) in clients)
        {
            if (clientId <= MaxClientId)
            {
                _highest[clientId] = Math.Max(_highest[clientId], lastSeq);
            }
        }
    }
}
