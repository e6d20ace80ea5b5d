using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Engine.Cli.Load;
using Engine.Client;
using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Protocol;
using Engine.Replication;

namespace Engine.Cli;

/// <summary>
/// <c>engine demo</c>, the README's run command: a local process pair (two real processes), a load
/// through the client library, the primary killed with SIGKILL, the backup taking over and the load
/// going on, the old node restarted as backup and catching up; then every acknowledged order is
/// checked against the journal and the two chains are compared.
/// </summary>
internal static class DemoCommand
{
    public static Command Build()
    {
        var seconds = new Option<int>("--seconds") { Description = "How long the load runs (default 12): the primary is killed at a third, the old node rejoins at two thirds.", DefaultValueFactory = _ => 12 };
        var rate = new Option<double>("--rate") { Description = "Orders per second, open loop (default 10000).", DefaultValueFactory = _ => 10_000 };
        var json = new Option<bool>("--json") { Description = "End with one JSON object (acked, lost, duplicates, takeover_ms, heads_equal, …)." };
        var keep = new Option<bool>("--keep") { Description = "Keep the two nodes' data directories (printed) instead of deleting them." };
        var command = new Command("demo", "Run a local primary+backup pair under load, SIGKILL the primary, watch the backup take over and the old primary rejoin as backup, and check that no acknowledged order was lost or doubled.")
        {
            seconds, rate, json, keep,
        };
        command.SetAction(async (parse, cancel) =>
        {
            int duration = parse.GetValue(seconds);
            if (duration < 6 || parse.GetValue(rate) <= 0)
            {
                Console.Error.WriteLine("engine demo: --seconds must be at least 6 and --rate positive");
                return 2;
            }
            return await RunAsync(duration, parse.GetValue(rate), parse.GetValue(json), parse.GetValue(keep), cancel).ConfigureAwait(false);
        });
        return command;
    }

    private static async Task<int> RunAsync(int seconds, double rate, bool json, bool keep, CancellationToken cancel)
    {
        TextWriter say = json ? Console.Error : Console.Out;
        string root = Path.Combine(Path.GetTempPath(), $"engine-demo-{Environment.ProcessId}");
        string dataA = Path.Combine(root, "a"), dataB = Path.Combine(root, "b");
        int portA = LoopbackPorts.Free(), portB = LoopbackPorts.Free(), replA = LoopbackPorts.Free(), replB = LoopbackPorts.Free();
        // Admin endpoints: the demo follows each node's pair events (by kind) through them.
        string adminA = $"127.0.0.1:{LoopbackPorts.Free()}", adminB = $"127.0.0.1:{LoopbackPorts.Free()}";
        // The demo's own cluster: the replication link authenticates and encrypts with real keys, as in production.
        string clusterDir = Path.Combine(root, "cluster");
        Engine.Security.ClusterSetup.Init(clusterDir, force: true);
        string cluster = Path.Combine(clusterDir, "cluster.json");
        string keyA = Engine.Security.ClusterSetup.KeyPath(clusterDir, "node-a"), keyB = Engine.Security.ClusterSetup.KeyPath(clusterDir, "node-b");
        string ledgerKey = Path.Combine(clusterDir, Engine.Security.ClusterSetup.LedgerKeyFileName); // whichever node is primary signs the ledger's heads
        string[] primaryA = ["serve", "--role", "primary", "--data", dataA, "--listen", $"127.0.0.1:{portA}", "--replication-listen", $"127.0.0.1:{replA}", "--cluster", cluster, "--key", keyA, "--ledger-key", ledgerKey, "--admin", adminA];
        string[] backupB = ["serve", "--role", "backup", "--data", dataB, "--listen", $"127.0.0.1:{portB}", "--peer", $"127.0.0.1:{replA}", "--replication-listen", $"127.0.0.1:{replB}", "--allow-solo", "--cluster", cluster, "--key", keyB, "--ledger-key", ledgerKey, "--admin", adminB];
        string[] rejoinA = ["serve", "--role", "backup", "--data", dataA, "--listen", $"127.0.0.1:{portA}", "--peer", $"127.0.0.1:{replB}", "--replication-listen", $"127.0.0.1:{replA}", "--cluster", cluster, "--key", keyA, "--ledger-key", ledgerKey, "--admin", adminA];
        var wait = TimeSpan.FromSeconds(30);
        NodeProcess? a = null, b = null;
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        try
        {
            a = NodeProcess.Start(portA, primaryA);
            b = NodeProcess.Start(portB, backupB);
            a.FollowEvents(http, adminA, a.Id, appendText: false);
            b.FollowEvents(http, adminB, b.Id, appendText: false);
            if (!a.WaitForEvent(PairEventKind.BackupInStep, wait))
            {
                return Fail("the pair did not come up", a, b);
            }
            await say.WriteLineAsync($"pair up: primary A pid {a.Id} on 127.0.0.1:{portA}, backup B pid {b.Id} on 127.0.0.1:{portB} (memory durability, synchronous mirroring)").ConfigureAwait(false);

            var options = new LoadOptions([$"127.0.0.1:{portA}", $"127.0.0.1:{portB}"], rate, TimeSpan.FromSeconds(seconds), null, 4, 1024, 1, "dev-token-{id}",
                Path.Combine(dataB, "journal"), 1, json);
            Task<LoadResult> load = new LoadGenerator(options, say).RunAsync(cancel);

            await Task.Delay(TimeSpan.FromSeconds(seconds / 3.0), cancel).ConfigureAwait(false);
            await say.WriteLineAsync($"SIGKILL primary A (pid {a.Id})").ConfigureAwait(false);
            int beforeKill = b.EventCount;
            long killedAt = Stopwatch.GetTimestamp();
            var takeover = Stopwatch.StartNew();
            a.KillHard();
            double takeoverMs = await FirstReceiptAsync(portA, portB, takeover, cancel).ConfigureAwait(false);
            await say.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"B took over: first receipt from the new primary {takeoverMs:F0} ms after the kill; the load goes on")).ConfigureAwait(false);
            await say.WriteLineAsync(TakeoverSteps(b, beforeKill, killedAt)).ConfigureAwait(false);

            await Task.Delay(TimeSpan.FromSeconds(seconds / 3.0), cancel).ConfigureAwait(false);
            a.Dispose();
            int mark = b.EventCount;
            a = NodeProcess.Start(portA, rejoinA);
            a.FollowEvents(http, adminA, a.Id, appendText: false);
            await say.WriteLineAsync($"restarted A (pid {a.Id}) as the backup of B").ConfigureAwait(false);
            if (!b.WaitForEvent(PairEventKind.BackupInStep, wait, since: mark))
            {
                return Fail("A did not catch up", a, b);
            }
            string caughtUp = b.LastEvent(PairEventKind.BackupInStep, mark)!.Text;
            bool diverged = a.HasEvent(PairEventKind.Diverged);
            await say.WriteLineAsync($"A {(diverged ? "discarded its unacknowledged suffix (journal moved aside), " : "")}caught up and follows B live: {caughtUp[(caughtUp.IndexOf("caught up", StringComparison.Ordinal))..]}").ConfigureAwait(false);

            LoadResult result = await load.ConfigureAwait(false);
            int exitA = a.Terminate(wait); // the backup first, so that the primary's last blocks are in both
            int exitB = b.Terminate(wait);
            (ChainHead? headA, bool intactA) = Verify(Path.Combine(dataA, "journal"));
            (ChainHead? headB, bool intactB) = Verify(Path.Combine(dataB, "journal"));
            bool headsEqual = headA is { } x && headB is { } y && x.BlockNo == y.BlockNo && x.Hash == y.Hash;
            AuditResult audit = result.Audit!; // the load was given B's journal
            bool ok = audit.Clean && result.Errors == 0 && headsEqual && intactA && intactB && exitA == 0 && exitB == 0;
            if (json)
            {
                Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object?>
                {
                    ["acked"] = result.Acked,
                    ["rejected"] = result.Rejected,
                    ["rejected_by_reason"] = result.RejectedByReason,
                    ["lost"] = audit.Lost,
                    ["duplicates"] = audit.Duplicates,
                    ["split"] = audit.Split,
                    ["errors"] = result.Errors,
                    ["reconnects"] = result.Reconnects,
                    ["takeover_ms"] = Math.Round(takeoverMs),
                    ["heads_equal"] = headsEqual,
                    ["head_block"] = headB?.BlockNo,
                    ["head_hash"] = headB?.Hash.ToString(),
                    ["head_epoch"] = headB?.Epoch,
                    ["ok"] = ok,
                }));
            }
            else
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"""

                    demo summary
                      orders acked        {result.Acked:N0}
                      rejected            {result.Rejected:N0} ({string.Join(", ", result.RejectedByReason.Select(kv => $"{kv.Key} {kv.Value:N0}"))})
                      lost                {audit.Lost} (acked orders missing from the journal, or not in the block their receipt names)
                      duplicates          {audit.Duplicates} (acked orders journaled twice)
                      split               {audit.Split} (block numbers the receipts name with two different hashes)
                      unanswered          {result.Errors}
                      takeover            {takeoverMs:F0} ms from SIGKILL to the new primary's first receipt
                      chain heads         {(headsEqual ? "equal" : "DIFFERENT")}: A block {headA?.BlockNo} {headA?.Hash.ToShortString()}, B block {headB?.BlockNo} {headB?.Hash.ToShortString()} (epoch {headB?.Epoch})
                      journals            A {(intactA ? "intact" : "BROKEN")}, B {(intactB ? "intact" : "BROKEN")}
                    {(ok ? "OK: nothing acknowledged was lost, doubled or split, and the pair is whole again." : "FAILED")}
                    """));
            }
            return ok ? 0 : 1;
        }
        finally
        {
            a?.Dispose();
            b?.Dispose();
            if (keep)
            {
                await say.WriteLineAsync($"data kept in {root}").ConfigureAwait(false);
            }
            else if (Directory.Exists(root))
            {
                Directory.Delete(root, recursive: true);
            }
        }
    }

    /// <summary>SIGKILL → first receipt: a probe client (id 64) submits until the new primary answers "accepted".</summary>
    /// <summary>The takeover's steps as B's events tell them (stamped by B to the millisecond), from the kill.</summary>
    private static string TakeoverSteps(WatchedProcess b, int since, long killedAt)
    {
        // The events reach us through B's /log, polled: give the last one a moment.
        var wait = Stopwatch.StartNew();
        (long Ticks, PairEvent Event)? serving;
        while ((serving = b.FirstEvent(since, e => e.Kind == PairEventKind.Note && e.Text.StartsWith("listening for front-ends", StringComparison.Ordinal))) is null
            && wait.Elapsed < TimeSpan.FromSeconds(2))
        {
            Thread.Sleep(10);
        }
        string Ms(long? ticks) => ticks is { } t ? string.Create(CultureInfo.InvariantCulture, $"{Stopwatch.GetElapsedTime(killedAt, t).TotalMilliseconds:F0} ms") : "?";
        string start = serving?.Event.Text is { } text && text.IndexOf("started in", StringComparison.Ordinal) is int at and >= 0 ? $" ({text[at..]})" : "";
        return $"  the steps, from the kill: B lost its primary at {Ms(b.FirstEventAt(since, PairEventKind.PrimaryLost))}, took over at {Ms(b.FirstEventAt(since, PairEventKind.TakeOver))}, "
            + $"served clients at {Ms(serving?.Ticks)}{start}; then the clients' reconnect, logon and first request";
    }

    private static async Task<double> FirstReceiptAsync(int portA, int portB, Stopwatch sinceKill, CancellationToken cancel)
    {
        await using EngineClient probe = await EngineClient.ConnectAsync(new ClientOptions
        {
            Endpoints = [$"127.0.0.1:{portB}", $"127.0.0.1:{portA}"],
            ClientId = 64,
            Token = "dev-token-64",
            AnswerTimeout = TimeSpan.FromMilliseconds(500),
            ReconnectFor = TimeSpan.FromSeconds(30),
        }, cancel).ConfigureAwait(false);
        ulong id = 1;
        while (true)
        {
            SubmitResult result = await probe.SubmitAsync(Transaction.NewOrder(0, 0, 1, 1, id++, Side.Buy, OrderType.Limit, TimeInForce.Ioc, 1, 1), cancel).ConfigureAwait(false);
            if (result.Accepted)
            {
                return sinceKill.Elapsed.TotalMilliseconds;
            }
            await Task.Delay(1, cancel).ConfigureAwait(false);
        }
    }

    private static (ChainHead? Head, bool Intact) Verify(string journal)
    {
        using JournalReader reader = JournalReader.Open(journal);
        VerifyReport report = reader.Verify();
        return (report.Head, report.Intact);
    }

    private static int Fail(string why, NodeProcess? a, NodeProcess? b)
    {
        Console.Error.WriteLine($"engine demo: {why}\n--- A ---\n{a?.Output}\n--- B ---\n{b?.Output}");
        return 2;
    }
}
