namespace Engine.Core.Ring;

/// <summary>
/// Lays out a pipeline over one ring: stages and the stages each runs after (pipelines, diamonds,
/// any DAG), then starts one thread per stage.
/// </summary>
/// <example><code>
/// var builder = new PipelineBuilder&lt;Order&gt;(new RingSettings { Size = 1 &lt;&lt; 14 });
/// Stage validate = builder.AddStage("validate", new Validate());
/// Stage journal = builder.AddStage("journal", new Journal(), validate);
/// Stage mirror = builder.AddStage("mirror", new Mirror(), validate);
/// builder.AddStage("apply", new Apply(), journal, mirror);
/// using Pipeline&lt;Order&gt; pipeline = builder.Start();
/// </code></example>
public sealed class PipelineBuilder<T>
    where T : struct
{
    private readonly RingSettings _settings;
    private readonly RingBuffer<T> _ring;
    private readonly List<Stage> _stages = [];
    private bool _started;

    public PipelineBuilder(RingSettings settings)
        : this(settings, null)
    {
    }

    /// <summary>A pipeline on <paramref name="ring"/>, made ahead of time and never used (its size, producers and wait strategy win over <paramref name="settings"/>'s).</summary>
    internal PipelineBuilder(RingSettings settings, RingBuffer<T>? ring)
    {
        _settings = settings.Validate();
        _ring = ring ?? new RingBuffer<T>(settings.Size, settings.Producers, settings.Wait);
    }

    /// <summary>The ring, to fill slots with preallocated contents before <see cref="Start"/>.</summary>
    public RingBuffer<T> Ring => _ring;

    /// <summary>Adds a stage with the default policy (<see cref="FaultPolicy.Halt"/>).</summary>
    public Stage AddStage<THandler>(string name, THandler handler, params Stage[] after)
        where THandler : struct, IStageHandler<T> =>
        AddStage(name, handler, FaultPolicy.Halt, after);

    /// <summary>
    /// Adds a stage that handles each event after every stage in <paramref name="after"/> has
    /// (none: right after the producers publish it).
    /// </summary>
    public Stage AddStage<THandler>(string name, THandler handler, FaultPolicy policy, params Stage[] after)
        where THandler : struct, IStageHandler<T> =>
        Add(name, policy, after, (barrier, stage) => new StageRunner<T, THandler>(_ring, barrier, stage, handler, _settings.OnFault));

    /// <summary>
    /// Adds a stage whose events go through two steps on its one thread: each is taken
    /// (<see cref="ITwoStepHandler{T}.Take"/>) as soon as it is readable, and passed on
    /// (<see cref="ITwoStepHandler{T}.Pass"/>) once its gate opens, in order; the thread takes
    /// events ahead of those whose gate is still shut. The stage's sequence (what later stages and
    /// the producers see) is the last event passed. A handler's fault halts the pipeline.
    /// </summary>
    public Stage AddTwoStepStage<THandler>(string name, THandler handler, params Stage[] after)
        where THandler : struct, ITwoStepHandler<T> =>
        Add(name, FaultPolicy.Halt, after, (barrier, stage) => new TwoStepRunner<T, THandler>(_ring, barrier, stage, handler, _settings.OnFault));

    private Stage Add(string name, FaultPolicy policy, Stage[] after, Func<SequenceBarrier, Stage, IStageRunner> runner)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (_started)
        {
            throw new InvalidOperationException("the pipeline has started: stages can no longer be added");
        }
        if (_stages.Exists(s => s.Name == name))
        {
            throw new ArgumentException($"a stage named '{name}' exists already", nameof(name));
        }
        foreach (Stage upstream in after)
        {
            if (!_stages.Contains(upstream))
            {
                throw new ArgumentException($"stage '{upstream.Name}' belongs to another pipeline", nameof(after));
            }
        }
        var stage = new Stage(name, policy, [.. after], new Sequence());
        var barrier = new SequenceBarrier(_ring.Sequencer, [.. after.Select(s => s.Sequence)]);
        stage.Runner = runner(barrier, stage);
        _stages.Add(stage);
        return stage;
    }

    /// <summary>Gates the producers on the last stages and starts one thread per stage.</summary>
    public Pipeline<T> Start()
    {
        if (_started)
        {
            throw new InvalidOperationException("the pipeline has started already");
        }
        if (_stages.Count == 0)
        {
            throw new InvalidOperationException("a pipeline needs at least one stage");
        }
        _started = true;
        // Producers must not lap the stages that nothing runs after. Every other stage is at or
        // ahead of at least one of those, so gating on them gates on all.
        Sequence[] gating = [.. _stages.Where(s => !_stages.Any(o => o.Upstream.Contains(s))).Select(s => s.Sequence)];
        _ring.Sequencer.SetGating(gating);
        return new Pipeline<T>(_ring, _settings, [.. _stages]);
    }
}
