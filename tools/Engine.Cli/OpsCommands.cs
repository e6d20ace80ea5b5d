using System.CommandLine;
using Engine.Core.Server;
using Engine.Replication;

namespace Engine.Cli;

/// <summary><c>engine witness</c> and <c>engine admin …</c>: the operator's side of the pair.</summary>
internal static class OpsCommands
{
    public static Command Witness()
    {
        var listen = new Option<string>("--listen") { Description = "HOST:PORT to listen on.", Required = true };
        var leaseMs = new Option<int>("--lease-ms") { Description = "How long a holder may act on a grant without renewing it (default 1000 ms); it renews every third.", DefaultValueFactory = _ => 1000 };
        var state = new Option<string>("--state") { Description = "File that keeps the holder and the highest epoch granted across restarts (written before each decision that changes them). Without it a restart forgets both: only as the operator's override." };
        var command = new Command("witness", "Run the witness of a pair: grants the solo lease to one node at a time and keeps it with that node until it gives it back (a backup is in step with it again); never grants a lower epoch than one granted before. A backup asks for it before it takes over.")
        {
            listen, leaseMs, state,
        };
        command.SetAction(async (parse, cancel) =>
        {
            if (parse.GetValue(leaseMs) is < 300 or > 60_000)
            {
                Console.Error.WriteLine("engine witness: --lease-ms must be 300 to 60000");
                return 2;
            }
            WitnessServer created;
            try
            {
                created = new WitnessServer(EngineSettings.ParseEndpoint(parse.GetValue(listen)!, "--listen"), parse.GetValue(leaseMs),
                    message => Console.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} witness: {message}"), parse.GetValue(state));
            }
            catch (Exception e) when (e is InvalidDataException or IOException or ArgumentException or System.Net.Sockets.SocketException)
            {
                Console.Error.WriteLine($"engine witness: {e.Message}");
                return 2;
            }
            await using WitnessServer witness = created;
            witness.Start();
            Console.WriteLine($"witness: listening on {witness.Endpoint}, leases of {parse.GetValue(leaseMs)} ms");
            using var stop = new CancellationTokenSource();
            using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
            using var sigint = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });
            try
            {
                await Task.Delay(Timeout.Infinite, stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
            return 0;
        });
        return command;
    }

    public static Command Admin()
    {
        var admin = new Option<string>("--admin") { Description = "HOST:PORT of the node's admin endpoint.", Required = true };
        var goSolo = new Command("go-solo", "Grant a primary the solo lease: it acknowledges alone while no backup is in step. Only for a node without a witness; make sure its old peer is really gone first.")
        {
            admin,
        };
        goSolo.SetAction(async (parse, cancel) =>
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
            try
            {
                using HttpResponseMessage response = await http.PostAsync(new Uri($"http://{parse.GetValue(admin)}/admin/go-solo"), null, cancel).ConfigureAwait(false);
                string body = await response.Content.ReadAsStringAsync(cancel).ConfigureAwait(false);
                (response.IsSuccessStatusCode ? Console.Out : Console.Error).WriteLine(body.Trim());
                return response.IsSuccessStatusCode ? 0 : 1;
            }
            catch (HttpRequestException e)
            {
                Console.Error.WriteLine($"engine admin go-solo: {e.Message}");
                return 2;
            }
        });
        var command = new Command("admin", "Operator commands to a running node.") { goSolo };
        return command;
    }
}
