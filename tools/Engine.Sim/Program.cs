using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Engine.Replication.Pair;
using Engine.Sim;

// engine-sim: the pair's deterministic simulator. See docs/simulation.md.
int seeds = 100, first = 1;
bool json = false, trace = false;
PairMutation mutations = PairMutation.None;
WitnessMutation witnessMutations = WitnessMutation.None;
bool stopOnLiveness = false;
int parallel = 1;
for (int i = 0; i < args.Length; i++)
{
    string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
    switch (args[i])
    {
        case "--seeds":
            seeds = int.Parse(Value(), NumberStyles.None, CultureInfo.InvariantCulture);
            break;
        case "--seed":
            first = int.Parse(Value(), NumberStyles.None, CultureInfo.InvariantCulture);
            break;
        case "--json":
            json = true;
            break;
        case "--trace":
            trace = true;
            break;
        case "--strict":
            stopOnLiveness = true;
            break;
        case "--parallel":
            parallel = int.Parse(Value(), NumberStyles.None, CultureInfo.InvariantCulture);
            break;
        case "--mutation":
            string name = Value();
            if (name.StartsWith("Witness", StringComparison.Ordinal))
            {
                witnessMutations |= Enum.Parse<WitnessMutation>(name["Witness".Length..]);
            }
            else
            {
                mutations |= Enum.Parse<PairMutation>(name);
            }
            break;
        case "-h" or "--help":
            Console.WriteLine("""
                engine-sim: runs the pair (the real PairNode, pair ledger, sealer, chain and Exchange, each node's journal on a
                simulated device) on simulated time, network, disk and witness. Each seed decides every latency and fault (crash
                and restart, with the uncommitted tail lost or torn; stall, link cut, partition, witness cut-off, delay, corrupt
                frame, failed journal append or commit, client disconnect) for 20 simulated seconds, then heals everything and
                gives the pair 15 s to become whole and answer every client request; invariants are checked after every
                acknowledgement and role change and at the end.

                  --seeds N     seeds to run (default 100)
                  --seed S      the first seed (default 1); --seed S --seeds 1 replays one seed exactly
                  --json        one JSON object at the end
                  --trace       print the whole trace of each seed
                  --parallel P  run P seeds at a time (each seed stays deterministic; default 1)
                  --strict      a liveness violation (the pair not whole after the quiet period, a request unanswered) stops
                                the run too; without it they are counted ("stuck") and the run goes on
                  --mutation M  switch on a deliberate bug (AckBeforeBackup, TakeOverWhileCatchingUp, ReleaseLeaseOnCatchUpSent,
                                IgnoreHigherEpochHello, TakeOverWithoutWitness, TakeOverOnAnyPeerHead, WitnessNotSticky,
                                WitnessResumesAnyone); the tests show which it finds within a budget, and which only the unit tests pin
                Exit code: 0 no violation, 1 a violation (its seed, the invariant and the last events are printed), 2 bad arguments.
                """);
            return 0;
        default:
            Console.Error.WriteLine($"engine-sim: unknown argument {args[i]} (--help)");
            return 2;
    }
}

var wall = Stopwatch.StartNew();
long steps = 0;
double simulated = 0;
var faults = new Dictionary<string, int>();
var violations = new List<SimResult>();
long acknowledged = 0;
var operatorSeeds = new List<int>();
var stuck = new List<SimResult>();
// Seeds run in batches, P at a time; results are taken in seed order, so the report (and where it
// stops) is the same whatever P is.
var pending = new Queue<(SimResult Result, IReadOnlyList<string> FullTrace)>();
int nextToRun = first;
(SimResult Result, IReadOnlyList<string> FullTrace) Next()
{
    if (pending.Count == 0)
    {
        int batch = Math.Min(Math.Max(1, parallel) * 8, first + seeds - nextToRun);
        var results = new (SimResult, IReadOnlyList<string>)[batch];
        int start = nextToRun;
        Parallel.For(0, batch, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, parallel) }, i =>
        {
            var world = new SimWorld(start + i, mutations, witnessMutations, keepFullTrace: trace);
            SimResult r = world.Run();
            results[i] = (r, world.FullTrace);
        });
        nextToRun += batch;
        foreach ((SimResult, IReadOnlyList<string>) r in results)
        {
            pending.Enqueue(r);
        }
    }
    return pending.Dequeue();
}
for (int seed = first; seed < first + seeds; seed++)
{
    (SimResult result, IReadOnlyList<string> fullTrace) = Next();
    steps += result.Steps;
    simulated += result.SimulatedSeconds;
    acknowledged += result.Acknowledged;
    if (result.NeededOperator)
    {
        operatorSeeds.Add(seed);
    }
    foreach ((string kind, int count) in result.Faults)
    {
        faults[kind] = faults.GetValueOrDefault(kind) + count;
    }
    if (trace)
    {
        foreach (string line in fullTrace)
        {
            Console.WriteLine(line);
        }
    }
    if (result.Violation is not null && result.Liveness && !stopOnLiveness)
    {
        stuck.Add(result);
        continue;
    }
    if (result.Violation is not null)
    {
        violations.Add(result);
        TextWriter report = json ? Console.Error : Console.Out;
        report.WriteLine($"seed {seed}: VIOLATION: {result.Violation}");
        report.WriteLine($"  replay: dotnet run -c Release --project tools/Engine.Sim -- --seed {seed} --seeds 1 --trace");
        foreach (string line in result.Trace)
        {
            report.WriteLine($"  {line}");
        }
        break;
    }
}
double seconds = wall.Elapsed.TotalSeconds;
int ran = violations.Count > 0 ? violations[0].Seed - first + 1 : seeds;
if (json)
{
    Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object?>
    {
        ["seeds"] = ran,
        ["first_seed"] = first,
        ["violations"] = violations.Count,
        ["violation"] = violations.FirstOrDefault()?.Violation,
        ["violating_seed"] = violations.FirstOrDefault()?.Seed,
        ["steps"] = steps,
        ["simulated_seconds"] = Math.Round(simulated, 1),
        ["wall_seconds"] = Math.Round(seconds, 2),
        ["simulated_per_wall_second"] = Math.Round(simulated / seconds, 1),
        ["seeds_per_minute"] = Math.Round(ran / seconds * 60, 1),
        ["acknowledged_blocks"] = acknowledged,
        ["stuck"] = stuck.Count,
        ["stuck_seeds"] = stuck.Take(20).Select(r => r.Seed),
        ["first_stuck"] = stuck.FirstOrDefault()?.Violation,
        ["needed_operator"] = operatorSeeds.Count,
        ["needed_operator_seeds"] = operatorSeeds.Take(20),
        ["faults"] = faults,
    }));
}
else
{
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"{ran} seeds from {first}: {violations.Count} safety violations, {stuck.Count} stuck ({string.Join(" ", stuck.Take(10).Select(r => r.Seed))}); {steps:N0} steps, {simulated:N0} simulated s in {seconds:F1} wall s ({simulated / seconds:F0}x), {ran / seconds * 60:F0} seeds/min; the operator had to start a primary in {operatorSeeds.Count} ({string.Join(" ", operatorSeeds.Take(10))}); faults {string.Join(", ", faults.OrderBy(f => f.Key).Select(f => $"{f.Key} {f.Value}"))}"));
}
return violations.Count == 0 ? 0 : 1;
