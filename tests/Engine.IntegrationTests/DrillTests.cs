using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Engine.Cli;
using Engine.Cli.Drill;
using Engine.IntegrationTests.Support;
using Engine.Replication;

namespace Engine.IntegrationTests;

/// <summary>
/// <c>engine drill</c> on every scenario (real processes, real SIGKILL/SIGSTOP, the fault proxy on
/// the link), the fault proxy itself, and the pair across a real network hop (network namespaces).
/// </summary>
public class DrillTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);
    private static readonly string[] Scenarios = ["kill-primary", "kill-backup", "stall-primary", "cut-link", "slow-link", "corrupt-link", "partition"];

    [Test]
    public void A_short_drill_of_every_scenario_loses_nothing_doubles_nothing_and_never_splits()
    {
        using var drill = EngineProcess.Start("drill", "--rounds", "7", "--seed", "42", "--round-seconds", "2", "--fault-ms", "1000", "--json");
        JsonElement result = DrillResult(drill, TimeSpan.FromMinutes(8));
        Assert.Multiple(() =>
        {
            AssertNothingLostDoubledOrSplit(result, rounds: 7);
            Assert.That(drill.StdErr, Does.Match(@"round 1/7 kill-primary +seed 42 at \d\d:\d\d:\d\d\.\d{3}: .*longest gap \d+ ms \(from [+-]\d+ ms\)"),
                "each round says when its fault struck (to find it in the nodes' logs) and when its longest gap began");
            Assert.That(result.GetProperty("acked").GetInt64(), Is.GreaterThan(7 * 1000));
            Assert.That(result.GetProperty("takeover_ms_p50").ValueKind, Is.EqualTo(JsonValueKind.Number), "kills, stalls and cuts make takeovers");
            JsonElement scenarios = result.GetProperty("scenarios");
            foreach (string scenario in Scenarios)
            {
                Assert.That(scenarios.GetProperty(scenario).GetProperty("rounds").GetInt32(), Is.EqualTo(1), scenario);
            }
            Assert.That(scenarios.GetProperty("kill-primary").GetProperty("takeover_ms_p50").ValueKind, Is.EqualTo(JsonValueKind.Number), "a killed primary is replaced");
            Assert.That(scenarios.GetProperty("slow-link").GetProperty("takeover_ms_p50").ValueKind, Is.EqualTo(JsonValueKind.Null), "a slow link is no death");
            Assert.That(scenarios.GetProperty("corrupt-link").GetProperty("takeover_ms_p50").ValueKind, Is.EqualTo(JsonValueKind.Null), "corruption is no death");
        });
    }

    [Test]
    public void An_interrupted_drill_stops_every_process_it_started()
    {
        using var drill = EngineProcess.Start("drill", "--scenario", "slow-link", "--rounds", "100");
        drill.WaitForOutput(o => o.Contains("pair up", StringComparison.Ordinal), "the drill's pair to come up", Wait);
        // "pair up: A pid N primary, B pid N backup, witness pid N"
        int[] pids = [.. System.Text.RegularExpressions.Regex.Matches(drill.StdOut, @"pid (\d+)").Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture))];
        Assert.That(pids, Has.Length.EqualTo(3));
        Assert.That(drill.Terminate(Wait), Is.EqualTo(130), drill.StdErr);
        foreach (int pid in pids)
        {
            Assert.That(Exited(pid), Is.True, $"process {pid} is still running after the drill was interrupted");
        }
    }

    private static bool Exited(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return process.WaitForExit(TimeSpan.FromSeconds(10));
        }
        catch (ArgumentException)
        {
            return true; // gone already
        }
    }

    [Test]
    public async Task An_attached_drill_runs_every_scenario_on_a_running_pair_and_leaves_it_whole()
    {
        using var pair = OperatorPair.Start(proxies: true);
        using var drill = EngineProcess.Start(["drill", .. pair.DrillArguments, "--rounds", "7", "--seed", "11", "--round-seconds", "2", "--fault-ms", "1000", "--json"]);
        JsonElement result = DrillResult(drill, TimeSpan.FromMinutes(6));
        Assert.Multiple(() =>
        {
            AssertNothingLostDoubledOrSplit(result, rounds: 7);
            JsonElement scenarios = result.GetProperty("scenarios");
            foreach (string scenario in Scenarios)
            {
                Assert.That(scenarios.GetProperty(scenario).GetProperty("rounds").GetInt32(), Is.EqualTo(1), scenario);
            }
            Assert.That(scenarios.GetProperty("kill-primary").GetProperty("takeover_ms_p50").ValueKind, Is.EqualTo(JsonValueKind.Number), "a killed primary is replaced");
            Assert.That(scenarios.GetProperty("cut-link").GetProperty("detection_ms_p50").ValueKind, Is.EqualTo(JsonValueKind.Number), "the operator's proxy cut the link");
        });
        // Round 1 killed A (the primary), round 2 the backup (A again): restarted by the drill, detached.
        Assert.That(pair.A.HasExited, Is.True, "the drill killed the node the operator started as primary");
        (NodeStatusReport primary, NodeStatusReport backup) = await pair.WaitWholeAsync();
        NodeStatusReport a = await AdminStatus.GetAsync(pair.AdminA);
        Assert.Multiple(() =>
        {
            Assert.That(a.Pid, Is.Not.EqualTo(pair.A.Id), "A runs again, as a new process");
            Assert.That(primary.SoloLease, Is.False, "no solo lease left held");
            Assert.That(backup.InStep, Is.True);
            Assert.That(File.ReadLines(Path.Combine(pair.Root, "a", "restarted-by-drill.log")).Select(line => EngineProcess.ReadLogEntry(line).Event?.Kind),
                Has.Some.EqualTo(PairEventKind.InStep), "a restarted node's output (its log, in_step and all) goes beside its data when the old one's went to a pipe");
        });
    }

    [Test]
    public async Task An_attached_drill_interrupted_while_the_primary_is_stopped_continues_it_and_leaves_the_pair_whole()
    {
        using var pair = OperatorPair.Start(proxies: false);
        using var drill = EngineProcess.Start(["drill", .. pair.DrillArguments, "--scenario", "stall-primary", "--rounds", "100", "--fault-ms", "8000"]);
        int primary = pair.A.Id;
        var clock = Stopwatch.StartNew();
        while (ProcessState(primary) != 'T')
        {
            Assert.That(clock.Elapsed, Is.LessThan(Wait), $"the drill did not stop the primary (pid {primary}); drill:\n{drill.StdOut}{drill.StdErr}");
            Thread.Sleep(5);
        }
        Assert.That(drill.Terminate(Wait), Is.EqualTo(130), drill.StdErr);
        Assert.That(ProcessState(primary), Is.Not.EqualTo('T'), "the interrupted drill left the primary stopped");
        await pair.WaitWholeAsync();
    }

    /// <summary>Waits for a drill run with --json to end with exit 0 and returns its JSON summary (its progress goes to the test's output).</summary>
    private static JsonElement DrillResult(EngineProcess drill, TimeSpan timeout)
    {
        int exit = drill.WaitForExit(timeout);
        TestContext.Out.WriteLine(drill.StdErr);
        Assert.That(exit, Is.Zero, $"{drill.StdErr}\n{drill.StdOut.Trim().Split('\n')[^1]}");
        return JsonDocument.Parse(drill.StdOut.Trim().Split('\n')[^1]).RootElement;
    }

    private static void AssertNothingLostDoubledOrSplit(JsonElement result, int rounds)
    {
        Assert.That(result.GetProperty("ok").GetBoolean(), Is.True);
        Assert.That(result.GetProperty("rounds").GetInt32(), Is.EqualTo(rounds));
        Assert.That(result.GetProperty("failed_rounds").GetInt32(), Is.Zero);
        Assert.That(result.GetProperty("lost").GetInt64(), Is.Zero);
        Assert.That(result.GetProperty("final_lost").GetInt64(), Is.Zero);
        Assert.That(result.GetProperty("duplicates").GetInt64(), Is.Zero);
        Assert.That(result.GetProperty("split_brain").GetInt64(), Is.Zero);
    }

    /// <summary>The state letter of a process in /proc/PID/stat (R, S, T for stopped, …).</summary>
    private static char ProcessState(int pid)
    {
        string stat = File.ReadAllText($"/proc/{pid}/stat");
        return stat[stat.LastIndexOf(')') + 2];
    }

    [Test]
    public void An_attached_drill_refuses_what_it_cannot_do_and_says_why()
    {
        using var once = EngineProcess.Start("drill", "--attach", "127.0.0.1:1");
        Assert.That(once.WaitForExit(Wait), Is.EqualTo(2));
        Assert.That(once.StdErr, Does.Contain("give each twice"));
        using var link = EngineProcess.Start("drill", "--attach", "127.0.0.1:1", "--attach", "127.0.0.1:2", "--scenario", "cut-link");
        Assert.That(link.WaitForExit(Wait), Is.EqualTo(2));
        Assert.That(link.StdErr, Does.Contain("attached, cut-link needs --link-proxy"));
        using var partition = EngineProcess.Start("drill", "--attach", "127.0.0.1:1", "--attach", "127.0.0.1:2", "--link-proxy", "127.0.0.1:3", "--link-proxy", "127.0.0.1:4", "--scenario", "partition");
        Assert.That(partition.WaitForExit(Wait), Is.EqualTo(2));
        Assert.That(partition.StdErr, Does.Contain("partition needs --link-proxy and --witness-proxy"));
        using var malformed = EngineProcess.Start("drill", "--attach", "127.0.0.1:1", "--attach", "node-b");
        Assert.That(malformed.WaitForExit(Wait), Is.EqualTo(2));
        Assert.That(malformed.StdErr, Does.Contain("'node-b' is not HOST:PORT"));
        using var stray = EngineProcess.Start("drill", "--link-proxy", "127.0.0.1:3", "--link-proxy", "127.0.0.1:4");
        Assert.That(stray.WaitForExit(Wait), Is.EqualTo(2));
        Assert.That(stray.StdErr, Does.Contain("go with --attach"));
        using var nobody = EngineProcess.Start("drill", "--attach", $"127.0.0.1:{Drill.FreePort()}", "--attach", $"127.0.0.1:{Drill.FreePort()}");
        Assert.That(nobody.WaitForExit(Wait), Is.EqualTo(2));
        Assert.That(nobody.StdErr, Does.Contain("no engine node answered on the admin endpoint"));
    }

    [TestCase(new[] { "serve", "--role", "primary", "--data", "d" }, new[] { "serve", "--role", "backup", "--data", "d" })]
    [TestCase(new[] { "serve", "--role=primary" }, new[] { "serve", "--role=backup" })]
    [TestCase(new[] { "serve", "--data", "d" }, new[] { "serve", "--data", "d", "--role", "backup" })]
    public void A_restart_repeats_the_command_line_with_the_new_role(string[] before, string[] after)
    {
        var launch = new Launch("/usr/bin/engine", before, "/", [], null);
        Assert.That(launch.WithRole("backup"), Is.EqualTo(after));
    }

    [Test]
    public void An_unknown_scenario_is_refused_by_name()
    {
        using var drill = EngineProcess.Start("drill", "--scenario", "meteor-strike");
        Assert.That(drill.WaitForExit(Wait), Is.Not.Zero);
        Assert.That(drill.StdErr, Does.Contain("meteor-strike"));
    }

    [Test]
    public async Task The_proxy_passes_blackholes_delays_and_corrupts_and_heal_closes_what_lived_through_a_blackhole()
    {
        using var echo = new TcpListener(IPAddress.Loopback, 0);
        echo.Start();
        _ = Task.Run(async () =>
        {
            while (true)
            {
                TcpClient c = await echo.AcceptTcpClientAsync();
                _ = Task.Run(async () =>
                {
                    var b = new byte[4096];
                    int n;
                    try
                    {
                        while ((n = await c.GetStream().ReadAsync(b)) > 0)
                        {
                            await c.GetStream().WriteAsync(b.AsMemory(0, n));
                        }
                    }
                    catch (IOException)
                    {
                    }
                });
            }
        });
        using var proxy = new FaultProxy(new IPEndPoint(IPAddress.Loopback, 0), (IPEndPoint)echo.LocalEndpoint);
        using var client = new TcpClient();
        await client.ConnectAsync(proxy.Endpoint);
        NetworkStream stream = client.GetStream();
        byte[] message = [.. Enumerable.Range(0, 100).Select(i => (byte)i)];
        var back = new byte[100];

        await stream.WriteAsync(message);
        await stream.ReadExactlyAsync(back);
        Assert.That(back, Is.EqualTo(message), "passes everything when healthy");

        proxy.Set(LinkFault.Delay, TimeSpan.FromMilliseconds(200));
        var clock = Stopwatch.StartNew();
        await stream.WriteAsync(message);
        await stream.ReadExactlyAsync(back);
        Assert.That(clock.Elapsed, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(390)), "200 ms each way");
        Assert.That(back, Is.EqualTo(message), "delayed, in order, intact");

        proxy.Set(LinkFault.None);
        proxy.CorruptOnce();
        await stream.WriteAsync(message);
        await stream.ReadExactlyAsync(back);
        Assert.That(back.Zip(message).Count(p => p.First != p.Second), Is.EqualTo(1), "exactly one byte flipped");
        Assert.That(proxy.Corrupted, Is.EqualTo(1));

        proxy.Set(LinkFault.Blackhole);
        await stream.WriteAsync(message);
        using var silence = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        Assert.That(async () => await stream.ReadAsync(back, silence.Token), Throws.InstanceOf<OperationCanceledException>(), "nothing comes back through a black hole");
        proxy.Set(LinkFault.None);
        using var closed = new CancellationTokenSource(Wait);
        Assert.That(await ReadOrZero(stream, back, closed.Token), Is.Zero, "healing closes the connection that lived through the black hole");
    }

    private static async Task<int> ReadOrZero(NetworkStream stream, byte[] buffer, CancellationToken cancel)
    {
        try
        {
            return await stream.ReadAsync(buffer, cancel);
        }
        catch (IOException)
        {
            return 0;
        }
    }

    /// <summary>
    /// The pair across a real network hop: the primary in one network namespace, the backup in
    /// another, joined by a veth pair (with <c>tc netem</c> delay where the kernel has it); the load
    /// runs beside the primary. The primary is SIGKILLed under load; nothing acknowledged is lost.
    /// </summary>
    [Test]
    public void Across_a_real_network_hop_killing_the_primary_loses_no_acknowledged_order()
    {
        string a = $"eng-a-{Environment.ProcessId}", b = $"eng-b-{Environment.ProcessId}";
        if (Run("ip", "netns", "add", a) != 0)
        {
            Assert.Ignore("`ip netns add` failed (needs iproute2, root and network namespaces): the two-host variant is skipped here");
        }
        string root = Path.Combine(Path.GetTempPath(), $"netns-{Guid.NewGuid():N}");
        try
        {
            Assert.That(Run("ip", "netns", "add", b), Is.Zero);
            string va = $"ea{Environment.ProcessId % 100000}", vb = $"eb{Environment.ProcessId % 100000}";
            Assert.That(Run("ip", "link", "add", va, "type", "veth", "peer", "name", vb), Is.Zero, "a veth pair");
            Assert.That(Run("ip", "link", "set", va, "netns", a) + Run("ip", "link", "set", vb, "netns", b), Is.Zero);
            Assert.That(Run("ip", "-n", a, "addr", "add", "10.77.0.1/24", "dev", va) + Run("ip", "-n", b, "addr", "add", "10.77.0.2/24", "dev", vb), Is.Zero);
            Assert.That(Run("ip", "-n", a, "link", "set", va, "up") + Run("ip", "-n", b, "link", "set", vb, "up")
                + Run("ip", "-n", a, "link", "set", "lo", "up") + Run("ip", "-n", b, "link", "set", "lo", "up"), Is.Zero);
            bool delayed = Run("ip", "netns", "exec", a, "tc", "qdisc", "add", "dev", va, "root", "netem", "delay", "1ms") == 0
                && Run("ip", "netns", "exec", b, "tc", "qdisc", "add", "dev", vb, "root", "netem", "delay", "1ms") == 0;
            TestContext.Out.WriteLine(delayed ? "tc netem: 1 ms each way on the veth pair" : "tc netem is not available in this kernel: the hop has no added delay");

            var none = new Dictionary<string, string>();
            // The development tokens on a non-loopback address: the test's own private hop, so the risk is accepted by flag.
            using var primary = EngineProcess.StartIn(a, none, "serve", "--role", "primary", "--data", Path.Combine(root, "a"), "--listen", "10.77.0.1:7400",
                "--replication-listen", "10.77.0.1:7500", "--allow-dev-config-on-network");
            using var backup = EngineProcess.StartIn(b, none, "serve", "--role", "backup", "--data", Path.Combine(root, "b"), "--listen", "10.77.0.2:7400",
                "--peer", "10.77.0.1:7500", "--replication-listen", "10.77.0.2:7500", "--allow-solo", "--allow-dev-config-on-network");
            primary.WaitForEvent(PairEventKind.BackupInStep, "the pair to be in step across the hop", Wait);

            using var load = EngineProcess.StartIn(a, none, "load", "--target", "10.77.0.1:7400,10.77.0.2:7400", "--rate", "2000", "--duration", "5",
                "--connections", "2", "--journal", Path.Combine(root, "b", "journal"), "--json");
            load.WaitForError(e => e.Contains(" 2 s ", StringComparison.Ordinal), "two seconds of load", Wait);
            primary.KillHard();
            backup.WaitForEvent(PairEventKind.TakeOver, "the backup to take over across the hop", Wait);
            Assert.That(load.WaitForExit(Wait), Is.Zero, load.StdErr);
            backup.Terminate(Wait);

            // The namespaces share the file system: the load checked every receipt against the new primary's journal.
            using var check = EngineProcess.Start("log", "verify", Path.Combine(root, "b", "journal"));
            Assert.That(check.WaitForExit(Wait), Is.Zero, check.StdOut + check.StdErr);
            JsonElement result = JsonDocument.Parse(load.StdOut.Trim().Split('\n')[^1]).RootElement;
            Assert.Multiple(() =>
            {
                Assert.That(result.GetProperty("lost").GetInt64(), Is.Zero, "acked orders missing from the new primary's journal");
                Assert.That(result.GetProperty("duplicates").GetInt64(), Is.Zero);
                Assert.That(result.GetProperty("errors").GetInt64(), Is.Zero);
                Assert.That(result.GetProperty("acked").GetInt64(), Is.GreaterThan(2000));
                Assert.That(result.GetProperty("reconnects").GetInt64(), Is.GreaterThanOrEqualTo(2), "both clients failed over across the hop");
            });
        }
        finally
        {
            Run("ip", "netns", "del", a);
            Run("ip", "netns", "del", b);
            if (Directory.Exists(root))
            {
                Directory.Delete(root, recursive: true);
            }
        }
    }

    /// <summary>Runs a tool to its end; its exit code, or -1 if it is not installed.</summary>
    private static int Run(string file, params string[] args)
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardError = true, RedirectStandardOutput = true })!;
            process.WaitForExit();
            return process.ExitCode;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return -1;
        }
    }
}
