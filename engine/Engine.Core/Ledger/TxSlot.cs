using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using Engine.Protocol;

namespace Engine.Core.Ledger;

/// <summary>The raw request frame, held inline in the slot.</summary>
[InlineArray(Capacity)]
public struct FrameBuffer
{
    /// <summary>Room for the largest request frame, with margin.</summary>
    public const int Capacity = 96;

    private byte _first;
}

/// <summary>
/// One slot of the inbound ring: the frame as it arrived, then what each stage found.
/// Written in place by the producer (frame), validate (transaction, verdict), seal (LSN, block).
/// </summary>
public struct TxSlot
{
    public FrameBuffer Frame;

    /// <summary>Bytes of the frame; more than <see cref="FrameBuffer.Capacity"/> means it did not fit and was not copied.</summary>
    public int FrameLength;

    /// <summary>The client the session logged on as (0 for synthetic runs): requests must carry this client id.</summary>
    public uint SessionClientId;

    /// <summary>When the session read it (<see cref="System.Diagnostics.Stopwatch"/> timestamp; 0: not from a session): the start of the server's latency in /status.</summary>
    public long ReceivedTicks;

    /// <summary>Not a request: a probe that asks the apply stage for its state (admin /status).</summary>
    public StateProbe? Probe;

    /// <summary>An operator's admin transaction (in <see cref="Tx"/>), put in the ring by the node, not a session: the apply stage tells this its outcome.</summary>
    public AdminSubmission? Admin;

    public Transaction Tx;

    /// <summary>Why validation refused it, or <see cref="RejectReason.None"/>.</summary>
    public RejectReason Reject;

    /// <summary>The LSN and block the sealer gave it (accepted transactions only).</summary>
    public ulong Lsn;

    public ulong BlockNo;

    /// <summary>Set by the sealer: this (clientId, clientSeq) was taken before; it is not journaled again, and its original outcome is the answer.</summary>
    public bool Duplicate;

    /// <summary>Copies <paramref name="frame"/> in; a frame too large is recorded as such, not copied.</summary>
    public void SetFrame(ReadOnlySpan<byte> frame)
    {
        FrameLength = frame.Length;
        if (frame.Length <= FrameBuffer.Capacity)
        {
            frame.CopyTo(Frame);
        }
    }

    /// <summary>The frame bytes (empty when it did not fit).</summary>
    [UnscopedRef]
    public ReadOnlySpan<byte> FrameBytes => FrameLength <= FrameBuffer.Capacity ? ((ReadOnlySpan<byte>)Frame)[..FrameLength] : default;
}
