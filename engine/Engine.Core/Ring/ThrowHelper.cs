using System.Diagnostics.CodeAnalysis;

namespace Engine.Core.Ring;

/// <summary>Throws out of line, so the fast paths that call these stay small enough to inline.</summary>
internal static class ThrowHelper
{
    [DoesNotReturn]
    public static void PipelineHalted(StageFault? fault) => throw new PipelineHaltedException(fault);

    [DoesNotReturn]
    public static void PipelineClosed() => throw new InvalidOperationException("the pipeline is closed: it accepts no new events");

    [DoesNotReturn]
    public static void ClaimSizeOutOfRange(int n, int bufferSize) =>
        throw new ArgumentOutOfRangeException(nameof(n), n, $"a claim must be between 1 and the ring size ({bufferSize})");
}
