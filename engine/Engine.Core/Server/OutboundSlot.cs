using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using Engine.Protocol;

namespace Engine.Core.Server;

/// <summary>A reply frame held inline.</summary>
[InlineArray(ReplyCodec.MaxFrameBytes)]
public struct ReplyBuffer
{
    private byte _first;
}

/// <summary>One slot of the outbound ring: an encoded reply or report and the client it is for.</summary>
public struct OutboundSlot
{
    public uint ClientId;
    public int Length;

    /// <summary>An answer's: when its request was read (<see cref="Ledger.TxSlot.ReceivedTicks"/>); 0 for execution reports.</summary>
    public long ReceivedTicks;
    public ReplyBuffer Frame;

    [UnscopedRef]
    public Span<byte> Buffer => Frame;

    [UnscopedRef]
    public ReadOnlySpan<byte> Bytes => ((ReadOnlySpan<byte>)Frame)[..Length];
}
