using Engine.Core.Ring;
using Engine.Tests.Support;

namespace Engine.Tests.Ring;

public class WaitStrategyTests
{
    [Test]
    public void An_idle_adaptive_pipeline_parks_every_stage()
    {
        var recorder = new Recorder();
        var wait = WaitStrategy.Adaptive();
        var builder = new PipelineBuilder<TestEvent>(new RingSettings { Size = 8, Wait = wait });
        Stage a = builder.AddStage("A", new StampHandler('A', recorder, []));
        Stage b = builder.AddStage("B", new StampHandler('B', recorder, [a]), a);
        builder.AddStage("C", new StampHandler('C', recorder, [b]), b);
        using var pipeline = builder.Start();

        Until.True(() => wait.ParkedThreads == 3, "all three idle stages parked");

        using (var claim = pipeline.Ring.Claim())
        {
            claim.Slot.Value = 0;
        }
        Until.True(() => pipeline.HasHandled(0), "the stages waking for one event");
        Until.True(() => wait.ParkedThreads == 3, "all three parked again");
        Assert.That(recorder.Violations, Is.Empty);
    }

    [Test]
    public void Presets_parse_by_name_and_unknown_names_are_refused()
    {
        foreach (string name in WaitStrategy.Names)
        {
            Assert.That(WaitStrategy.Parse(name).Name, Is.EqualTo(name));
        }
        var error = Assert.Throws<ArgumentException>(() => WaitStrategy.Parse("sleepy"));
        Assert.That(error!.Message, Does.Contain("adaptive"));
    }

    [Test]
    public void Settings_refuse_a_ring_size_that_is_not_a_power_of_two([Values(0, 1, 3, 100, -8)] int size)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new RingSettings { Size = size }.Validate());
    }

    [Test]
    public void Builder_refuses_duplicate_names_foreign_stages_and_empty_pipelines()
    {
        var builder = new PipelineBuilder<TestEvent>(new RingSettings { Size = 8 });
        var other = new PipelineBuilder<TestEvent>(new RingSettings { Size = 8 });
        var recorder = new Recorder();
        Stage foreign = other.AddStage("x", new InOrderHandler(recorder));
        Assert.Throws<InvalidOperationException>(() => builder.Start());
        builder.AddStage("a", new InOrderHandler(recorder));
        Assert.Throws<ArgumentException>(() => builder.AddStage("a", new InOrderHandler(recorder)));
        Assert.Throws<ArgumentException>(() => builder.AddStage("b", new InOrderHandler(recorder), foreign));
    }

    [Test]
    public void Claiming_more_than_the_ring_holds_is_refused()
    {
        var builder = new PipelineBuilder<TestEvent>(new RingSettings { Size = 8 });
        builder.AddStage("a", new InOrderHandler(new Recorder()));
        using var pipeline = builder.Start();
        Assert.Throws<ArgumentOutOfRangeException>(() => pipeline.Ring.Next(9));
        Assert.Throws<ArgumentOutOfRangeException>(() => pipeline.Ring.TryNext(0, out _));
    }
}
