using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Engine.Cli;
using Engine.IntegrationTests.Support;
using Engine.Protocol;
using Engine.Replication;

namespace Engine.IntegrationTests;

/// <summary>
/// Failing fast and failing right, with real <c>engine serve</c> pairs: a node whose journal fails
/// under load (the test-only fault point <c>ENGINE_FAULT_JOURNAL_APPEND_AFTER_BLOCKS</c>, or a real
/// full disk: a small tmpfs as its data directory, where this process may mount one) halts. A primary
/// falls silent on the link, so its backup takes over and no acknowledged order is lost; it says why
/// on /status, answers logons "not primary" and exits 4 on SIGTERM. A backup stops being one and
/// never takes over, and its primary follows the solo rule.
/// </summary>
public class FailFastTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    /// <summary>The exit code of a halted node that was then stopped (<c>engine serve --help</c>).</summary>
    private const int ExitHalted = 4;

    /// <param name="fault">injected: the fault point fails the 21st block (a second or two into the load, however the load batches); disk-full: a 1 MiB tmpfs fills.</param>
    /// <param name="lease">allow-solo: the backup takes over alone at once; witness: only with the witness's lease,
    /// which the halted primary must not take when its link closes.</param>
    [TestCase("injected", "witness")]
    [TestCase("disk-full", "allow-solo")]
    public async Task A_primary_whose_journal_fails_under_load_halts_and_its_backup_takes_over_losing_nothing(string fault, string lease)
    {
        string root = Path.Combine(Path.GetTempPath(), $"failfast-{Guid.NewGuid():N}");
        string primaryData = Path.Combine(root, "primary"), backupData = Path.Combine(root, "backup");
        int primaryPort = Ports.Free(), backupPort = Ports.Free(), primaryReplication = Ports.Free(), backupReplication = Ports.Free();
        int primaryAdmin = Ports.Free(), backupAdmin = Ports.Free(), witnessPort = Ports.Free();
        Directory.CreateDirectory(primaryData);
        bool mounted = fault == "disk-full" && MountOrIgnore(primaryData, "1m");
        try
        {
            using EngineProcess? witness = lease == "witness" ? EngineProcess.Start("witness", "--listen", $"127.0.0.1:{witnessPort}") : null;
            witness?.WaitForOutput(o => o.Contains("listening", StringComparison.Ordinal), "the witness to start", Wait);
            string[] leaseArgs = lease == "witness" ? ["--witness", $"127.0.0.1:{witnessPort}"] : ["--allow-solo"];
            var faulty = fault == "injected" ? new Dictionary<string, string> { ["ENGINE_FAULT_JOURNAL_APPEND_AFTER_BLOCKS"] = "20" } : new Dictionary<string, string>();
            using var primary = EngineProcess.Start(faulty, ["serve", "--role", "primary", "--data", primaryData, "--listen", $"127.0.0.1:{primaryPort}",
                "--admin", $"127.0.0.1:{primaryAdmin}", "--replication-listen", $"127.0.0.1:{primaryReplication}", "--peer", $"127.0.0.1:{backupReplication}",
                .. lease == "witness" ? leaseArgs : []]);
            // The backup once the primary is up: the two starting at once on two shared cores is where a
            // primary is most easily starved past the silence timeout (an unplanned takeover, no fault).
            primary.WaitForLog(o => o.Contains("listening for front-ends", StringComparison.Ordinal), "the primary to start", Wait);
            using var backup = EngineProcess.Start(["serve", "--role", "backup", "--data", backupData, "--listen", $"127.0.0.1:{backupPort}",
                "--admin", $"127.0.0.1:{backupAdmin}", "--replication-listen", $"127.0.0.1:{backupReplication}", "--peer", $"127.0.0.1:{primaryReplication}",
                .. leaseArgs]);
            // In step, and with a witness the lease the primary held while it had no backup given back.
            primary.WaitForEvents(events => events.Any(e => e.Kind == PairEventKind.BackupInStep)
                && (!events.Any(e => e.Kind == PairEventKind.LeaseGranted) || events.Any(e => e.Kind == PairEventKind.LeaseReleased)),
                "the pair to be in step", Wait);
            await WaitWholeAsync(primaryAdmin, backupAdmin, primary, backup);

            using var load = EngineProcess.Start("load", "--target", $"127.0.0.1:{primaryPort},127.0.0.1:{backupPort}", "--rate", "5000",
                "--duration", "8", "--connections", "4", "--journal", Path.Combine(backupData, "journal"), "--json");

            NodeStatusReport halted = await WaitStatusAsync(primaryAdmin, s => s.Status is { Halted: true }, "the primary to halt on its failed journal", primary, backup, load);
            // A primary that lost its backup before the fault (starved of the CPU for the silence timeout) and
            // then acknowledged alone under the lease halts holding blocks the backup lacks: the backup must not
            // take over then, and this test's question is not asked.
            InconclusiveIfBefore(primary, PairEventKind.BackupLost, PairEventKind.Halted, "the primary lost its backup before its journal failed");
            NodeStatusReport tookOver = await WaitStatusAsync(backupAdmin, s => s.IsPrimary,
                "the backup to take over from the halted primary", primary, backup, load);
            Assert.That(tookOver.Epoch, Is.EqualTo(2UL), "a takeover: the next epoch");

            Assert.That(load.WaitForExit(Wait), Is.Zero, load.StdErr);
            JsonElement result = JsonDocument.Parse(load.StdOut.Trim().Split('\n')[^1]).RootElement;
            Assert.Multiple(() =>
            {
                Assert.That(result.GetProperty("lost").GetInt64(), Is.Zero, "acked orders missing from the new primary's journal");
                Assert.That(result.GetProperty("duplicates").GetInt64(), Is.Zero);
                Assert.That(result.GetProperty("errors").GetInt64(), Is.Zero, "requests never answered");
                Assert.That(result.GetProperty("reconnects").GetInt64(), Is.GreaterThanOrEqualTo(4), "every client went over to the new primary");
                Assert.That(result.GetProperty("acked").GetInt64(), Is.GreaterThan(5_000));
            });

            // The halted node says so and why, sends clients away, and stays so.
            NodeStatusReport status = await StatusAsync(primaryAdmin);
            string reason = status.Status!.HaltReason!;
            Assert.Multiple(() =>
            {
                Assert.That(status.Role, Is.EqualTo("halted"));
                Assert.That(status.Status!.Role, Is.EqualTo("halted"));
                Assert.That(reason, Does.Contain("journal failed"));
                Assert.That(reason, fault == "injected" ? Does.Contain("ENGINE_FAULT_JOURNAL_APPEND_AFTER_BLOCKS") : Does.Contain("Commit").Or.Contain("space"), "the cause is named");
                Assert.That(status.BackupInStep, Is.False, "the link is closed");
                Assert.That(halted.Status!.Lsn, Is.LessThanOrEqualTo(tookOver.Lsn!.Value));
            });
            Assert.That(await LogonAsync(primaryPort), Is.EqualTo(LogonStatus.NotPrimary), "a logon to the halted node is answered 'not primary'");
            if (lease == "witness")
            {
                // Its backup was in step when it halted: it must not have taken the witness's lease as its link
                // closed (the backup, which holds everything, needed it to take over), nor hold it now.
                Assert.That(status.SoloLease, Is.False, "the halted primary holds no lease");
                Assert.That(tookOver.SoloLease, Is.True, "the new primary has the witness's lease");
            }

            Assert.That(primary.Terminate(Wait), Is.EqualTo(ExitHalted), "SIGTERM: the halted node's own exit code");
            Assert.That(primary.HasEvent(PairEventKind.Halted), Is.True);
        }
        finally
        {
            if (mounted)
            {
                Unmount(primaryData);
            }
            if (Directory.Exists(root))
            {
                Directory.Delete(root, recursive: true);
            }
        }
    }

    /// <param name="fault">disk-full: its 1 MiB tmpfs fills (the injected fault point, which fails the backup's 21st block, is
    /// left to the simulator's journal failures, which fail a backup's append or commit in thousands of seeds).</param>
    [TestCase("disk-full")]
    public async Task A_backup_whose_journal_fails_halts_never_takes_over_and_the_primary_goes_on_alone(string fault)
    {
        string root = Path.Combine(Path.GetTempPath(), $"failfast-{Guid.NewGuid():N}");
        string primaryData = Path.Combine(root, "primary"), backupData = Path.Combine(root, "backup");
        int primaryPort = Ports.Free(), backupPort = Ports.Free(), primaryReplication = Ports.Free(), backupReplication = Ports.Free();
        int primaryAdmin = Ports.Free(), backupAdmin = Ports.Free();
        Directory.CreateDirectory(backupData);
        bool mounted = fault == "disk-full" && MountOrIgnore(backupData, "1m");
        try
        {
            using var primary = EngineProcess.Start("serve", "--role", "primary", "--data", primaryData, "--listen", $"127.0.0.1:{primaryPort}",
                "--admin", $"127.0.0.1:{primaryAdmin}", "--replication-listen", $"127.0.0.1:{primaryReplication}", "--allow-solo");
            primary.WaitForLog(o => o.Contains("listening for front-ends", StringComparison.Ordinal), "the primary to start", Wait);
            var faulty = fault == "injected" ? new Dictionary<string, string> { ["ENGINE_FAULT_JOURNAL_APPEND_AFTER_BLOCKS"] = "20" } : new Dictionary<string, string>();
            using var backup = EngineProcess.Start(faulty, "serve", "--role", "backup", "--data", backupData, "--listen", $"127.0.0.1:{backupPort}",
                "--admin", $"127.0.0.1:{backupAdmin}", "--replication-listen", $"127.0.0.1:{backupReplication}", "--peer", $"127.0.0.1:{primaryReplication}", "--allow-solo");
            primary.WaitForEvent(PairEventKind.BackupInStep, "the pair to be in step", Wait);
            await WaitWholeAsync(primaryAdmin, backupAdmin, primary, backup);

            using var load = EngineProcess.Start("load", "--target", $"127.0.0.1:{primaryPort},127.0.0.1:{backupPort}", "--rate", "5000",
                "--duration", "8", "--connections", "4", "--journal", Path.Combine(primaryData, "journal"), "--json");
            NodeStatusReport halted = await WaitStatusAsync(backupAdmin, s => s.Role == "halted", "the backup to halt on its failed journal", primary, backup, load);
            InconclusiveIfBefore(backup, PairEventKind.PrimaryLost, PairEventKind.Halted, "the backup lost its primary before its journal failed");
            primary.WaitForEvent(PairEventKind.BackupLost, "the primary to lose its backup", Wait);

            Assert.That(load.WaitForExit(Wait), Is.Zero, load.StdErr);
            JsonElement result = JsonDocument.Parse(load.StdOut.Trim().Split('\n')[^1]).RootElement;
            Assert.Multiple(() =>
            {
                Assert.That(result.GetProperty("lost").GetInt64(), Is.Zero, "acked orders missing from the primary's journal");
                Assert.That(result.GetProperty("duplicates").GetInt64(), Is.Zero);
                Assert.That(result.GetProperty("errors").GetInt64(), Is.Zero, "requests never answered");
                Assert.That(result.GetProperty("acked").GetInt64(), Is.GreaterThan(5_000));
                Assert.That(result.GetProperty("rejected_by_reason").TryGetProperty("NoBackup", out _), Is.False, "with the solo lease the primary goes on alone");
            });
            Assert.Multiple(() =>
            {
                Assert.That(halted.Halted, Is.True);
                Assert.That(halted.HaltReason, Does.Contain("journal failed").And.Contain("never takes over"));
                Assert.That(backup.HasEvent(PairEventKind.Halted), Is.True);
                Assert.That(backup.HasEvent(PairEventKind.PrimaryLost), Is.False, "its own disk is not the primary's death");
            });

            // The primary follows the solo rule (its lease: --allow-solo): it acknowledges alone.
            await using (var client = await Engine.Client.EngineClient.ConnectAsync(new Engine.Client.ClientOptions
            {
                Endpoints = [$"127.0.0.1:{primaryPort}"],
                ClientId = 20,
                Token = "dev-token-20",
            }))
            {
                Engine.Client.SubmitResult alone = await client.SubmitAsync(Transaction.NewOrder(0, 0, 1, 1, 1, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 990, 1)).WaitAsync(Wait);
                Assert.That(alone.Accepted, Is.True, $"the primary acknowledges alone: {alone}");
            }
            NodeStatusReport primaryStatus = await StatusAsync(primaryAdmin);
            Assert.That(primaryStatus.BackupInStep, Is.False);

            // The primary dies. An in-step backup takes over within the 500 ms silence timeout (tens of
            // milliseconds after a kill: the connection resets); this one must not, ever. Watched for
            // eight times that long: a negative cannot be waited for, only observed over a bound.
            primary.KillHard();
            var watch = Stopwatch.StartNew();
            while (watch.Elapsed < TimeSpan.FromSeconds(4))
            {
                NodeStatusReport now = await StatusAsync(backupAdmin);
                Assert.That(now.Role, Is.EqualTo("halted"), $"the halted backup took over: {now}");
                await Task.Delay(50);
            }
            Assert.That(backup.HasEvent(PairEventKind.TakeOver), Is.False);
            Assert.That(() => ConnectClientPort(backupPort), Throws.InstanceOf<SocketException>(), "the halted backup refuses clients at once (its pre-bound client port is closed)");

            Assert.That(backup.Terminate(Wait), Is.EqualTo(ExitHalted), "SIGTERM: the halted node's own exit code");
        }
        finally
        {
            if (mounted)
            {
                Unmount(backupData);
            }
            if (Directory.Exists(root))
            {
                Directory.Delete(root, recursive: true);
            }
        }
    }

    /// <summary>Polls GET /status until <paramref name="condition"/> holds; fails naming <paramref name="what"/> and the last status (and the load's progress) if it does not within the wait.</summary>
    private static async Task<NodeStatusReport> WaitStatusAsync(int admin, Func<NodeStatusReport, bool> condition, string what, params EngineProcess[] show)
    {
        var clock = Stopwatch.StartNew();
        string last = "";
        while (clock.Elapsed < Wait)
        {
            try
            {
                NodeStatusReport status = await StatusAsync(admin);
                if (condition(status))
                {
                    return status;
                }
                last = status.ToString();
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or KeyNotFoundException or InvalidOperationException)
            {
                last = e.Message;
            }
            await Task.Delay(20);
        }
        Assert.Fail($"timed out after {Wait.TotalSeconds} s waiting for {what}; last status: {last}\n" + string.Join("\n", show.Select(p => $"--- pid {p.Id}:\n{Tail(p.LogText)}{Tail(p.StdErr)}")));
        throw new InvalidOperationException("unreachable");
    }

    /// <summary>
    /// Makes the test inconclusive if <paramref name="process"/> raised an event of kind <paramref name="unplanned"/>
    /// before its first of kind <paramref name="marker"/> (or with none yet): a pair event no fault of the test's
    /// made (on two shared cores, a node starved of the CPU past the 500 ms silence timeout), after which the
    /// test's question is not asked.
    /// </summary>
    private static void InconclusiveIfBefore(EngineProcess process, PairEventKind unplanned, PairEventKind marker, string what)
    {
        List<PairEvent> events = [.. process.Events];
        int at = events.FindIndex(e => e.Kind == unplanned);
        int end = events.FindIndex(e => e.Kind == marker);
        if (at >= 0 && (end < 0 || at < end))
        {
            Assert.Inconclusive($"unplanned: {what}:\n{string.Join('\n', events.Take(end < 0 ? events.Count : end).TakeLast(25))}");
        }
    }

    private static string Tail(string output) => string.Join('\n', output.Split('\n').TakeLast(25));

    /// <summary>
    /// Waits until the node started as primary reports itself primary of epoch 1 with its backup in step
    /// and the other reports itself that backup, following live: the roles the test's fault is aimed at
    /// (a node starved of the CPU for the silence timeout may be taken over with no fault at all).
    /// </summary>
    /// <remarks>
    /// If instead the roles have changed before any fault was injected, the test is inconclusive, not
    /// failed: its fault is bound to a process (its environment, its data directory), and the engine did
    /// what it must (the drill counts such takeovers as unplanned, not as failures).
    /// </remarks>
    private static async Task WaitWholeAsync(int primaryAdmin, int backupAdmin, params EngineProcess[] show)
    {
        // Both nodes at each look, so that a swap is seen whichever side shows it first.
        await WaitStatusAsync(primaryAdmin, primary =>
        {
            NodeStatusReport backup = StatusAsync(backupAdmin).GetAwaiter().GetResult();
            bool roles = Planned(primary, "primary") & Planned(backup, "backup"); // both looked at, always
            return roles && primary.BackupInStep == true && backup.InStep == true;
        }, "the primary to report its backup in step and the backup itself in step", show);

        static bool Planned(NodeStatusReport status, string role)
        {
            string now = status.Role;
            bool swapped = role == "primary" ? now == "backup" : now.StartsWith("primary", StringComparison.Ordinal);
            if (swapped || status.Epoch is { } epoch && epoch != 1)
            {
                Assert.Inconclusive($"an unplanned takeover before the fault (a node starved of the CPU past the silence timeout?): the node started as {role} reports {status}");
            }
            return now == role;
        }
    }

    private static Task<NodeStatusReport> StatusAsync(int admin) => AdminStatus.GetAsync($"127.0.0.1:{admin}", state: false);

    /// <summary>Logs on as client 30 on a raw socket and returns the answer's status.</summary>
    private static async Task<LogonStatus> LogonAsync(int port)
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using var timeout = new CancellationTokenSource(Wait);
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), timeout.Token);
        var frame = new byte[ReplyCodec.MaxFrameBytes];
        int length = ReplyCodec.EncodeLogon(30, "dev-token-30", frame);
        await socket.SendAsync(frame.AsMemory(0, length), SocketFlags.None, timeout.Token);
        int expected = Frame.HeaderBytes + ReplyCodec.LogonAckBodyBytes, got = 0;
        while (got < expected)
        {
            int read = await socket.ReceiveAsync(frame.AsMemory(got, expected - got), SocketFlags.None, timeout.Token);
            Assert.That(read, Is.Not.Zero, "the node closed the connection without answering the logon");
            got += read;
        }
        Assert.That(ReplyCodec.DecodeLogonAck(frame.AsSpan(0, expected), out LogonAck ack), Is.EqualTo(RejectReason.None));
        return ack.Status;
    }

    private static void ConnectClientPort(int port)
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        socket.Connect(new IPEndPoint(IPAddress.Loopback, port));
    }

    /// <summary>Mounts a tmpfs of <paramref name="size"/> on <paramref name="directory"/>; the test is skipped, saying why, where that is not allowed (not root).</summary>
    private static bool MountOrIgnore(string directory, string size)
    {
        (int code, string output) = Run("mount", "-t", "tmpfs", "-o", $"size={size}", "tmpfs", directory);
        if (code != 0)
        {
            Assert.Ignore($"a real full disk needs a tmpfs, and mounting one failed here (mount exited {code}: {output.Trim()}); the injected fault point (the primary's case) and the simulator's journal failures cover the same logic");
        }
        return true;
    }

    private static void Unmount(string directory)
    {
        if (Run("umount", directory).Code != 0)
        {
            Run("umount", "-l", directory); // still busy: detach it, so the directory can go
        }
    }

    private static (int Code, string Output) Run(string file, params string[] args)
    {
        try
        {
            var info = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
            foreach (string arg in args)
            {
                info.ArgumentList.Add(arg);
            }
            using Process process = Process.Start(info)!;
            string output = process.StandardError.ReadToEnd() + process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            return (process.ExitCode, output);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (-1, e.Message);
        }
    }

}
