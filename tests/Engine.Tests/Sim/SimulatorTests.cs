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
    /// <summary>Seeds in the default run; liveness failures (the pair not healed alone) are counted, not failed: see docs/simulation.md.</summary>
    private const int Seeds = 1_000;

    [Test]
    public void A_thousand_seeds_of_faults_lose_double_and_split_nothing()
    {
        var safety = new List<SimResult>();
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
                stuck += result.Violation is not null && result.Liveness ? 1 : 0;
            }
        });
        TestContext.Out.WriteLine($"{Seeds} seeds: {safety.Count} safety violations, {stuck} did not heal without the operator within the quiet period");
        SimResult? first = safety.OrderBy(r => r.Seed).FirstOrDefault();
        Assert.That(first, Is.Null, first is null ? "" : $"seed {first.Seed}: {first.Violation}\n{string.Join('\n', first.Trace)}");
    }

    [Test]
    public void A_seed_replays_exactly_the_same_trace()
    {
        // A seed with crashes, partitions and a takeover in it.
        var first = new SimWorld(29, keepFullTrace: true);
        first.Run();
        var second = new SimWorld(29, keepFullTrace: true);
        second.Run();
        Assert.That(first.FullTrace, Has.Count.GreaterThan(50));
        Assert.That(first.FullTrace.Any(l => l.Contains("take_over", StringComparison.Ordinal)), Is.True, "the seed has a takeover");
        Assert.That(second.FullTrace, Is.EqualTo(first.FullTrace));
        Assert.That(second.Clock.Steps, Is.EqualTo(first.Clock.Steps));
        Assert.That(second.Nodes.Select(n => n.Ledger.Head.Hash), Is.EqualTo(first.Nodes.Select(n => n.Ledger.Head.Hash)), "the same chains");
    }

    /// <summary>Each deliberate bug makes the simulator report a safety violation within its seed budget.</summary>
    [TestCase(PairMutation.AckBeforeBackup, false, 50)]
    [TestCase(PairMutation.TakeOverWhileCatchingUp, false, 600)]
    [TestCase(PairMutation.IgnoreHigherEpochHello, false, 200)]
    [TestCase(PairMutation.ReleaseLeaseOnCatchUpSent, false, 200)]
    [TestCase(PairMutation.None, true, 100)]
    public void A_deliberate_bug_is_found(PairMutation mutation, bool witnessNotSticky, int budget)
    {
        int found = 0;
        for (int seed = 1; seed <= budget && found == 0; seed++)
        {
            SimResult result = new SimWorld(seed, mutation, witnessNotSticky).Run();
            if (result.Violation is not null && !result.Liveness)
            {
                found = seed;
                TestContext.Out.WriteLine($"found at seed {seed}: {result.Violation}");
            }
        }
        Assert.That(found, Is.Not.Zero, $"{(witnessNotSticky ? "a witness whose lease is not sticky" : mutation)}: no safety violation in {budget} seeds");
    }
}
