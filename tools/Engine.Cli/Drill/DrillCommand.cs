using System.CommandLine;
using System.Runtime.InteropServices;
using System.Text.Json;
using Engine.Core.Server;

namespace Engine.Cli.Drill;

/// <summary><c>engine drill</c>: failover drills on a real local pair, under load, with numbers.</summary>
internal static class DrillCommand
{
    public static Command Build()
    {
        var scenario = new Option<string>("--scenario") { Description = $"One of {string.Join(", ", Drill.Scenarios)}, or all (default): the rounds take them in turn.", DefaultValueFactory = _ => "all" };
        scenario.AcceptOnlyFromAmong([.. Drill.Scenarios, "all"]);
        var rounds = new Option<int?>("--rounds") { Description = "Rounds in all, one fault each, the scenarios taking turns (default: one per scenario)." };
        var rate = new Option<double>("--rate") { Description = "Orders per second of the load, open loop (default 2000).", DefaultValueFactory = _ => 2000 };
        var seed = new Option<int?>("--seed") { Description = "Seed of the fault moments and choices (default: from the clock; printed). Round i uses seed+i: `--seed S+i --rounds 1 --scenario NAME` replays it." };
        var seconds = new Option<double>("--round-seconds") { Description = "Load per round in seconds (default 3); the fault strikes between a quarter and a half of it, and the load goes on for at least a second after the fault ends.", DefaultValueFactory = _ => 3 };
        var faultMs = new Option<int>("--fault-ms") { Description = "How long a stall, cut, slow link or partition lasts (default 1500 ms; the pair's silence timeout is 500 ms).", DefaultValueFactory = _ => 1500 };
        var delayMs = new Option<int>("--delay-ms") { Description = "slow-link: delay each way (default 50 ms).", DefaultValueFactory = _ => 50 };
        var json = new Option<bool>("--json") { Description = "End with one JSON object (rounds, lost, duplicates, split_brain, takeover_ms_p50, takeover_ms_p99, …); progress goes to standard error." };
        var keep = new Option<bool>("--keep") { Description = "Keep the nodes' data directories and logs (A.log, B.log; attached: the logs only); they are kept anyway when a round fails." };
        var attach = new Option<string[]>("--attach") { Description = "HOST:PORT of a running node's admin endpoint (`engine serve --admin`), twice: drill that pair (on this host) instead of starting one.", Arity = ArgumentArity.OneOrMore };
        var linkProxy = new Option<string[]>("--link-proxy") { Description = "With --attach, twice, in the same order: the control endpoint (`engine proxy --control`) of the proxy in front of that node's replication endpoint (the other node's --peer). Enables cut-link, slow-link, corrupt-link.", Arity = ArgumentArity.OneOrMore };
        var witnessProxy = new Option<string[]>("--witness-proxy") { Description = "With --attach and --link-proxy, twice, in the same order: the control endpoint of the proxy between that node and its witness (its --witness). Enables partition.", Arity = ArgumentArity.OneOrMore };
        var command = new Command("drill", $"""
            Failover drills: start a primary, a backup and a witness as real processes (each node's replication endpoint and its way to the witness behind a fault proxy),
            drive orders through the client library, and per round strike one fault at a seeded random moment:
              kill-primary, kill-backup   SIGKILL, then restart the dead node as backup and wait until it is back in step
              stall-primary               SIGSTOP for --fault-ms, then SIGCONT (a long GC pause, a frozen VM)
              cut-link                    black-hole the replication link both ways for --fault-ms
              slow-link                   delay the replication link by --delay-ms each way for --fault-ms
              corrupt-link                flip one byte of the primary's replication stream
              partition                   cut the link and one node's way to the witness for --fault-ms (the primary's on even round seeds, else the backup's)
            Per round: detection, takeover (fault to first receipt from the new primary's epoch), longest gap between receipts, acked orders lost or doubled,
            split brain (two different blocks acknowledged under one number), both journals verified and agreeing. Exits 1 if anything was lost, doubled or split,
            or a round failed; every process it started is stopped, also on Ctrl-C or SIGTERM.
            With --attach A --attach B it drills a running pair instead (one primary, its backup, whole at the start; both on this host, started with --admin):
            it follows them through their admin endpoints (/status, /log), signals their pids, reads their journals, and restarts a killed node with its own
            command line, working directory and environment and --role backup, detached, its output appended where the old one's went (else DATA/restarted-by-drill.log).
            Attached, it runs kill-primary, kill-backup and stall-primary; the link scenarios need `engine proxy --control` in the links, named by --link-proxy
            (and --witness-proxy for partition). It leaves the pair running and whole; a stalled node is always continued, a killed one always restarted.
            """)
        {
            scenario, rounds, rate, seed, seconds, faultMs, delayMs, json, keep, attach, linkProxy, witnessProxy,
        };
        // Attached, the proxies' control ports take commands only from an operator of their cluster.
        var cluster = new ClusterOptions(Engine.Security.PrincipalRole.Operator, "operator", listens: false);
        cluster.AddTo(command);
        command.SetAction(async (parse, cancel) =>
        {
            // This process carries the pair's link and witness traffic through its fault proxies, on the
            // thread pool, beside the load's clients: a stall of its own pool would look like the pair's.
            using ThreadPoolWatch poolWatch = ThreadPoolWatch.Start(line => Console.Error.WriteLine($"drill: {line}"));
            string chosen = parse.GetValue(scenario)!;
            string[] attached = parse.GetValue(attach) ?? [], links = parse.GetValue(linkProxy) ?? [], witnesses = parse.GetValue(witnessProxy) ?? [];
            if (attached.Length is not (0 or 2) || links.Length is not (0 or 2) || witnesses.Length is not (0 or 2))
            {
                Console.Error.WriteLine("engine drill: --attach names the two nodes of a pair (their admin endpoints), --link-proxy and --witness-proxy a proxy for each: give each twice");
                return 2;
            }
            try
            {
                foreach (string endpoint in attached.Concat(links).Concat(witnesses))
                {
                    _ = EngineSettings.ParseEndpoint(endpoint, "--attach/--link-proxy/--witness-proxy");
                }
            }
            catch (ArgumentException e)
            {
                Console.Error.WriteLine($"engine drill: {e.Message}");
                return 2;
            }
            if (attached.Length == 0 && links.Length + witnesses.Length > 0)
            {
                Console.Error.WriteLine("engine drill: --link-proxy and --witness-proxy go with --attach (without it the drill builds its own proxies)");
                return 2;
            }
            string[] possible = attached.Length > 0 ? Drill.AttachedScenarios(links.Length > 0, witnesses.Length > 0 && links.Length > 0) : Drill.Scenarios;
            if (chosen != "all" && !possible.Contains(chosen))
            {
                Console.Error.WriteLine($"engine drill: attached, {chosen} needs {(chosen == "partition" ? "--link-proxy and --witness-proxy" : "--link-proxy")} (`engine proxy --control` in the links); "
                    + $"with what was given it runs {string.Join(", ", possible)}");
                return 2;
            }
            string[] scenarios = chosen != "all" ? [chosen] : possible;
            int total = parse.GetValue(rounds) ?? scenarios.Length;
            Engine.Security.ClusterCredentials operatorCredentials;
            try
            {
                operatorCredentials = cluster.Load(parse, listen: null);
            }
            catch (Exception e) when (e is ArgumentException or InvalidDataException or IOException)
            {
                Console.Error.WriteLine($"engine drill: {e.Message}");
                return 2;
            }
            var options = new DrillOptions(scenarios, total, parse.GetValue(rate), parse.GetValue(seed) ?? Environment.TickCount & 0x7fff_ffff,
                parse.GetValue(seconds), parse.GetValue(faultMs), parse.GetValue(delayMs), parse.GetValue(json), parse.GetValue(keep), attached, links, witnesses)
            {
                Operator = operatorCredentials,
            };
            if (options.Rounds is < 1 or > 1_000_000 || options.Rate is <= 0 or > 200_000 || options.RoundSeconds is < 1 or > 600 || options.FaultMs is < 100 or > 60_000 || options.DelayMs is < 1 or > 10_000)
            {
                Console.Error.WriteLine("engine drill: --rounds must be 1 to 1000000, --rate in (0, 200000], --round-seconds 1 to 600, --fault-ms 100 to 60000, --delay-ms 1 to 10000");
                return 2;
            }
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
            await using var drill = new Drill(options, options.Json ? Console.Error : Console.Out);
            DrillReport report;
            try
            {
                report = await drill.RunAsync(stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                Console.Error.WriteLine("engine drill: interrupted; every process it started is stopped");
                return 130;
            }
            catch (InvalidOperationException e)
            {
                Console.Error.WriteLine($"engine drill: {e.Message}");
                return 2;
            }
            if (options.Json)
            {
                Console.WriteLine(JsonSerializer.Serialize(report.ToJson()));
            }
            else
            {
                Console.WriteLine(report.Table());
            }
            return report.Ok ? 0 : 1;
        });
        return command;
    }
}

/// <summary>What <c>engine drill</c> was asked to do.</summary>
internal sealed record DrillOptions(string[] Scenarios, int Rounds, double Rate, int Seed, double RoundSeconds, int FaultMs, int DelayMs, bool Json, bool Keep, string[] Attach, string[] LinkProxies, string[] WitnessProxies)
{
    /// <summary>Attached: the operator the proxies' control ports must see (--cluster/--key); null: the development cluster's.</summary>
    public Engine.Security.ClusterCredentials? Operator { get; init; }
}
