using System.Diagnostics;
using System.Net;
using Engine.Cli.Load;
using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Protocol;
using Engine.Replication;

namespace Engine.Cli.Drill;

/// <summary>
/// The drill's cluster and its rounds. Two nodes (A and B) and a witness, as real processes; in
/// front of each node's replication endpoint and of each node's way to the witness, a
/// <see cref="FaultProxy"/>. Each node's <c>--peer</c> is the proxy in front of the other, so one
/// switch cuts, slows or corrupts the link both ways. The roles move: whoever took over is primary.
/// </summary>
internal sealed class Drill(DrillOptions options, TextWriter say) : IAsyncDisposable
{
    public static readonly string[] Scenarios = ["kill-primary", "kill-backup", "stall-primary", "cut-link", "slow-link", "corrupt-link", "partition"];

    /// <summary>
    /// What a drill attached to nodes started elsewhere can do: kills and stalls always; link faults
    /// with an <c>engine proxy --control</c> in front of each node's replication endpoint
    /// (<c>--link-proxy</c>); a partition also with one on each node's way to the witness (<c>--witness-proxy</c>).
    /// </summary>
    public static string[] AttachedScenarios(bool linkProxies, bool witnessProxies) =>
        [.. Scenarios.Where(s => s switch
        {
            "cut-link" or "slow-link" or "corrupt-link" => linkProxies,
            "partition" => linkProxies && witnessProxies,
            _ => true,
        })];

    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan WholeTimeout = TimeSpan.FromSeconds(120);
    /// <summary>The pair events that say a node noticed the fault.</summary>
    private static readonly PairEventKind[] Detections = [PairEventKind.PrimaryLost, PairEventKind.BackupLost, PairEventKind.LinkIncident, PairEventKind.PrimarySilent];

    private readonly string _root = Path.Combine(Path.GetTempPath(), $"engine-drill-{Environment.ProcessId}");
    private readonly List<AckedOrder> _allAcks = [];
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(5) };
    private NodeProcess? _witness;
    private FaultProxy? _witnessProxyA;
    private FaultProxy? _witnessProxyB;
    private Node? _a;
    private Node? _b;
    private bool _failed;

    private Node Primary { get; set; } = null!;

    private Node Backup => Primary == _a ? _b! : _a!;

    public async Task<DrillReport> RunAsync(CancellationToken cancel)
    {
        var report = new DrillReport(options);
        bool attach = options.Attach.Length > 0;
        await say.WriteLineAsync($"engine drill: seed {options.Seed}, {options.Rounds} round(s) of {string.Join(", ", options.Scenarios)}, {options.Rate:N0} orders/s, "
            + (attach ? $"attached to the nodes at {string.Join(" and ", options.Attach)}" : $"data in {_root}")).ConfigureAwait(false);
        if (attach)
        {
            await AttachClusterAsync(cancel).ConfigureAwait(false);
            await say.WriteLineAsync($"attached: A ({options.Attach[0]}) pid {_a!.Process.Id}, B ({options.Attach[1]}) pid {_b!.Process.Id}; {Primary.Name} is primary, the pair is whole").ConfigureAwait(false);
        }
        else
        {
            StartCluster();
            if (!Primary.Process.WaitForEvent(PairEventKind.BackupInStep, StartTimeout))
            {
                _failed = true;
                throw new InvalidOperationException($"the pair did not come up:\n--- A ---\n{_a!.Process.Output}\n--- B ---\n{_b!.Process.Output}");
            }
            await say.WriteLineAsync($"pair up: A pid {_a!.Process.Id} primary, B pid {_b!.Process.Id} backup, witness pid {_witness!.Id}").ConfigureAwait(false);
        }
        for (int i = 0; i < options.Rounds; i++)
        {
            cancel.ThrowIfCancellationRequested();
            string scenario = options.Scenarios[i % options.Scenarios.Length];
            RoundResult round;
            try
            {
                round = await RunRoundAsync(scenario, options.Seed + i, cancel).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancel.IsCancellationRequested)
            {
                // A round that cannot even run (no node takes the load's logon, …) fails the drill here.
                round = new RoundResult(scenario, options.Seed + i) { Detail = $"the round could not run: {e.GetType().Name}: {e.Message}" };
            }
            report.Add(round);
            await say.WriteLineAsync(round.Line(i + 1, options.Rounds)).ConfigureAwait(false);
            if (!round.Whole)
            {
                await say.WriteLineAsync($"the pair did not become whole again; stopping the drill.\n--- A ---\n{Tail(_a.Process.Output)}\n--- B ---\n{Tail(_b.Process.Output)}").ConfigureAwait(false);
                break;
            }
        }
        // Every order acknowledged in any round, against the final primary's journal.
        try
        {
            report.Final = await JournalAudit.CheckAsync(Primary.JournalDirectory, _allAcks).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or JournalCorruptException)
        {
            report.Final = AuditResult.Unknown($"the primary's journal could not be opened: {e.Message}");
        }
        if (report.Final.Unreadable is { } unreadable)
        {
            await say.WriteLineAsync($"final check: {unreadable}").ConfigureAwait(false);
        }
        _failed = !report.Ok;
        return report;
    }

    private void StartCluster()
    {
        Directory.CreateDirectory(_root);
        // The drill's own cluster: the link and the witness authenticate and encrypt with real keys, as in production.
        string clusterDir = Path.Combine(_root, "cluster");
        Engine.Security.ClusterSetup.Init(clusterDir, force: true);
        string cluster = Path.Combine(clusterDir, "cluster.json");
        int witnessPort = FreePort();
        _witness = NodeProcess.Start(witnessPort, "witness", "--listen", $"127.0.0.1:{witnessPort}", "--state", Path.Combine(_root, "witness.state"),
            "--cluster", cluster, "--key", Engine.Security.ClusterSetup.KeyPath(clusterDir, "witness"));
        if (!_witness.WaitForLog("listening", StartTimeout))
        {
            _failed = true;
            throw new InvalidOperationException($"the witness did not start: {_witness.Output}");
        }
        var witness = new IPEndPoint(IPAddress.Loopback, witnessPort);
        _witnessProxyA = new FaultProxy(new IPEndPoint(IPAddress.Loopback, 0), witness);
        _witnessProxyB = new FaultProxy(new IPEndPoint(IPAddress.Loopback, 0), witness);
        var a = new OwnNode("A", Path.Combine(_root, "a"), _http, _witnessProxyA, cluster, Engine.Security.ClusterSetup.KeyPath(clusterDir, "node-a"));
        var b = new OwnNode("B", Path.Combine(_root, "b"), _http, _witnessProxyB, cluster, Engine.Security.ClusterSetup.KeyPath(clusterDir, "node-b"));
        (_a, _b, a.Peer, b.Peer) = (a, b, b, a);
        a.Start("primary");
        b.Start("backup");
        Primary = _a;
    }

    /// <summary>
    /// Attaches to two running nodes by their admin endpoints: one must be primary, the other its
    /// backup, and the pair whole (backup in step, no solo lease) before the first round.
    /// </summary>
    private async Task AttachClusterAsync(CancellationToken cancel)
    {
        AttachedProcess a = await AttachedProcess.AttachAsync(_http, options.Attach[0], TimeSpan.FromSeconds(10), null, cancel).ConfigureAwait(false);
        AttachedProcess b = await AttachedProcess.AttachAsync(_http, options.Attach[1], TimeSpan.FromSeconds(10), null, cancel).ConfigureAwait(false);
        RemoteProxy? Switch(string[] controls, int i) => controls.Length > 0 ? new RemoteProxy(controls[i], options.Operator) : null;
        (_a, _b) = (new AttachedNode("A", options.Attach[0], a, _http, Switch(options.LinkProxies, 0), Switch(options.WitnessProxies, 0)),
            new AttachedNode("B", options.Attach[1], b, _http, Switch(options.LinkProxies, 1), Switch(options.WitnessProxies, 1)));
        (_a.Peer, _b.Peer) = (_b, _a);
        if (a.Id == b.Id)
        {
            throw new InvalidOperationException($"{options.Attach[0]} and {options.Attach[1]} are the same node (pid {a.Id})");
        }
        // A pair still starting (or stepping down) gets the time a round would give it.
        (Primary, _) = await CurrentPrimaryAsync(cancel).ConfigureAwait(false);
        foreach (RemoteProxy proxy in new[] { _a.LinkProxy, _b.LinkProxy, _a.WitnessProxy, _b.WitnessProxy }.OfType<RemoteProxy>())
        {
            await proxy.SendAsync("status", cancel).ConfigureAwait(false);
        }
        // The backup follows its primary through the proxy in front of the primary's replication endpoint: it must carry that link.
        if (Primary.LinkProxy is RemoteProxy front && await front.ConnectionsAsync(cancel).ConfigureAwait(false) == 0)
        {
            throw new InvalidOperationException($"the proxy at {front.Control} carries no connection, so it is not in front of the primary's replication endpoint: "
                + "give --link-proxy in the order of --attach, each the proxy that node's peer connects through");
        }
        if (await WaitReportedWholeAsync(Primary, StartTimeout, cancel).ConfigureAwait(false) is { } why)
        {
            throw new InvalidOperationException($"the pair is not whole ({why}): the drill starts from a whole pair");
        }
    }

    /// <summary>
    /// Waits until the primary's /status says the pair is whole: a backup in step, and no witness's
    /// lease still held (until it is given back the backup could not take over). Null then, else
    /// what the primary last said.
    /// </summary>
    private async Task<string?> WaitReportedWholeAsync(Node primary, TimeSpan timeout, CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        string seen = "no answer";
        while (clock.Elapsed < timeout)
        {
            try
            {
                NodeStatusReport status = await NodeStatusReport.GetAsync(_http, primary.Admin, state: false, cancel).ConfigureAwait(false);
                if (status.Whole)
                {
                    return null;
                }
                seen = $"the primary at {primary.Admin} says role {status.Role}, backup_in_step {status.BackupInStep}, {status.Lease} lease held {status.SoloLease}";
            }
            catch (Exception e) when (e is HttpRequestException or InvalidOperationException || (e is TaskCanceledException && !cancel.IsCancellationRequested))
            {
                seen = e.Message;
            }
            await Task.Delay(50, cancel).ConfigureAwait(false);
        }
        return seen;
    }

    private async Task<RoundResult> RunRoundAsync(string scenario, int seed, CancellationToken cancel)
    {
        var random = new Random(seed);
        var round = new RoundResult(scenario, seed);
        // The roles as they are, not as the last fault left them: a primary starved of the CPU for
        // the silence timeout is taken over with no fault injected. Then wait until the pair is whole.
        (Node current, ulong epochBefore) = await CurrentPrimaryAsync(cancel).ConfigureAwait(false);
        if (current != Primary)
        {
            round.Unplanned = $"{current.Name} had taken over from {Primary.Name} before the fault (no fault was injected: a takeover of the pair's own)";
            Primary = current;
        }
        if (await WaitReportedWholeAsync(Primary, WholeTimeout, cancel).ConfigureAwait(false) is { } notWhole)
        {
            round.Detail = $"the pair was not whole before the fault ({notWhole})";
            return round;
        }
        Node primary = Primary, backup = Backup;
        // The fault strikes between a quarter and a half of the round; at least a second of load
        // follows its end, or a takeover that clients see only then (a stalled primary) goes unmeasured.
        TimeSpan faultAt = TimeSpan.FromSeconds(options.RoundSeconds * (0.25 + 0.25 * random.NextDouble()));
        TimeSpan loadFor = TimeSpan.FromSeconds(Math.Max(options.RoundSeconds, faultAt.TotalSeconds + (options.FaultMs / 1000.0) + 1));
        var load = new LoadGenerator(new LoadOptions([primary.ClientEndpoint, backup.ClientEndpoint], options.Rate, loadFor,
            null, 4, 256, 1, "dev-token-{id}", null, seed, Json: false), TextWriter.Null);
        Task<LoadResult> running = load.RunAsync(cancel);

        await Task.Delay(faultAt, cancel).ConfigureAwait(false);
        // The processes as they were at the fault (a killed one is replaced): detection is read from them.
        WatchedProcess primaryAtFault = primary.Process, backupAtFault = backup.Process;
        int markPrimary = primaryAtFault.EventCount, markBackup = backupAtFault.EventCount;
        long fault = Stopwatch.GetTimestamp();
        round.FaultAt = DateTime.UtcNow; // to find the round in the nodes' logs (UTC)
        TimeSpan length = TimeSpan.FromMilliseconds(options.FaultMs);
        switch (scenario)
        {
            case "kill-primary":
                primary.Process.KillHard();
                round.Detail = "primary killed";
                try
                {
                    if (!backup.Process.WaitForEvent(PairEventKind.TakeOver, StartTimeout, since: markBackup))
                    {
                        round.Detail += "; THE BACKUP DID NOT TAKE OVER";
                        round.Failure = true;
                    }
                }
                finally
                {
                    // Also when interrupted: an attached pair outlives the drill, whole.
                    round.Detail += await primary.RestartAsync("backup", CancellationToken.None).ConfigureAwait(false);
                }
                break;
            case "kill-backup":
                backup.Process.KillHard();
                round.Detail = "backup killed";
                try
                {
                    primary.Process.WaitForEvent(PairEventKind.BackupLost, StartTimeout, since: markPrimary);
                }
                finally
                {
                    round.Detail += await backup.RestartAsync("backup", CancellationToken.None).ConfigureAwait(false);
                }
                break;
            case "stall-primary":
                primary.Process.Signal(WatchedProcess.SigStop);
                try
                {
                    await Task.Delay(length, cancel).ConfigureAwait(false);
                }
                finally
                {
                    primary.Process.Signal(WatchedProcess.SigCont); // also when interrupted: an attached node outlives the drill
                }
                round.Detail = $"primary stopped {options.FaultMs} ms";
                break;
            case "cut-link":
                await SetLinkAsync(LinkFault.Blackhole).ConfigureAwait(false);
                await Task.Delay(length, cancel).ConfigureAwait(false);
                await SetLinkAsync(LinkFault.None).ConfigureAwait(false);
                round.Detail = $"link cut {options.FaultMs} ms";
                break;
            case "slow-link":
                await SetLinkAsync(LinkFault.Delay, TimeSpan.FromMilliseconds(options.DelayMs)).ConfigureAwait(false);
                await Task.Delay(length, cancel).ConfigureAwait(false);
                await SetLinkAsync(LinkFault.None).ConfigureAwait(false);
                round.Detail = $"link +{options.DelayMs} ms each way for {options.FaultMs} ms";
                break;
            case "corrupt-link":
                await primary.LinkProxy!.CorruptOnceAsync().ConfigureAwait(false);
                round.Detail = "one byte flipped";
                break;
            case "partition":
                // Both sides lose each other; one of them also loses the witness: the primary on even
                // round seeds, the backup on odd ones (so the two kinds alternate when scenarios cycle).
                Node isolated = seed % 2 == 0 ? primary : backup;
                await SetLinkAsync(LinkFault.Blackhole).ConfigureAwait(false);
                await isolated.WitnessProxy!.SetAsync(LinkFault.Blackhole).ConfigureAwait(false);
                await Task.Delay(length, cancel).ConfigureAwait(false);
                await isolated.WitnessProxy.SetAsync(LinkFault.None).ConfigureAwait(false);
                await SetLinkAsync(LinkFault.None).ConfigureAwait(false);
                round.Detail = $"{(isolated == primary ? "primary" : "backup")} {isolated.Name} cut off from peer and witness {options.FaultMs} ms";
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(scenario), scenario, "unknown scenario");
        }

        LoadResult result = await running.ConfigureAwait(false);
        // Who is primary now, and is the pair whole again: as the nodes report it (the load ran a
        // second past the fault's end, so what they report is what the fault left).
        if (!round.Failure)
        {
            (Primary, _) = await CurrentPrimaryAsync(cancel).ConfigureAwait(false);
            string? stillBroken = await WaitReportedWholeAsync(Primary, WholeTimeout, cancel).ConfigureAwait(false);
            round.Whole = stillBroken is null;
            round.Detail += stillBroken is null ? "" : $"; not whole after {WholeTimeout.TotalSeconds:0} s: {stillBroken}";
        }
        round.Acked = result.Acked;
        round.Rejected = result.Rejected;
        round.RejectedByReason = result.RejectedByReason;
        round.Unanswered = result.Errors;
        long? detected = new[] { primaryAtFault.FirstEventAt(markPrimary, Detections), backupAtFault.FirstEventAt(markBackup, Detections) }.Where(t => t is not null).Min();
        round.DetectionMs = detected is { } d ? Milliseconds(d - fault) : null;
        (round.GapMs, long gapFrom) = LongestGap(result.Acks);
        round.GapFromMs = result.Acks.Count < 2 ? null : Milliseconds(gapFrom - fault);
        round.StateMismatch = _a!.Process.HasEvent(PairEventKind.StateMismatch) || _b!.Process.HasEvent(PairEventKind.StateMismatch);
        if (round.Whole)
        {
            await CheckJournalsAsync(round, result.Acks, fault, epochBefore).ConfigureAwait(false);
            foreach (OwnNode node in new[] { _a, _b! }.OfType<OwnNode>())
            {
                node.RemoveDiscardedJournals();
            }
        }
        _allAcks.AddRange(result.Acks);
        return round;
    }

    /// <summary>Which node is primary now, and in which epoch, from both nodes' /status: one primary and one backup (waits while a node steps down or restarts).</summary>
    private async Task<(Node Primary, ulong Epoch)> CurrentPrimaryAsync(CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        string seen = "no answer";
        while (clock.Elapsed < WholeTimeout)
        {
            try
            {
                NodeStatusReport a = await NodeStatusReport.GetAsync(_http, _a!.Admin, state: false, cancel).ConfigureAwait(false);
                NodeStatusReport b = await NodeStatusReport.GetAsync(_http, _b!.Admin, state: false, cancel).ConfigureAwait(false);
                if (a.IsPrimary != b.IsPrimary && (a.Role == "backup" || b.Role == "backup"))
                {
                    return a.IsPrimary ? (_a, a.Epoch ?? 0) : (_b, b.Epoch ?? 0);
                }
                seen = $"A {a.Role}, B {b.Role}";
            }
            catch (Exception e) when (e is HttpRequestException or InvalidOperationException || (e is TaskCanceledException && !cancel.IsCancellationRequested))
            {
                seen = e.Message;
            }
            await Task.Delay(50, cancel).ConfigureAwait(false);
        }
        throw new InvalidOperationException($"the pair has not been one primary and one backup for {WholeTimeout.TotalSeconds:0} s ({seen})");
    }

    private async Task SetLinkAsync(LinkFault fault, TimeSpan delay = default)
    {
        await _a!.LinkProxy!.SetAsync(fault, delay).ConfigureAwait(false);
        await _b!.LinkProxy!.SetAsync(fault, delay).ConfigureAwait(false);
    }

    /// <summary>
    /// Both journals verify; the backup's chain is a prefix of the primary's (equal once the last
    /// blocks are committed); the round's receipts pass the <see cref="JournalAudit"/> against the
    /// primary's journal (every order in it exactly once, in its receipt's block; no split brain).
    /// Also the takeover time, from the epochs of the blocks the receipts name.
    /// </summary>
    private async Task CheckJournalsAsync(RoundResult round, IReadOnlyList<AckedOrder> acks, long fault, ulong epochBefore)
    {
        var audit = new JournalAudit(acks);
        ChainState primaryChain;
        var clock = Stopwatch.StartNew();
        while (true)
        {
            primaryChain = Primary.ReadChain(audit);
            if (primaryChain.Head?.LastLsn >= audit.NeededLsn || clock.Elapsed > JournalAudit.DefaultWait)
            {
                break;
            }
            await Task.Delay(50).ConfigureAwait(false);
        }
        ChainState backupChain;
        clock.Restart();
        while (true)
        {
            backupChain = Backup.ReadChain(null);
            if (backupChain.Head?.BlockNo >= primaryChain.Head?.BlockNo || clock.Elapsed > TimeSpan.FromSeconds(5))
            {
                break;
            }
            await Task.Delay(50).ConfigureAwait(false);
        }
        round.JournalsIntact = primaryChain.Intact && backupChain.Intact;
        foreach ((string node, ChainState chain) in new[] { ("primary", primaryChain), ("backup", backupChain) })
        {
            if (chain.Fault is { } broken)
            {
                round.Detail += $"; the {node}'s journal: {broken}";
            }
        }
        if (primaryChain.Head is { } p && backupChain.Head is { } b)
        {
            // One chain is a prefix of the other (equal once the last commits are in).
            ulong at = Math.Min(p.BlockNo, b.BlockNo);
            Hash32 ours = at == p.BlockNo ? p.Hash : Primary.HashAt(at);
            Hash32 theirs = at == b.BlockNo ? b.Hash : Backup.HashAt(at);
            round.JournalsAgree = ours == theirs;
        }
        Primary.Verified(primaryChain);
        Backup.Verified(backupChain);

        AuditResult verdict = audit.Judge();
        (round.Lost, round.Duplicates, round.SplitBrain) = (verdict.Lost, verdict.Duplicates, verdict.Split);
        if (verdict.Unreadable is { } unreadable)
        {
            round.Detail += $"; the audit stopped reading the primary's journal early: {unreadable}";
        }

        // Takeover: from the fault to the first receipt in a block of a newer epoch than before it.
        // The epoch before the fault is the primary's as it reported it at the round's start: on a busy
        // machine the load may have had no receipt yet when the fault struck.
        ulong EpochOf(AckedOrder a) => audit.EpochOf(a.BlockNo) ?? 0;
        long? first = acks.Where(a => a.ArrivedTicks >= fault && EpochOf(a) > epochBefore).Select(a => (long?)a.ArrivedTicks).Min();
        round.TakeoverMs = first is { } f ? Milliseconds(f - fault) : null;
    }

    /// <summary>What a journal check read: the verification, from the node's last verified point.</summary>
    private sealed record ChainState(bool Intact, ChainHead? Head, long CommittedUntil, string? Fault = null);

    /// <summary>The longest time between two receipts, in ms, and when it began (a timestamp).</summary>
    private static (double Ms, long From) LongestGap(IReadOnlyList<AckedOrder> acks)
    {
        if (acks.Count < 2)
        {
            return (0, 0);
        }
        long[] times = [.. acks.Select(a => a.ArrivedTicks).Order()];
        long longest = 0;
        long from = times[0];
        for (int i = 1; i < times.Length; i++)
        {
            if (times[i] - times[i - 1] > longest)
            {
                longest = times[i] - times[i - 1];
                from = times[i - 1];
            }
        }
        return (Milliseconds(longest), from);
    }

    private static double Milliseconds(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;

    private static string Tail(string output) => output.Length > 4000 ? output[^4000..] : output;

    internal static int FreePort() => LoopbackPorts.Free();

    public async ValueTask DisposeAsync()
    {
        foreach (Node? node in new[] { _a, _b })
        {
            node?.Dispose();
            if (node is not null && (options.Keep || _failed))
            {
                Directory.CreateDirectory(_root);
                await File.WriteAllTextAsync(Path.Combine(_root, $"{node.Name}.log"), node.Log).ConfigureAwait(false);
            }
        }
        _witness?.Dispose();
        _witnessProxyA?.Dispose();
        _witnessProxyB?.Dispose();
        _http.Dispose();
        if (Directory.Exists(_root))
        {
            if (options.Keep || _failed)
            {
                await say.WriteLineAsync($"{(options.Attach.Length > 0 ? "logs" : "data")} kept in {_root}").ConfigureAwait(false);
            }
            else
            {
                Directory.Delete(_root, recursive: true);
            }
        }
    }

    /// <summary>One node of the pair: where its clients and its journal are, its current process, and how to start it again.</summary>
    private abstract class Node(string name, string journalDirectory) : IDisposable
    {
        public string Name { get; } = name;

        public string JournalDirectory { get; } = journalDirectory;

        public abstract string ClientEndpoint { get; }

        /// <summary>The node's admin endpoint (its /status says which role it has).</summary>
        public abstract string Admin { get; }

        /// <summary>In front of this node's replication endpoint (the other node reaches it only through here); null where the drill did not start the node.</summary>
        public ILinkSwitch? LinkProxy { get; protected init; }

        /// <summary>Between this node and the witness; null where the drill did not start the node.</summary>
        public ILinkSwitch? WitnessProxy { get; protected init; }

        public Node? Peer { get; set; }

        public WatchedProcess Process { get; private set; } = null!;

        /// <summary>Everything the node's processes have logged (while watched), one after the other.</summary>
        public string Log => _earlier + Process?.Output;

        private string _earlier = "";

        /// <summary>Starts the node (again) in <paramref name="role"/> after its process died; returns a note for the round's detail.</summary>
        public abstract Task<string> RestartAsync(string role, CancellationToken cancel);

        protected void Replace(WatchedProcess process, string role)
        {
            if (Process is not null)
            {
                _earlier += Process.Output + $"--- restarted as {role} ---\n";
                Process.Dispose();
            }
            Process = process;
        }

        /// <summary>Where the last intact verification of this node's journal ended: the next one re-hashes only what came after.</summary>
        private (long Address, ChainHead Head)? _verified;

        /// <summary>
        /// Verifies the journal from where the last check ended (or from genesis, the first time or
        /// when the journal was replaced by a rejoin, which breaks the continuation) and has
        /// <paramref name="audit"/> read the blocks after that point. Every order of a round is
        /// sealed after the check of the round before it, so nothing the round needs lies before it.
        /// </summary>
        public ChainState ReadChain(JournalAudit? audit)
        {
            using JournalReader reader = JournalReader.Open(JournalDirectory);
            VerifyReport report = _verified is { } from ? reader.VerifyFrom(from.Address, from.Head) : reader.Verify();
            long? scanFrom = _verified?.Address;
            if (!report.Intact && _verified is not null)
            {
                report = reader.Verify(); // replaced since: verify it whole
                scanFrom = null;
            }
            audit?.Read(reader, scanFrom);
            return new ChainState(report.Intact, report.Head, report.CommittedUntil, report.Fault?.ToString());
        }

        /// <summary>The hash of block <paramref name="blockNo"/> (a full scan: only for the rare agreement check below a head).</summary>
        public Hash32 HashAt(ulong blockNo)
        {
            Hash32 found = default;
            using JournalReader reader = JournalReader.Open(JournalDirectory);
            reader.Scan((entry, _) =>
            {
                if (BlockFormat.TryReadHeader(entry, out BlockHeader header) is not null || header.BlockNo > blockNo)
                {
                    return false;
                }
                if (header.BlockNo == blockNo)
                {
                    found = BlockFormat.StoredHash(entry, in header);
                }
                return true;
            });
            return found;
        }

        /// <summary>The next check starts where <paramref name="chain"/> ended, if it was intact.</summary>
        public void Verified(ChainState chain) => _verified = chain.Intact && chain.Head is { } head ? (chain.CommittedUntil, head) : null;

        public virtual void Dispose()
        {
            Process?.Dispose();
            (LinkProxy as IDisposable)?.Dispose();
            (WitnessProxy as IDisposable)?.Dispose();
        }
    }

    /// <summary>A node the drill started: its ports and data, the proxies in its links; disposing kills it.</summary>
    private sealed class OwnNode : Node
    {
        private readonly string _data;
        private readonly FaultProxy _linkProxy;
        private readonly FaultProxy _witnessProxy;
        private readonly HttpClient _http;
        private readonly string _cluster;
        private readonly string _key;
        private readonly int _clientPort = FreePort();
        private readonly int _adminPort = FreePort();
        private readonly int _replicationPort = FreePort();

        public OwnNode(string name, string data, HttpClient http, FaultProxy witnessProxy, string cluster, string key)
            : base(name, System.IO.Path.Combine(data, "journal"))
        {
            _data = data;
            _http = http;
            _cluster = cluster;
            _key = key;
            _witnessProxy = witnessProxy;
            _linkProxy = new FaultProxy(new IPEndPoint(IPAddress.Loopback, 0), new IPEndPoint(IPAddress.Loopback, _replicationPort));
            LinkProxy = _linkProxy;
            WitnessProxy = witnessProxy;
        }

        public override string ClientEndpoint => $"127.0.0.1:{_clientPort}";

        public override string Admin => $"127.0.0.1:{_adminPort}";

        public void Start(string role)
        {
            NodeProcess process = NodeProcess.Start(_clientPort, "serve", "--role", role, "--data", _data, "--listen", ClientEndpoint, "--admin", Admin,
                "--replication-listen", $"127.0.0.1:{_replicationPort}", "--peer", $"127.0.0.1:{((OwnNode)Peer!)._linkProxy.Port}",
                "--witness", $"127.0.0.1:{_witnessProxy.Port}", "--cluster", _cluster, "--key", _key,
                "--ledger-key", Path.Combine(Path.GetDirectoryName(_cluster)!, Engine.Security.ClusterSetup.LedgerKeyFileName));
            // Its output is read for people; what the drill decides on are its pair events, from its admin endpoint.
            process.FollowEvents(_http, Admin, process.Id, appendText: false);
            Replace(process, role);
        }

        public override Task<string> RestartAsync(string role, CancellationToken cancel)
        {
            Start(role);
            return Task.FromResult("");
        }

        /// <summary>Journals a rejoining node moved aside (never acknowledged suffixes): the drill keeps the disk bounded.</summary>
        public void RemoveDiscardedJournals()
        {
            foreach (string aside in Directory.GetDirectories(_data, "journal.discarded-*"))
            {
                Directory.Delete(aside, recursive: true);
            }
        }

    }

    /// <summary>
    /// A node started elsewhere, followed by its admin endpoint. A restart repeats its command line,
    /// working directory and environment with another <c>--role</c>, detached: it outlives the drill,
    /// as the node it replaces would have. Disposing stops watching; it never kills.
    /// </summary>
    private sealed class AttachedNode : Node
    {
        private readonly string _admin;
        private readonly HttpClient _http;

        public AttachedNode(string name, string admin, AttachedProcess process, HttpClient http, RemoteProxy? linkProxy, RemoteProxy? witnessProxy)
            : base(name, process.Status.Journal)
        {
            LinkProxy = linkProxy;
            WitnessProxy = witnessProxy;
            _admin = admin;
            _http = http;
            Replace(process, process.Status.Role);
        }

        public override string ClientEndpoint => ((AttachedProcess)Process).Status.ClientEndpoint;

        public override string Admin => _admin;

        public override async Task<string> RestartAsync(string role, CancellationToken cancel)
        {
            var old = (AttachedProcess)Process;
            string output = old.Launch.Relaunch(role, System.IO.Path.Combine(System.IO.Path.GetDirectoryName(JournalDirectory)!, "restarted-by-drill.log"));
            Replace(await AttachedProcess.AttachAsync(_http, _admin, StartTimeout, old.Id, cancel).ConfigureAwait(false), role);
            return $"; restarted as {role}, pid {Process.Id}, output to {output}";
        }
    }
}
