using Engine.Core.Ring;
using Engine.Tests.Support;

namespace Engine.Tests.Ring;

/// <summary>
/// The contract every wait strategy must keep, run once per preset. Rings are tiny (4-16 slots)
/// so wrap-around, full rings and gating happen within the first events.
/// </summary>
[TestFixtureSource(nameof(Strategies))]
public class RingContractTests(string strategy)
{
    public static IEnumerable<string> Strategies => WaitStrategy.Names;

    // Busy-spin burns a core per waiting thread; with more threads than the 2 cores here, each
    // hand-over waits for a time slice (~1 ms). Its fixture runs the same checks on fewer events.
    private long Events(long count) => strategy == "busy-spin" ? Math.Max(count / 20, 100) : count;

    private PipelineBuilder<TestEvent> Builder(int size, ProducerKind producers = ProducerKind.Single, Action<StageFault>? onFault = null) =>
        new(new RingSettings { Size = size, Producers = producers, Wait = WaitStrategy.Parse(strategy), OnFault = onFault });

    private static void Publish(RingBuffer<TestEvent> ring, long count)
    {
        for (long i = 0; i < count; i++)
        {
            using var claim = ring.Claim();
            claim.Slot.Value = claim.Sequence;
        }
    }

    [Test]
    public void Single_producer_wraps_a_tiny_ring_in_order_without_overrun([Values] ProducerKind producers)
    {
        var recorder = new Recorder();
        var builder = Builder(4, producers);
        builder.AddStage("in-order", new InOrderHandler(recorder));
        using var pipeline = builder.Start();

        long events = Events(20_000);
        Publish(pipeline.Ring, events);

        Until.True(() => Volatile.Read(ref recorder.LastSequence) == events - 1, $"the stage reaching {events - 1}");
        Assert.Multiple(() =>
        {
            Assert.That(recorder.Violations, Is.Empty);
            Assert.That(recorder.Handled, Is.EqualTo(events));
        });
        pipeline.Ring.Sequencer.AssertInvariants();
    }

    [Test]
    public void Claims_in_batches_are_published_and_seen_as_one_range()
    {
        var recorder = new Recorder();
        var builder = Builder(16);
        builder.AddStage("in-order", new InOrderHandler(recorder));
        using var pipeline = builder.Start();
        var ring = pipeline.Ring;
        var random = new Random(7);

        long published = 0;
        while (published < 10_000)
        {
            int n = random.Next(1, 17);
            long high = ring.Next(n);
            for (long s = high - n + 1; s <= high; s++)
            {
                ring[s].Value = s;
            }
            ring.Publish(high - n + 1, high);
            published = high + 1;
        }

        Until.True(() => Volatile.Read(ref recorder.LastSequence) == published - 1, $"the stage reaching {published - 1}");
        Assert.That(recorder.Violations, Is.Empty, "seed 7");
    }

    [Test]
    public void TryNext_reports_full_while_the_stage_is_held_and_claims_again_after([Values] ProducerKind producers)
    {
        var recorder = new Recorder();
        using var gate = new ManualResetEventSlim(false);
        var builder = Builder(4, producers);
        builder.AddStage("held", new GatedHandler(gate, recorder));
        using var pipeline = builder.Start();
        var ring = pipeline.Ring;

        for (int i = 0; i < 4; i++)
        {
            Assert.That(ring.TryNext(out long s), Is.EqualTo(ClaimStatus.Claimed));
            ring.Publish(s);
        }
        Assert.Multiple(() =>
        {
            Assert.That(ring.TryNext(out _), Is.EqualTo(ClaimStatus.Full), "a fifth claim on a ring of 4 whose stage has handled nothing");
            Assert.That(ring.TryNext(out _), Is.EqualTo(ClaimStatus.Full), "and again");
        });

        gate.Set();
        // Progress, not the handler's count: the stage publishes its sequence after the batch,
        // and only that frees the slots.
        Until.True(() => pipeline.Stages[0].Progress == 3, "the stage finishing the first 4");
        Assert.That(ring.TryNext(out long fifth), Is.EqualTo(ClaimStatus.Claimed));
        Assert.That(fifth, Is.EqualTo(4));
        ring.Publish(fifth);
        Until.True(() => recorder.Handled == 5, "the stage handling the fifth");
    }

    [Test]
    public void A_blocked_claim_waits_for_the_stage_and_goes_on_when_it_moves()
    {
        var recorder = new Recorder();
        using var gate = new ManualResetEventSlim(false);
        var builder = Builder(4);
        builder.AddStage("held", new GatedHandler(gate, recorder));
        using var pipeline = builder.Start();
        var ring = pipeline.Ring;
        Publish(ring, 4);

        long claimedFifth = -1;
        var producer = new Thread(() => { long s = ring.Next(); Volatile.Write(ref claimedFifth, s); ring.Publish(s); });
        producer.Start();

        // The claim cannot complete while the stage holds all four slots (the gate is shut, so
        // the stage's progress stays at -1 and the ring is full): the fifth sequence is unclaimed.
        Assert.That(Volatile.Read(ref claimedFifth), Is.EqualTo(-1));
        Assert.That(pipeline.Stages[0].Progress, Is.EqualTo(-1));

        gate.Set();
        Until.True(() => !producer.IsAlive, "the blocked producer finishing its claim");
        Assert.That(claimedFifth, Is.EqualTo(4));
        Until.True(() => recorder.Handled == 5, "the stage handling all five");
    }

    [Test]
    public void Several_producers_each_event_seen_once_in_order_per_producer()
    {
        const int Producers = 4;
        long perProducer = Events(50_000);
        var recorder = new Recorder();
        var last = new long[Producers];
        Array.Fill(last, -1);
        var builder = Builder(16, ProducerKind.Multi);
        builder.AddStage("per-producer", new PerProducerHandler(last, recorder));
        using var pipeline = builder.Start();
        var ring = pipeline.Ring;

        Exception? producerError = null;
        var threads = Enumerable.Range(0, Producers).Select(p => new Thread(() =>
        {
            try
            {
                Produce(p);
            }
            catch (Exception e)
            {
                producerError = e; // a failed test closes the ring under the producers: report, don't crash the host
            }
        })).ToList();
        var started = System.Diagnostics.Stopwatch.StartNew();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => Assert.That(t.Join(Until.DefaultTimeout), Is.True, $"a producer finishing (handled {recorder.Handled} after {started.Elapsed})"));
        Assert.That(producerError, Is.Null);

        void Produce(int p)
        {
            for (long i = 0; i < perProducer; i++)
            {
                // Half the producers block on a full ring, half spin on TryNext: both paths race.
                long s;
                if (p % 2 == 0)
                {
                    s = ring.Next();
                }
                else
                {
                    while (ring.TryNext(out s) != ClaimStatus.Claimed)
                    {
                        Thread.Yield();
                    }
                }
                ref TestEvent slot = ref ring[s];
                slot.Producer = p;
                slot.ProducerSeq = i;
                ring.Publish(s);
            }
        }

        Until.True(() => recorder.Handled == Producers * perProducer, $"the stage handling {Producers * perProducer}");
        Assert.Multiple(() =>
        {
            Assert.That(recorder.Violations, Is.Empty);
            Assert.That(last, Is.All.EqualTo(perProducer - 1));
            Assert.That(pipeline.Ring.Cursor, Is.EqualTo(Producers * perProducer - 1));
        });
        pipeline.Ring.Sequencer.AssertInvariants();
    }

    [Test]
    public void Pipeline_of_three_stages_never_lets_a_stage_pass_its_upstream()
    {
        var recorder = new Recorder();
        var builder = Builder(8);
        Stage a = builder.AddStage("A", new StampHandler('A', recorder, []));
        Stage b = builder.AddStage("B", new StampHandler('B', recorder, [a]), a);
        builder.AddStage("C", new StampHandler('C', recorder, [b]), b);
        using var pipeline = builder.Start();

        long events = Events(30_000);
        Publish(pipeline.Ring, events);

        Until.True(() => pipeline.HasHandled(events - 1), $"all three stages reaching {events - 1}");
        Assert.That(recorder.Violations, Is.Empty);
        Assert.That(recorder.Handled, Is.EqualTo(3 * events));
    }

    [Test]
    public void Diamond_joins_only_after_both_branches()
    {
        var recorder = new Recorder();
        var builder = Builder(8);
        Stage a = builder.AddStage("A", new StampHandler('A', recorder, []));
        Stage b = builder.AddStage("B", new StampHandler('B', recorder, []));
        builder.AddStage("C", new StampHandler('C', recorder, [a, b]), a, b);
        using var pipeline = builder.Start();

        long events = Events(30_000);
        Publish(pipeline.Ring, events);

        Until.True(() => pipeline.HasHandled(events - 1), $"every stage reaching {events - 1}");
        Assert.That(recorder.Violations, Is.Empty);
        Assert.That(recorder.Handled, Is.EqualTo(3 * events));
    }

    [Test]
    public void A_throwing_handler_halts_the_pipeline_and_says_where()
    {
        var recorder = new Recorder();
        var downstream = new Recorder();
        var reported = new List<StageFault>();
        var builder = Builder(8, onFault: f => { lock (reported) { reported.Add(f); } });
        Stage thrower = builder.AddStage("thrower", new ThrowingHandler(5, recorder));
        builder.AddStage("after", new InOrderHandler(downstream), thrower);
        var pipeline = builder.Start();

        // Sequences 0..5: the failing one is the last published, so the halt cannot race a claim.
        Publish(pipeline.Ring, 6);

        Until.True(() => pipeline.Completion.IsCompleted, "both stage threads ending after the halt");
        Assert.Multiple(() =>
        {
            Assert.That(pipeline.Status, Is.EqualTo(PipelineStatus.Halted));
            Assert.That(pipeline.Fault, Is.Not.Null);
            Assert.That(pipeline.Fault!.Stage, Is.EqualTo("thrower"));
            Assert.That(pipeline.Fault.Sequence, Is.EqualTo(5));
            Assert.That(pipeline.Fault.Error.Message, Is.EqualTo("boom at 5"));
            Assert.That(pipeline.Fault.ToString(), Does.Contain("stage 'thrower' failed at sequence 5"));
            Assert.That(reported, Has.Count.EqualTo(1));
            Assert.That(pipeline.Completion.IsFaulted, Is.True);
            Assert.That(pipeline.Completion.Exception!.InnerException, Is.TypeOf<PipelineHaltedException>());
            Assert.That(thrower.Progress, Is.EqualTo(4), "the failed event is not counted as handled");
            Assert.That(thrower.Faults, Is.EqualTo(1));
            Assert.That(downstream.LastSequence, Is.LessThanOrEqualTo(4), "nothing downstream sees the failed event");
            Assert.That(pipeline.Ring.TryNext(out _), Is.EqualTo(ClaimStatus.Halted));
            Assert.Throws<PipelineHaltedException>(() => pipeline.Ring.Next());
        });
        Assert.That(pipeline.Shutdown(TimeSpan.FromSeconds(5)), Is.False, "a halted pipeline does not report a clean shutdown");
    }

    [Test]
    public void A_producer_blocked_on_a_full_ring_is_released_by_a_halt()
    {
        var recorder = new Recorder();
        var builder = Builder(4);
        builder.AddStage("thrower", new ThrowingHandler(0, recorder));
        using var pipeline = builder.Start();
        var ring = pipeline.Ring;

        Exception? caught = null;
        var producer = new Thread(() =>
        {
            try
            {
                Publish(ring, 100); // the stage halts at 0, so the fifth claim can never get room
            }
            catch (Exception e)
            {
                caught = e;
            }
        });
        producer.Start();

        Assert.That(producer.Join(Until.DefaultTimeout), Is.True, "the producer returning instead of waiting forever");
        Assert.That(caught, Is.TypeOf<PipelineHaltedException>());
        Assert.That(((PipelineHaltedException)caught!).Fault!.Sequence, Is.Zero);
    }

    [Test]
    public void Skip_policy_reports_and_goes_on()
    {
        var recorder = new Recorder();
        var reported = new List<StageFault>();
        var builder = Builder(8, onFault: f => { lock (reported) { reported.Add(f); } });
        Stage stage = builder.AddStage("skipper", new ThrowingHandler(5, recorder), FaultPolicy.Skip);
        using var pipeline = builder.Start();

        Publish(pipeline.Ring, 100);

        Until.True(() => stage.Progress == 99, "the stage reaching 99");
        Assert.Multiple(() =>
        {
            Assert.That(recorder.Handled, Is.EqualTo(99));
            Assert.That(stage.Faults, Is.EqualTo(1));
            Assert.That(reported.Single().Sequence, Is.EqualTo(5));
            Assert.That(reported.Single().Policy, Is.EqualTo(FaultPolicy.Skip));
            Assert.That(pipeline.Status, Is.EqualTo(PipelineStatus.Running));
            Assert.That(pipeline.Fault, Is.Null);
        });
    }

    [Test]
    public void Shutdown_drains_everything_published_then_refuses_new_claims()
    {
        var recorder = new Recorder();
        using var gate = new ManualResetEventSlim(false);
        var builder = Builder(64);
        builder.AddStage("held", new GatedHandler(gate, recorder));
        var pipeline = builder.Start();
        Publish(pipeline.Ring, 50);

        var shutdown = Task.Run(() => pipeline.Shutdown(Until.DefaultTimeout));
        Until.True(() => pipeline.Status == PipelineStatus.Closed, "shutdown closing the ring");
        Assert.That(pipeline.Ring.TryNext(out _), Is.EqualTo(ClaimStatus.Closed));
        gate.Set();

        Assert.That(shutdown.Wait(Until.DefaultTimeout), Is.True, "shutdown returning");
        Assert.Multiple(() =>
        {
            Assert.That(shutdown.Result, Is.True, "drained cleanly");
            Assert.That(recorder.Handled, Is.EqualTo(50), "every published event handled before the stop");
            Assert.That(pipeline.Completion.IsCompletedSuccessfully, Is.True);
            Assert.Throws<InvalidOperationException>(() => pipeline.Ring.Next());
        });
    }

    [Test]
    public void Shutdown_of_a_stuck_stage_gives_up_after_its_timeout()
    {
        var recorder = new Recorder();
        using var gate = new ManualResetEventSlim(false);
        var builder = Builder(8);
        builder.AddStage("stuck", new GatedHandler(gate, recorder));
        var pipeline = builder.Start();
        Publish(pipeline.Ring, 3);

        Assert.That(pipeline.Shutdown(TimeSpan.FromMilliseconds(200)), Is.False);
        gate.Set(); // let the stage thread finish now
        Until.True(() => pipeline.Completion.IsCompleted, "the released stage ending");
    }

    [Test]
    public void Ping_pong_never_loses_a_wake_up()
    {
        // Every event is published to a stage that has caught up and (for parking strategies)
        // parked: 2,000 park/wake cycles. A lost wake-up leaves the stage asleep and times out.
        var recorder = new Recorder();
        var builder = Builder(4);
        Stage stage = builder.AddStage("echo", new InOrderHandler(recorder));
        using var pipeline = builder.Start();
        var ring = pipeline.Ring;
        for (long i = 0; i < 2_000; i++)
        {
            long s = ring.Next();
            ring[s].Value = s;
            ring.Publish(s);
            Until.True(() => stage.Progress == s, $"the stage handling {s}", TimeSpan.FromSeconds(10));
        }
        Assert.That(recorder.Violations, Is.Empty);
    }
}
