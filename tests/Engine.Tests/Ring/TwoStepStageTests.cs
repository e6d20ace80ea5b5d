using Engine.Core.Ring;
using Engine.Tests.Support;

namespace Engine.Tests.Ring;

/// <summary>
/// A two-step stage (the ledger's single stage: seal ahead, pass on once acknowledged), run once per
/// wait strategy: it takes events ahead of a shut gate, passes them in order as the gate opens,
/// never lets producers lap what it has taken but not passed, and halts on a gate that fails.
/// </summary>
[TestFixtureSource(nameof(Strategies))]
public class TwoStepStageTests(string strategy)
{
    public static IEnumerable<string> Strategies => WaitStrategy.Names;

    private PipelineBuilder<TestEvent> Builder(int size) =>
        new(new RingSettings { Size = size, Wait = WaitStrategy.Parse(strategy) });

    private static void Publish(RingBuffer<TestEvent> ring, long count)
    {
        for (long i = 0; i < count; i++)
        {
            using var claim = ring.Claim();
            claim.Slot.Value = claim.Sequence;
        }
    }

    /// <summary>What the test's gate lets through and how it tells; what the stage did, as seen from its thread.</summary>
    private sealed class Gatekeeper
    {
        public long OpenThrough = -1;
        public volatile bool Blocks;
        public readonly ManualResetEventSlim BlockReleased = new(false);
        public long Blocked;
        public long FailAt = long.MaxValue;
        public long Taken = -1;
        public long Passed = -1;
        public readonly Recorder Recorder = new();
    }

    private struct GatedHandler(Gatekeeper keeper) : ITwoStepHandler<TestEvent>
    {
        public readonly void Take(ref TestEvent slot, long sequence, bool endOfBatch)
        {
            if (sequence != Volatile.Read(ref keeper.Taken) + 1)
            {
                keeper.Recorder.Violation($"took {sequence} after {keeper.Taken}");
            }
            slot.StampA = sequence;
            Volatile.Write(ref keeper.Taken, sequence);
        }

        public readonly GateState Gate(ref TestEvent slot, long sequence)
        {
            if (sequence >= keeper.FailAt)
            {
                throw new InvalidOperationException($"the gate fails at {sequence}");
            }
            return sequence <= Volatile.Read(ref keeper.OpenThrough) ? GateState.Open
                : keeper.Blocks ? GateState.Blocking
                : GateState.Signalled;
        }

        public readonly void Block(ref TestEvent slot, long sequence)
        {
            Interlocked.Increment(ref keeper.Blocked);
            keeper.BlockReleased.Wait(TimeSpan.FromSeconds(30));
        }

        public readonly void Pass(ref TestEvent slot, long sequence, bool endOfBatch)
        {
            if (slot.StampA != sequence || sequence > Volatile.Read(ref keeper.Taken))
            {
                keeper.Recorder.Violation($"passed {sequence} before it was taken");
            }
            if (sequence > Volatile.Read(ref keeper.OpenThrough))
            {
                keeper.Recorder.Violation($"passed {sequence} through a shut gate");
            }
            if (sequence != Volatile.Read(ref keeper.Passed) + 1)
            {
                keeper.Recorder.Violation($"passed {sequence} after {keeper.Passed}");
            }
            Volatile.Write(ref keeper.Passed, sequence);
        }
    }

    [Test]
    public void Takes_ahead_of_a_shut_gate_then_passes_in_order_as_it_opens()
    {
        var keeper = new Gatekeeper();
        var builder = Builder(16);
        Stage stage = builder.AddTwoStepStage("seal-ahead", new GatedHandler(keeper));
        var after = new Recorder();
        builder.AddStage("after", new InOrderHandler(after), stage);
        using var pipeline = builder.Start();

        Publish(pipeline.Ring, 10);
        Until.True(() => Volatile.Read(ref keeper.Taken) == 9, "all ten taken while the gate is shut");
        Assert.Multiple(() =>
        {
            Assert.That(Volatile.Read(ref keeper.Passed), Is.EqualTo(-1), "nothing passed a shut gate");
            Assert.That(stage.Progress, Is.EqualTo(-1), "the stage's sequence is what it passed");
            Assert.That(after.Handled, Is.Zero);
        });

        // Open it in two steps; the gate's opener signals the ring, as the backup's acknowledgement does.
        Volatile.Write(ref keeper.OpenThrough, 3);
        pipeline.Ring.Wait.Signal();
        Until.True(() => stage.Progress == 3, "the stage passing 0..3");
        Publish(pipeline.Ring, 2);
        Until.True(() => Volatile.Read(ref keeper.Taken) == 11, "new events taken while 4.. wait");
        Assert.That(stage.Progress, Is.EqualTo(3));
        Volatile.Write(ref keeper.OpenThrough, long.MaxValue);
        pipeline.Ring.Wait.Signal();
        Until.True(() => Volatile.Read(ref after.LastSequence) == 11, "everything through the next stage");
        Assert.Multiple(() =>
        {
            Assert.That(keeper.Recorder.Violations, Is.Empty);
            Assert.That(after.Violations, Is.Empty);
            Assert.That(after.Handled, Is.EqualTo(12));
        });
    }

    [Test]
    public void Producers_cannot_lap_events_taken_but_not_passed()
    {
        var keeper = new Gatekeeper();
        var builder = Builder(4);
        builder.AddTwoStepStage("seal-ahead", new GatedHandler(keeper));
        using var pipeline = builder.Start();

        Publish(pipeline.Ring, 4);
        Until.True(() => Volatile.Read(ref keeper.Taken) == 3, "the ring's four events taken");
        Assert.That(pipeline.Ring.TryNext(out _), Is.EqualTo(ClaimStatus.Full), "taken is not passed: the slots are still held");

        Volatile.Write(ref keeper.OpenThrough, long.MaxValue);
        pipeline.Ring.Wait.Signal();
        Until.True(() => Volatile.Read(ref keeper.Passed) == 3, "the four passed");
        Publish(pipeline.Ring, 8);
        Until.True(() => Volatile.Read(ref keeper.Passed) == 11, "the next eight through a ring of four");
        Assert.That(keeper.Recorder.Violations, Is.Empty);
    }

    [Test]
    public void A_blocking_gate_is_waited_for_in_Block_only_when_nothing_else_is_readable()
    {
        var keeper = new Gatekeeper();
        var builder = Builder(16);
        Stage stage = builder.AddTwoStepStage("seal-ahead", new GatedHandler(keeper));
        using var pipeline = builder.Start();

        Publish(pipeline.Ring, 3);
        Until.True(() => Volatile.Read(ref keeper.Taken) == 2, "the three taken while the gate is shut");
        Assert.That(Interlocked.Read(ref keeper.Blocked), Is.Zero, "a signalled gate is waited for in the ring's park, not in Block");

        // Now shut by something that does not signal the ring (a disk commit).
        keeper.Blocks = true;
        pipeline.Ring.Wait.Signal();
        Until.True(() => Interlocked.Read(ref keeper.Blocked) == 1, "the stage waiting in Block, having nothing else to take");

        // Opened while it blocks, as a commit completes: Block returns and the stage passes.
        Volatile.Write(ref keeper.OpenThrough, long.MaxValue);
        keeper.BlockReleased.Set();
        Until.True(() => stage.Progress == 2, "the three passed after the block");
        Assert.That(keeper.Recorder.Violations, Is.Empty);
    }

    [Test]
    public void A_failing_gate_halts_the_pipeline_at_its_event()
    {
        var keeper = new Gatekeeper { OpenThrough = long.MaxValue, FailAt = 5 };
        var builder = Builder(16);
        Stage stage = builder.AddTwoStepStage("seal-ahead", new GatedHandler(keeper));
        var pipeline = builder.Start();

        // Sequences 0..5: the failing one is the last published, so the halt cannot race a claim.
        Publish(pipeline.Ring, 6);
        Until.True(() => pipeline.Completion.IsCompleted, "the stage thread ending after the halt");
        Assert.Multiple(() =>
        {
            Assert.That(pipeline.Status, Is.EqualTo(PipelineStatus.Halted));
            Assert.That(pipeline.Fault!.Stage, Is.EqualTo("seal-ahead"));
            Assert.That(pipeline.Fault.Sequence, Is.EqualTo(5));
            Assert.That(pipeline.Fault.Error.Message, Is.EqualTo("the gate fails at 5"));
            Assert.That(stage.Progress, Is.LessThanOrEqualTo(4), "nothing at or after the failed gate passed");
            Assert.That(stage.Faults, Is.EqualTo(1));
        });
        Assert.That(pipeline.Shutdown(TimeSpan.FromSeconds(5)), Is.False);
    }
}
