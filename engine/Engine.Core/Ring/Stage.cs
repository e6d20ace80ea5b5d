namespace Engine.Core.Ring;

/// <summary>A stage of a pipeline: its name, what it runs after, and how far it has got.</summary>
public sealed class Stage
{
    internal Stage(string name, FaultPolicy policy, Stage[] upstream, Sequence sequence)
    {
        Name = name;
        Policy = policy;
        Upstream = upstream;
        Sequence = sequence;
    }

    public string Name { get; }

    public FaultPolicy Policy { get; }

    /// <summary>The stages this one runs after; empty for a stage that reads what producers publish.</summary>
    public IReadOnlyList<Stage> Upstream { get; }

    /// <summary>The last sequence this stage has finished with (-1 before the first).</summary>
    public long Progress => Sequence.Value;

    /// <summary>Handler exceptions this stage reported (skipped or halting).</summary>
    public long Faults => Interlocked.Read(ref FaultCount);

    internal Sequence Sequence { get; }

    internal long FaultCount;

    internal IStageRunner? Runner { get; set; }

    public override string ToString() => $"{Name} @ {Progress}";
}

/// <summary>The non-generic face of a stage's loop, for the pipeline that starts and joins it.</summary>
internal interface IStageRunner
{
    void Run();
}
