using Engine.Replication.Pair;
using Engine.Sim;

namespace Engine.Tests.Sim;

/// <summary>
/// The pair's deterministic simulator (tools/Engine.Sim): the real <see cref="PairNode"/>, chain and
/// Exchange on simulated time, network, journal and witness, a seed deciding every fault. In the default
/// run: a thousand seeds with no safety violation, a seed that replays byte for byte, and every
/// deliberate bug found within its seed budget. A longer run: <c>dotnet run -c Release --project
/// tools/Engine.Sim -- --seeds 100000</c> (docs/simulation.md).
/// </summary>
public class SimulatorTests
{
    /// <summary>Seeds in the default run: none may break safety, and none may end with the pair not whole or a request unanswered (liveness, see docs/simulation.md).</summary>
    private const int Seeds = 1_000;

    [Test]
    public void A_thousand_seeds_of_faults_lose_double_and_split_nothing_and_every_one_heals()
    {
        var safety = new List<SimResult>();
        var stuckSeeds = new List<SimResult>();
        int stuck = 0;
        Parallel.For(1, Seeds + 1, new ParallelOptions { MaxDegreeOfParallelism = 2 }, seed =>
        {
            SimResult result = new SimWorld(seed).Run();
            lock (safety)
            {
                if (result.Violation is not null && !result.Liveness)
                {
                    safety.Add(result);
                }
                if (result.Violation is not null && result.Liveness)
                {
                    stuck++;
                    stuckSeeds.Add(result);
                }
            }
        });
        TestContext.Out.WriteLine($"{Seeds} seeds: {safety.Count} safety violations, {stuck} did not heal without the operator within the quiet period");
        SimResult? first = safety.OrderBy(r => r.Seed).FirstOrDefault();
        Assert.That(first, Is.Null, first is null ? "" : $"seed {first.Seed}: {first.Violation}\n{string.Join('\n', first.Trace)}");
        // Deterministic: the same seeds give the same runs, so this fails only when the code changes.
        SimResult? firstStuck = stuckSeeds.OrderBy(r => r.Seed).FirstOrDefault();
        Assert.That(firstStuck, Is.Null, firstStuck is null ? "" : $"seed {firstStuck.Seed} did not heal: {firstStuck.Violation}");
    }

    [Test]
    public void A_seed_replays_exactly_the_same_trace()
    {
        // The first seed with crashes, partitions and a takeover in it (which one depends on the pair's logic).
        SimWorld first = null!;
        int seed = 1;
        for (; seed <= 100; seed++)
        {
            first = new SimWorld(seed, keepFullTrace: true);
            first.Run();
            if (first.FullTrace.Any(l => l.Contains("take_over", StringComparison.Ordinal)))
            {
                break;
            }
        }
        Assert.That(first.FullTrace.Any(l => l.Contains("take_over", StringComparison.Ordinal)), Is.True, "a seed in the first 100 has a takeover");
        var second = new SimWorld(seed, keepFullTrace: true);
        second.Run();
        Assert.That(first.FullTrace, Has.Count.GreaterThan(50));
        Assert.That(second.FullTrace, Is.EqualTo(first.FullTrace));
        Assert.That(second.Clock.Steps, Is.EqualTo(first.Clock.Steps));
        Assert.That(second.Nodes.Select(n => n.Chain.HashOf(n.Chain.Count - 1)), Is.EqualTo(first.Nodes.Select(n => n.Chain.HashOf(n.Chain.Count - 1))), "the same chains");
        Assert.That(second.Nodes.Select(n => n.Device.CommittedUntil), Is.EqualTo(first.Nodes.Select(n => n.Device.CommittedUntil)), "the same journals on the devices");
    }

    /// <summary>Each deliberate bug makes the simulator report a safety violation within its seed budget.</summary>
    /// <remarks>
    /// Budgets about 1.3× the seed that found each on 2026-12-03, 20:00 UTC (1, 242, 1, 7, 32, with compaction and snapshot installs; before the streamed catch-up 1, 69, 1, 7, 32),
    /// at least 20: the seeds move whenever the simulated world or the pair's rules change (the same
    /// mutations were found at 1, 363, 945, 1, 7, 32 before the nodes took snapshots, and at 1, 20, 2, 2,
    /// 4 and 505 before the head probe), so a budget is
    /// re-measured with <c>engine-sim --mutation</c> when one fails. Seeds run two at a time, and the
    /// lowest violating seed of a batch counts, so the result does not depend on the threads.
    /// TakeOverWhileCatchingUp is not here: with the sticky witness the primary holds the lease until
    /// the catch-up is acknowledged, so the witness refuses that takeover and no seed can show the bug
    /// (none in 5,500); nor TakeOverOnAnyPeerHead (none in 3,000): <c>PairNodeTests</c> pins both down.
    /// </remarks>
    [TestCase(PairMutation.AckBeforeBackup, WitnessMutation.None, 20)]
    [TestCase(PairMutation.IgnoreHigherEpochHello, WitnessMutation.None, 320)]
    [TestCase(PairMutation.TakeOverWithoutWitness, WitnessMutation.None, 20)]
    [TestCase(PairMutation.None, WitnessMutation.NotSticky, 20)]
    [TestCase(PairMutation.None, WitnessMutation.ResumesAnyone, 360)] // found at 356 since a new ledger starts with its reference data (at 50 before)
    public void A_deliberate_bug_is_found(PairMutation mutation, WitnessMutation witnessMutation, int budget) => Search(mutation, witnessMutation, budget);

    /// <summary>
    /// Since the catch-up is streamed, a primary that gives the lease back once the catch-up is sent
    /// has given it back with at most <see cref="PairNode.CatchUpWindow"/> batches unacknowledged
    /// (before, the whole history): the window is small, and the first seed that shows it moved from
    /// 1,236 to 2,914, over two minutes of the default run. <c>PairNodeTests</c> pins the rule down
    /// in the default run; this is the simulator's search, on demand.
    /// </summary>
    [Test]
    [Explicit("about 2.5 minutes: run with --filter Name~lease_released_on_catch_up_sent")]
    public void A_lease_released_on_catch_up_sent_is_found() => Search(PairMutation.ReleaseLeaseOnCatchUpSent, WitnessMutation.None, 3800);

    private static void Search(PairMutation mutation, WitnessMutation witnessMutation, int budget)
    {
        const int Batch = 2;
        int found = 0;
        for (int first = 1; first <= budget && found == 0; first += Batch)
        {
            var results = new SimResult[Math.Min(Batch, budget - first + 1)];
            Parallel.For(0, results.Length, i => results[i] = new SimWorld(first + i, mutation, witnessMutation).Run());
            if (results.FirstOrDefault(r => r.Violation is not null && !r.Liveness) is { } violated)
            {
                found = violated.Seed;
                TestContext.Out.WriteLine($"found at seed {found}: {violated.Violation}");
            }
        }
        Assert.That(found, Is.Not.Zero, $"{mutation} {witnessMutation}: no safety violation in {budget} seeds");
    }
}
