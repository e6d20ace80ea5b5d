using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Engine.Cli.Load;
using Engine.Client;
using HdrHistogram;

namespace Engine.Cli;

/// <summary><c>engine load</c>: the load generator.</summary>
internal static class LoadCommand
{
    public static Command Build()
    {
        var target = new Option<string>("--target") { Description = "HOST:PORT[,HOST:PORT] of the engine (primary first); the clients fail over along the list.", Required = true };
        var rate = new Option<double?>("--rate") { Description = "Open loop: requests per second in total, paced; latency counts from each request's scheduled time." };
        var max = new Option<bool>("--max") { Description = "Closed loop: as fast as the in-flight window allows (peak throughput)." };
        var duration = new Option<double?>("--duration") { Description = "Seconds to send for." };
        var count = new Option<long?>("--count") { Description = "Requests to send in total." };
        var connections = new Option<int>("--connections") { Description = "Connections, one client id each (default 4).", DefaultValueFactory = _ => 4 };
        var window = new Option<int>("--window") { Description = "Unanswered requests per connection at most (default 1024).", DefaultValueFactory = _ => 1024 };
        var firstClient = new Option<uint>("--client") { Description = "Client id of the first connection; the others follow (default 1).", DefaultValueFactory = _ => 1 };
        var token = new Option<string>("--token") { Description = "Token per client, {id} replaced by its id (default the development tokens: dev-token-{id}).", DefaultValueFactory = _ => "dev-token-{id}" };
        var journal = new Option<string>("--journal") { Description = "The engine's journal directory: after the run, check every acked order is in it exactly once, in the block its receipt names (lost, duplicates, split)." };
        var seed = new Option<int>("--seed") { Description = "Seed of the order mix (default 1).", DefaultValueFactory = _ => 1 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object at the end instead of the table." };
        var tls = new Option<bool>("--tls") { Description = "Connect with TLS (the engine serves with --tls-cert/--tls-key); the certificate is checked against the system's trust store unless --tls-ca is given." };
        var tlsHost = new Option<string>("--tls-host") { Description = "The name the engine's certificate must carry (default: the host of each --target)." };
        var tlsCa = new Option<string>("--tls-ca") { Description = "PEM file of the certificates to trust instead of the system's store (a private CA, or the engine's self-signed certificate)." };
        var command = new Command("load", "Drive an engine with a realistic order mix (limits that rest and cross, IOC, cancels, replaces) and measure throughput and latency.")
        {
            target, rate, max, duration, count, connections, window, firstClient, token, journal, seed, json, tls, tlsHost, tlsCa,
        };
        command.Validators.Add(result =>
        {
            if ((result.GetValue(rate) is null) == !result.GetValue(max))
            {
                result.AddError("give exactly one of --rate N (open loop) or --max (closed loop)");
            }
            if ((result.GetValue(duration) is null) == (result.GetValue(count) is null))
            {
                result.AddError("give exactly one of --duration S or --count N");
            }
            if (result.GetValue(rate) is <= 0 || result.GetValue(duration) is <= 0 || result.GetValue(count) is <= 0)
            {
                result.AddError("--rate, --duration and --count must be positive");
            }
        });
        command.SetAction(async (parse, cancel) =>
        {
            if (parse.GetValue(connections) is < 1 or > 64 || parse.GetValue(window) is < 1 or > 65_536)
            {
                Console.Error.WriteLine("engine load: --connections must be 1 to 64 and --window 1 to 65536");
                return 2;
            }
            var options = new LoadOptions(
                parse.GetValue(target)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
                parse.GetValue(rate),
                parse.GetValue(duration) is { } d ? TimeSpan.FromSeconds(d) : null,
                parse.GetValue(count),
                parse.GetValue(connections),
                parse.GetValue(window),
                parse.GetValue(firstClient),
                parse.GetValue(token)!,
                parse.GetValue(journal),
                parse.GetValue(seed),
                parse.GetValue(json),
                parse.GetValue(tls) || parse.GetValue(tlsCa) is not null || parse.GetValue(tlsHost) is not null
                    ? new ClientTlsOptions { TargetHost = parse.GetValue(tlsHost), TrustedCertificatesFile = parse.GetValue(tlsCa) }
                    : null);
            try
            {
                LoadResult result = await new LoadGenerator(options, Console.Error).RunAsync(cancel).ConfigureAwait(false);
                if (options.Json)
                {
                    Console.WriteLine(ToJson(result));
                }
                else
                {
                    PrintTable(result);
                }
                return result.Audit is { Clean: false } ? 1 : 0;
            }
            catch (Exception e) when (e is EngineUnavailableException or UnauthorizedAccessException or ArgumentException)
            {
                Console.Error.WriteLine($"engine load: {e.Message}");
                return 2;
            }
        });
        return command;
    }

    private static double Us(LongHistogram h, double percentile) => h.TotalCount == 0 ? 0 : Math.Round(h.GetValueAtPercentile(percentile) * 1e6 / System.Diagnostics.Stopwatch.Frequency, 1);

    private static string ToJson(LoadResult r) => JsonSerializer.Serialize(new Dictionary<string, object?>
    {
        ["mode"] = r.Open ? "open" : "closed",
        ["sent"] = r.Sent,
        ["acked"] = r.Acked,
        ["rejected"] = r.Rejected,
        ["rejected_by_reason"] = r.RejectedByReason,
        ["errors"] = r.Errors,
        ["lost"] = r.Audit?.Lost,
        ["duplicates"] = r.Audit?.Duplicates,
        ["split"] = r.Audit?.Split,
        ["execution_reports"] = r.Reports,
        ["reconnects"] = r.Reconnects,
        ["silence_failovers"] = r.SilenceFailovers,
        ["seconds"] = Math.Round(r.Seconds, 3),
        ["throughput_per_sec"] = Math.Round(r.ThroughputPerSecond),
        ["p50_us"] = Us(r.Latency, 50),
        ["p90_us"] = Us(r.Latency, 90),
        ["p99_us"] = Us(r.Latency, 99),
        ["p999_us"] = Us(r.Latency, 99.9),
        ["max_us"] = r.Latency.TotalCount == 0 ? 0 : Math.Round(r.Latency.GetMaxValue() * 1e6 / System.Diagnostics.Stopwatch.Frequency, 1),
    });

    private static void PrintTable(LoadResult r)
    {
        var c = CultureInfo.InvariantCulture;
        Console.WriteLine();
        Console.WriteLine(string.Create(c, $"{(r.Open ? "open loop" : "closed loop (--max)")}, {r.Seconds:F1} s"));
        Console.WriteLine(string.Create(c, $"  sent          {r.Sent,14:N0}"));
        Console.WriteLine(string.Create(c, $"  acked         {r.Acked,14:N0}"));
        Console.WriteLine(string.Create(c, $"  rejected      {r.Rejected,14:N0}   {string.Join(", ", r.RejectedByReason.Select(kv => $"{kv.Key} {kv.Value:N0}"))}"));
        Console.WriteLine(string.Create(c, $"  errors        {r.Errors,14:N0}   (unanswered at the end)"));
        Console.WriteLine(string.Create(c, $"  lost          {(r.Audit is { } a ? a.Lost.ToString("N0", c) : "not checked (no --journal)"),14}"));
        Console.WriteLine(string.Create(c, $"  duplicates    {(r.Audit is { } d ? d.Duplicates.ToString("N0", c) : "not checked"),14}"));
        Console.WriteLine(string.Create(c, $"  split         {(r.Audit is { } s ? s.Split.ToString("N0", c) : "not checked"),14}   (block numbers the receipts name with two hashes)"));
        Console.WriteLine(string.Create(c, $"  exec reports  {r.Reports,14:N0}"));
        Console.WriteLine(string.Create(c, $"  reconnects    {r.Reconnects,14:N0}   ({r.SilenceFailovers:N0} for the engine's silence)"));
        Console.WriteLine(string.Create(c, $"  throughput    {r.ThroughputPerSecond,14:N0} /s"));
        Console.WriteLine(string.Create(c, $"  latency µs    p50 {Us(r.Latency, 50)}  p90 {Us(r.Latency, 90)}  p99 {Us(r.Latency, 99)}  p99.9 {Us(r.Latency, 99.9)}  max {(r.Latency.TotalCount == 0 ? 0 : Math.Round(r.Latency.GetMaxValue() * 1e6 / System.Diagnostics.Stopwatch.Frequency, 1))}"));
    }
}
