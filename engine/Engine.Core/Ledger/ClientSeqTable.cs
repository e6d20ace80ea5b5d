using Engine.Protocol;

namespace Engine.Core.Ledger;

/// <summary>What the sealer makes of a request's (clientId, clientSeq).</summary>
public enum ClientSeqVerdict : byte
{
    /// <summary>Above the highest sealed and within the window: it goes into the ledger.</summary>
    Next = 0,

    /// <summary>Not above the highest sealed: taken before; answered with its original outcome.</summary>
    Duplicate = 1,

    /// <summary>More than the window above the client's window base: rejected, never journaled.</summary>
    TooFarAhead = 2,

    /// <summary>A client id no client can have (0, or above <see cref="ProtocolLimits.MaxClientId"/>): rejected.</summary>
    BadClientId = 3,
}

/// <summary>
/// Per client id, the highest clientSeq sealed into the ledger and the base of the window a new
/// clientSeq must fall in: written by the sealer, the highest sealed also read by sessions at logon
/// (so a reconnecting client knows where to resend from). Arrays indexed by client id; every id
/// that can log on is at most <see cref="MaxClientId"/> (the reference data refuses larger ones).
/// </summary>
/// <remarks>
/// <para>The rule, checked before a transaction gets an LSN: a clientSeq not above the highest
/// sealed is a duplicate (answered with its original outcome, as ever); one above
/// <c>base + </c><see cref="Window"/> is rejected (<see cref="RejectReason.ClientSeqTooFarAhead"/>)
/// and never journaled; anything between is sealed. So one request moves a client's seqs on by at
/// most a window: the order book's dedupe window stays meaningful, and reaching the end of the
/// 64-bit seq space takes 2^54 requests, not one.</para>
/// <para>Why a base and not just the highest sealed: honest clients consume seqs that are never
/// sealed. A request answered before the ledger (<see cref="RejectReason.Busy"/>,
/// <see cref="RejectReason.NoBackup"/>, a validation failure) is a final answer for its clientSeq and
/// the client goes on with the next one (docs/protocol.md), and a node that takes over knows only
/// the seqs that were sealed. So the base is the highest sealed, moved up by the requests this
/// sealer saw answered before the ledger, and by one window for each request rejected as too far
/// ahead: a client that lost count gets back in after a few rejections, while each request still
/// moves the base by at most one window.</para>
/// <para>Threads: the sealer is the only writer; sessions read <see cref="Highest"/> (volatile).
/// The base is the sealer's alone.</para>
/// </remarks>
public sealed class ClientSeqTable
{
    public const uint MaxClientId = ProtocolLimits.MaxClientId;

    /// <summary>How far above its base a client's next clientSeq may be: the order book's dedupe window.</summary>
    public const ulong Window = Book.Exchange.DedupeWindow;

    private readonly ulong[] _highest = new ulong[MaxClientId + 1];

    // Invariant: _highest[c] ≤ _base[c] for every c (seeding and sealing raise both).
    private readonly ulong[] _base = new ulong[MaxClientId + 1];

    /// <summary>
    /// Decides on a request that passed validation, and if it is <see cref="ClientSeqVerdict.Next"/>
    /// records it as the client's highest sealed. Total: any id and any seq give a verdict.
    /// </summary>
    public ClientSeqVerdict TryAdvance(uint clientId, ulong clientSeq)
    {
        if (clientId is 0 or > MaxClientId)
        {
            return ClientSeqVerdict.BadClientId;
        }
        ref ulong highest = ref _highest[clientId];
        if (clientSeq <= highest)
        {
            return ClientSeqVerdict.Duplicate;
        }
        ref ulong windowBase = ref _base[clientId];
        // clientSeq > windowBase is tested first, so the subtraction cannot wrap.
        if (clientSeq > windowBase && clientSeq - windowBase > Window)
        {
            // windowBase + Window < clientSeq ≤ ulong.MaxValue: no overflow.
            windowBase += Window;
            return ClientSeqVerdict.TooFarAhead;
        }
        Volatile.Write(ref highest, clientSeq);
        windowBase = Math.Max(windowBase, clientSeq);
        return ClientSeqVerdict.Next;
    }

    /// <summary>
    /// A request of the client's that was answered before the ledger (validation refused it): its
    /// clientSeq is spent, so the base moves towards it, by at most one window.
    /// </summary>
    public void NoteAnsweredBeforeLedger(uint clientId, ulong clientSeq)
    {
        if (clientId is 0 or > MaxClientId)
        {
            return;
        }
        ref ulong windowBase = ref _base[clientId];
        if (clientSeq > windowBase)
        {
            windowBase = clientSeq - windowBase > Window ? windowBase + Window : clientSeq;
        }
    }

    /// <summary>The highest clientSeq sealed for <paramref name="clientId"/> (0 for none, and for an id no client can have).</summary>
    public ulong Highest(uint clientId) => clientId is 0 or > MaxClientId ? 0 : Volatile.Read(ref _highest[clientId]);

    /// <summary>The base of the client's window (tests; the sealer's thread only).</summary>
    internal ulong WindowBase(uint clientId) => clientId is 0 or > MaxClientId ? 0 : _base[clientId];

    /// <summary>Seeds the table from a replayed state (ids no client can have are left out: their requests are refused anyway).</summary>
    public void Seed(IEnumerable<(uint ClientId, ulong LastSeq)> clients)
    {
        foreach (var (clientId, lastSeq) in clients)
        {
            if (clientId is not 0 and <= MaxClientId)
            {
                _highest[clientId] = Math.Max(_highest[clientId], lastSeq);
                _base[clientId] = Math.Max(_base[clientId], _highest[clientId]);
            }
        }
    }
}
