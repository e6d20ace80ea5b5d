using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Engine.Cli.Load;
using Engine.Core.Journaling;

namespace Engine.Cli;

/// <summary>
/// <c>engine demo</c>: the README's run command. Until the process pair exists it shows one node:
/// a real <c>engine serve</c> process under load, killed with SIGKILL halfway, restarted; the
/// clients reconnect and resend; at the end every acknowledged order is checked against the
/// journal and the chain is verified.
/// </summary>
internal static class DemoCommand
{
    public static Command Build()
    {
        var seconds = new Option<int>("--seconds") { Description = "How long the load runs (default 10); the node is killed halfway.", DefaultValueFactory = _ => 10 };
        var rate = new Option<double>("--rate") { Description = "Orders per second, open loop (default 20000).", DefaultValueFactory = _ => 20_000 };
        var json = new Option<bool>("--json") { Description = "End with one JSON object (acked, lost, duplicates, restart_ms, chain_intact)." };
        var keep = new Option<bool>("--keep") { Description = "Keep the node's data directory (printed) instead of deleting it." };
        var command = new Command("demo", "Run a node with disk durability under load, SIGKILL it halfway, restart it, and show that no acknowledged order was lost or doubled.")
        {
            seconds, rate, json, keep,
        };
        command.SetAction(async (parse, cancel) =>
        {
            int duration = parse.GetValue(seconds);
            if (duration < 2 || parse.GetValue(rate) <= 0)
            {
                Console.Error.WriteLine("engine demo: --seconds must be at least 2 and --rate positive");
                return 2;
            }
            return await RunAsync(duration, parse.GetValue(rate), parse.GetValue(json), parse.GetValue(keep), cancel).ConfigureAwait(false);
        });
        return command;
    }

    private static async Task<int> RunAsync(int seconds, double rate, bool json, bool keep, CancellationToken cancel)
    {
        TextWriter say = json ? Console.Error : Console.Out;
        string data = Path.Combine(Path.GetTempPath(), $"engine-demo-{Environment.ProcessId}");
        int port = FreePort();
        string[] serve = ["serve", "--data", data, "--listen", $"127.0.0.1:{port}", "--durability", "disk"];
        NodeProcess? node = null;
        try
        {
            node = NodeProcess.Start(port, serve);
            if (!node.WaitListening(TimeSpan.FromSeconds(30)))
            {
                Console.Error.WriteLine("engine demo: the node did not start");
                return 2;
            }
            await say.WriteLineAsync($"node up: pid {node.Id}, 127.0.0.1:{port}, data {data}, disk durability").ConfigureAwait(false);

            var options = new LoadOptions([$"127.0.0.1:{port}"], rate, TimeSpan.FromSeconds(seconds), null, 4, 1024, 1, "dev-token-{id}",
                Path.Combine(data, "journal"), 1, json);
            var generator = new LoadGenerator(options, say);
            Task<LoadResult> load = generator.RunAsync(cancel);

            await Task.Delay(TimeSpan.FromSeconds(seconds / 2.0), cancel).ConfigureAwait(false);
            await say.WriteLineAsync($"SIGKILL node pid {node.Id}").ConfigureAwait(false);
            var restart = Stopwatch.StartNew();
            node.KillHard();
            node.Dispose();
            node = NodeProcess.Start(port, serve);
            if (!node.WaitListening(TimeSpan.FromSeconds(30)))
            {
                Console.Error.WriteLine("engine demo: the node did not restart");
                return 2;
            }
            double restartMs = restart.Elapsed.TotalMilliseconds;
            await say.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"node back: pid {node.Id} after {restartMs:F0} ms (journal recovered, chain verified, book replayed); clients reconnect and resend")).ConfigureAwait(false);

            LoadResult result = await load.ConfigureAwait(false);
            int exit = node.Terminate(TimeSpan.FromSeconds(30));
            VerifyReport report;
            using (JournalReader reader = JournalReader.Open(Path.Combine(data, "journal")))
            {
                report = reader.Verify();
            }
            bool ok = result.Lost == 0 && result.Duplicates == 0 && report.Intact && exit == 0;
            if (json)
            {
                Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object?>
                {
                    ["acked"] = result.Acked,
                    ["rejected"] = result.Rejected,
                    ["rejected_by_reason"] = result.RejectedByReason,
                    ["lost"] = result.Lost,
                    ["duplicates"] = result.Duplicates,
                    ["errors"] = result.Errors,
                    ["reconnects"] = result.Reconnects,
                    ["restart_ms"] = Math.Round(restartMs),
                    ["chain_intact"] = report.Intact,
                    ["head_block"] = report.Head?.BlockNo,
                    ["head_hash"] = report.Head?.Hash.ToString(),
                    ["ok"] = ok,
                }));
            }
            else
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"""

                    demo summary
                      orders acked        {result.Acked:N0}
                      rejected            {result.Rejected:N0} ({string.Join(", ", result.RejectedByReason.Select(kv => $"{kv.Key} {kv.Value:N0}"))})
                      lost                {result.Lost} (acked orders missing from the journal)
                      duplicates          {result.Duplicates} (acked orders journaled twice)
                      unanswered          {result.Errors}
                      reconnects          {result.Reconnects}
                      restart             {restartMs:F0} ms from SIGKILL to accepting again
                      chain               {(report.Intact ? "intact" : $"BROKEN: {report.Fault}")}: {report.Blocks:N0} blocks, head {report.Head?.Hash.ToShortString()}
                      node exit on SIGTERM {exit}
                    {(ok ? "OK: nothing acknowledged was lost or doubled." : "FAILED")}
                    """));
            }
            return ok ? 0 : 1;
        }
        finally
        {
            node?.Dispose();
            if (keep)
            {
                await say.WriteLineAsync($"data kept in {data}").ConfigureAwait(false);
            }
            else if (Directory.Exists(data))
            {
                Directory.Delete(data, recursive: true);
            }
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
