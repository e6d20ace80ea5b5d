namespace Engine.Core.Ring;

/// <summary>What a stage does when its handler throws.</summary>
public enum FaultPolicy
{
    /// <summary>Report the fault and halt the whole pipeline: producers get <see cref="ClaimStatus.Halted"/>. The default.</summary>
    Halt = 0,

    /// <summary>Report the fault, count the event as handled, and go on with the next one.</summary>
    Skip = 1,
}

/// <summary>A handler's exception, with where it happened.</summary>
/// <param name="Stage">The stage's name.</param>
/// <param name="Sequence">The sequence of the event being handled.</param>
/// <param name="Error">What the handler threw.</param>
/// <param name="Policy">What the stage did about it.</param>
public sealed record StageFault(string Stage, long Sequence, Exception Error, FaultPolicy Policy)
{
    public override string ToString() =>
        $"stage '{Stage}' failed at sequence {Sequence} ({(Policy == FaultPolicy.Halt ? "halted" : "skipped")}): {Error.GetType().Name}: {Error.Message}";
}

/// <summary>Thrown by a blocking claim on a halted pipeline; carries the fault that halted it.</summary>
public sealed class PipelineHaltedException : Exception
{
    public PipelineHaltedException(StageFault? fault)
        : base(fault is null ? "the pipeline is halted" : $"the pipeline is halted: {fault}", fault?.Error) => Fault = fault;

    public PipelineHaltedException()
        : this((StageFault?)null)
    {
    }

    public PipelineHaltedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public PipelineHaltedException(string message)
        : base(message)
    {
    }

    /// <summary>The fault that halted the pipeline.</summary>
    public StageFault? Fault { get; }
}
