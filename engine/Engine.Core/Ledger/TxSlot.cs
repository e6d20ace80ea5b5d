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

    /// <summary>Who sent it: the gateway's session id, for the reply.</summary>
    public long SessionId;

    public Transaction Tx;

    /// <summary>Why validation refused it, or <see cref="RejectReason.None"/>.</summary>
    public RejectReason Reject;

    /// <summary>The LSN and block the sealer gave it (accepted transactions only).</summary>
    public ulong Lsn;

    public ulong BlockNo;

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
