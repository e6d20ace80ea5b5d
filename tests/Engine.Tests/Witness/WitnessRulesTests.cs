using Engine.Replication;

namespace Engine.Tests.Witness;

/// <summary>The witness's decisions as pure functions: epoch bound, configured nodes only, sticky lease, release only by the holder.</summary>
public class WitnessRulesTests
{
    private const int LeaseMs = 1000;
    private static readonly HashSet<string> s_nodes = ["a", "b"];

    private static WitnessDecision Acquire(WitnessState state, string node, ulong epoch) => WitnessRules.Acquire(state, s_nodes.Contains, node, epoch, LeaseMs);

    [Test]
    public void A_free_lease_goes_to_a_configured_node_and_records_its_epoch()
    {
        WitnessDecision d = Acquire(WitnessState.Empty, "a", 1);
        Assert.That(d.Answer, Is.EqualTo(new WitnessAnswer.Granted(LeaseMs)));
        Assert.That(d.Next, Is.EqualTo(new WitnessState("a", 1, 1)));
    }

    [Test]
    public void Only_configured_nodes_get_the_lease()
    {
        WitnessState state = new("a", 3, 3);
        foreach (string stranger in new[] { "observer-1", "operator", "witness", "A", "" })
        {
            WitnessDecision d = Acquire(WitnessState.Empty, stranger, 1);
            Assert.That(d.Answer, Is.EqualTo(new WitnessAnswer.Denied(null, 0, WitnessRefusal.UnknownNode)), stranger);
            Assert.That(d.Next, Is.EqualTo(WitnessState.Empty), $"{stranger}: nothing recorded");
            Assert.That(Acquire(state, stranger, 4).Next, Is.EqualTo(state), $"{stranger}: the holder keeps it");
        }
    }

    [Test]
    public void The_lease_is_sticky_the_holder_renews_and_nobody_else_gets_it()
    {
        WitnessState held = Acquire(WitnessState.Empty, "a", 1).Next;
        Assert.That(Acquire(held, "a", 1).Answer, Is.EqualTo(new WitnessAnswer.Granted(LeaseMs)), "the holder renews");
        Assert.That(Acquire(held, "a", 1).Next, Is.EqualTo(held), "a renewal changes nothing");
        WitnessDecision other = Acquire(held, "b", 2);
        Assert.That(other.Answer, Is.EqualTo(new WitnessAnswer.Denied("a", 1, WitnessRefusal.Held)));
        Assert.That(other.Next, Is.EqualTo(held), "a refused takeover records nothing: no fence on a");
    }

    [Test]
    public void Release_only_by_the_holder()
    {
        WitnessState held = new("a", 1, 1);
        WitnessDecision stranger = WitnessRules.Release(held, "b");
        Assert.That(stranger.Answer, Is.EqualTo(new WitnessAnswer.NotHolder("a")));
        Assert.That(stranger.Next, Is.EqualTo(held));
        WitnessDecision holder = WitnessRules.Release(held, "a");
        Assert.That(holder.Answer, Is.EqualTo(new WitnessAnswer.Released()));
        Assert.That(holder.Next, Is.EqualTo(new WitnessState(null, 1, 1)), "the fence stays");
        Assert.That(WitnessRules.Release(holder.Next, "a").Answer, Is.EqualTo(new WitnessAnswer.NotHolder(null)), "twice: nothing to give back");
        Assert.That(Acquire(holder.Next, "b", 2).Answer, Is.EqualTo(new WitnessAnswer.Granted(LeaseMs)), "released: the other node may take over");
    }

    [Test]
    public void Never_backwards_in_epoch_an_old_primary_is_fenced()
    {
        WitnessState afterTakeover = new(null, 2, 2);
        WitnessDecision d = Acquire(afterTakeover, "a", 1);
        Assert.That(d.Answer, Is.EqualTo(new WitnessAnswer.Denied(null, 2, WitnessRefusal.Fenced)));
        Assert.That(d.Next, Is.EqualTo(afterTakeover));
    }

    [Test]
    public void Never_more_than_one_epoch_above_the_highest_granted()
    {
        WitnessState state = new(null, 1, 1);
        Assert.That(Acquire(state, "b", 2).Answer, Is.InstanceOf<WitnessAnswer.Granted>(), "a takeover: highest + 1");
        foreach (ulong epoch in new[] { 3UL, 4UL, 1UL << 32, ulong.MaxValue - 1, ulong.MaxValue })
        {
            WitnessDecision d = Acquire(state, "b", epoch);
            Assert.That(d.Answer, Is.EqualTo(new WitnessAnswer.Denied(null, 1, WitnessRefusal.EpochTooHigh)), $"epoch {epoch}");
            Assert.That(d.Next, Is.EqualTo(state), $"epoch {epoch}: not recorded, so no real node is fenced");
        }
        // Also when the holder asks: it cannot lift the fence it would put on the other node.
        WitnessState held = new("a", 1, 1);
        Assert.That(Acquire(held, "a", 3).Answer, Is.EqualTo(new WitnessAnswer.Denied("a", 1, WitnessRefusal.EpochTooHigh)));
    }

    [Test]
    public void A_witness_that_granted_nothing_takes_the_first_epoch_as_it_comes_but_never_the_last_one()
    {
        // A new witness (or one restarted without --state) beside a pair that has been through takeovers.
        Assert.That(Acquire(WitnessState.Empty, "a", 7).Next, Is.EqualTo(new WitnessState("a", 7, 7)));
        WitnessDecision last = Acquire(WitnessState.Empty, "a", ulong.MaxValue);
        Assert.That(last.Answer, Is.EqualTo(new WitnessAnswer.Denied(null, 0, WitnessRefusal.EpochTooHigh)), "2^64-1 leaves no epoch to take over in");
        Assert.That(last.Next, Is.EqualTo(WitnessState.Empty));
    }

    [Test]
    public void No_sequence_of_requests_breaks_the_invariants()
    {
        // Every decision from every reachable state: the highest never falls, the holder changes only by
        // release or a grant to a node, and at most one epoch is added per grant.
        var random = new Random(20261202);
        TestContext.Out.WriteLine("seed 20261202");
        string[] askers = ["a", "b", "observer"];
        for (int run = 0; run < 200; run++)
        {
            WitnessState state = WitnessState.Empty;
            for (int step = 0; step < 50; step++)
            {
                string who = askers[random.Next(askers.Length)];
                ulong around = Math.Max(1, state.HighestEpoch);
                int delta = random.Next(-1, 3);
                ulong epoch = delta < 0 ? Math.Max(1, around - 1) : around + (ulong)delta;
                WitnessDecision d = random.Next(3) == 0 ? WitnessRules.Release(state, who) : Acquire(state, who, epoch);
                d.Next.AssertInvariants();
                Assert.That(d.Next.HighestEpoch, Is.GreaterThanOrEqualTo(state.HighestEpoch), "the fence never falls");
                Assert.That(state.HighestEpoch == 0 || d.Next.HighestEpoch <= state.HighestEpoch + 1, "at most one epoch forward");
                if (d.Next.Holder != state.Holder)
                {
                    Assert.That(d.Answer, Is.InstanceOf<WitnessAnswer.Granted>().Or.InstanceOf<WitnessAnswer.Released>());
                    Assert.That(state.Holder is null || d.Answer is WitnessAnswer.Released, "a held lease only changes hands through a release");
                }
                Assert.That(d.Next.Holder, Is.Null.Or.AnyOf("a", "b"));
                state = d.Next;
            }
        }
    }
}
