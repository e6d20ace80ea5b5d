using System.CommandLine;
using System.Net;
using Engine.Core.Server;
using Engine.Replication;
using Engine.Security;

namespace Engine.Cli;

/// <summary><c>engine witness</c> and <c>engine admin …</c>: the operator's side of the pair.</summary>
internal static class OpsCommands
{
    public static Command Witness()
    {
        var listen = new Option<string>("--listen") { Description = "HOST:PORT to listen on.", Required = true };
        var leaseMs = new Option<int>("--lease-ms") { Description = "How long a holder may act on a grant without renewing it (default 1000 ms); it renews every third.", DefaultValueFactory = _ => 1000 };
        var state = new Option<string>("--state") { Description = "File that keeps the holder and the highest epoch granted across restarts (written before each decision that changes them). Without it a restart forgets both: only as the operator's override." };
        var cluster = new ClusterOptions(PrincipalRole.Witness, "witness", listens: true);
        var command = new Command("witness", "Run the witness of a pair: grants the solo lease to one node of the cluster at a time (an authenticated node; the name is its principal's) and keeps it with that node until it gives it back (a backup is in step with it again); never grants a lower epoch than one granted before, nor one more than one above the highest granted. A backup asks for it before it takes over.")
        {
            listen, leaseMs, state,
        };
        cluster.AddTo(command);
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
                IPEndPoint at = EngineSettings.ParseEndpoint(parse.GetValue(listen)!, "--listen");
                ClusterCredentials credentials = cluster.Load(parse, at);
                created = new WitnessServer(at, parse.GetValue(leaseMs), credentials, message => Console.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} witness: {message}"), parse.GetValue(state));
                Console.WriteLine($"witness: {credentials}");
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
        var admin = new Option<string>("--admin") { Description = "HOST:PORT of the node's admin endpoint, as the node's --admin names it (the request is signed for it).", Required = true };
        var minutes = new Option<int>("--minutes") { Description = $"How long the lease holds (1 to {AdminEndpoint.GoSoloMaxMinutes}, default {AdminEndpoint.GoSoloDefaultMinutes}); after that the node answers \"no backup\" again unless go-solo is repeated.", DefaultValueFactory = _ => AdminEndpoint.GoSoloDefaultMinutes };
        var cluster = new ClusterOptions(PrincipalRole.Operator, "operator", listens: false);
        var goSolo = new Command("go-solo", "Grant a primary the solo lease for a while: it acknowledges alone while no backup is in step. Only for a node without a witness; make sure its old peer is really gone first. Signed with the operator's key.")
        {
            admin, minutes,
        };
        cluster.AddTo(goSolo);
        goSolo.SetAction(async (parse, cancel) =>
        {
            if (parse.GetValue(minutes) is < 1 or > AdminEndpoint.GoSoloMaxMinutes)
            {
                Console.Error.WriteLine($"engine admin go-solo: --minutes must be 1 to {AdminEndpoint.GoSoloMaxMinutes}");
                return 2;
            }
            return await PostSignedAsync("go-solo", parse, cluster, admin, $"/admin/go-solo?minutes={parse.GetValue(minutes)}", TimeSpan.FromSeconds(10), cancel).ConfigureAwait(false);
        });
        var snapshot = new Command("snapshot", "Take a snapshot of the node's state now (once its snapshot replica is level with the journal) and print its block. Signed with the operator's key.")
        {
            admin,
        };
        cluster.AddTo(snapshot);
        snapshot.SetAction((parse, cancel) => PostSignedAsync("snapshot", parse, cluster, admin, "/admin/snapshot", TimeSpan.FromSeconds(AdminEndpoint.SnapshotTimeoutSeconds + 5), cancel));
        var command = new Command("admin", "Operator commands to a running node (signed with an operator's key).") { goSolo, snapshot };
        foreach ((string verb, string[] parameters, string does) in LedgerVerbs.All)
        {
            command.Subcommands.Add(LedgerVerb(verb, parameters, does, admin, cluster));
        }
        var reference = new Command("reference", "Print the ledger's reference data as the node has applied it (instruments, accounts, clients; never a credential) and where the node's configuration differs from it.")
        {
            admin,
        };
        reference.SetAction(async (parse, cancel) =>
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
            try
            {
                string body = await http.GetStringAsync(new Uri($"http://{parse.GetValue(admin)}/reference"), cancel).ConfigureAwait(false);
                ReferenceReport report = ReferenceReport.Parse(System.Text.Encoding.UTF8.GetBytes(body));
                foreach (InstrumentLine i in report.Instruments)
                {
                    Console.WriteLine($"instrument {i.Id} {i.Symbol} tick {i.Tick} reference {i.ReferencePrice} band {i.BandBps} bps{(i.Halted ? " HALTED" : "")}");
                }
                foreach (AccountLine a in report.Accounts)
                {
                    Console.WriteLine($"account {a.Id} max quantity {a.MaxQuantity} max notional {a.MaxNotional} max open orders {a.MaxOpenOrders}");
                }
                foreach (ClientLine c in report.Clients)
                {
                    Console.WriteLine($"client {c.Id} {(c.Enabled ? "enabled" : "DISABLED")} accounts {(c.Accounts.Length == 0 ? "none" : c.Accounts)}");
                }
                foreach (string difference in report.DiffersFromConfiguration)
                {
                    Console.WriteLine($"differs from this node's configuration: {difference}");
                }
                return 0;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or System.Text.Json.JsonException)
            {
                Console.Error.WriteLine($"engine admin reference: {e.Message}");
                return 2;
            }
        });
        command.Subcommands.Add(reference);
        return command;
    }

    /// <summary>
    /// <c>engine admin VERB --name value …</c> for one of <see cref="LedgerVerbs.All"/>: checked here, then
    /// sent signed to <c>POST /admin/ledger/VERB</c>; prints each admin transaction's outcome.
    /// </summary>
    private static Command LedgerVerb(string verb, string[] parameters, string does, Option<string> admin, ClusterOptions cluster)
    {
        var options = parameters.Select(p =>
        {
            string[] parts = p.Split('=');
            return (Name: parts[0], Option: new Option<string>("--" + parts[0].Replace('_', '-'))
            {
                Description = parts.Length == 1 ? "Required." : $"Default {(parts[1].Length == 0 ? "none" : parts[1])}.",
                Required = parts.Length == 1,
            });
        }).ToList();
        var command = new Command(verb, does + " An admin transaction in the ledger, sent to the primary's admin endpoint; signed with the operator's key.") { admin };
        options.ForEach(o => command.Options.Add(o.Option));
        cluster.AddTo(command);
        command.SetAction(async (parse, cancel) =>
        {
            var given = options.Where(o => parse.GetValue(o.Option) is not null).ToDictionary(o => o.Name, o => parse.GetValue(o.Option)!);
            if (LedgerVerbs.Parse(verb, given).Error is { } error)
            {
                Console.Error.WriteLine($"engine admin {verb}: {error}");
                return 2;
            }
            string query = string.Join("&", given.Select(g => $"{g.Key}={Uri.EscapeDataString(g.Value)}"));
            return await PostSignedAsync(verb, parse, cluster, admin, $"/admin/ledger/{verb}{(query.Length > 0 ? "?" + query : "")}",
                TimeSpan.FromSeconds(AdminEndpoint.LedgerVerbTimeoutSeconds + 5), cancel).ConfigureAwait(false);
        });
        return command;
    }

    /// <summary>POSTs <paramref name="pathAndQuery"/> to the node's admin endpoint, signed with the operator's key; prints the answer. Exit 0 done, 1 refused, 2 not sent.</summary>
    private static async Task<int> PostSignedAsync(string verb, ParseResult parse, ClusterOptions cluster, Option<string> admin, string pathAndQuery, TimeSpan timeout, CancellationToken cancel)
    {
        ClusterCredentials credentials;
        try
        {
            credentials = cluster.Load(parse, listen: null);
        }
        catch (Exception e) when (e is InvalidDataException or IOException or ArgumentException)
        {
            Console.Error.WriteLine($"engine admin {verb}: {e.Message}");
            return 2;
        }
        string host = parse.GetValue(admin)!;
        using var http = new HttpClient { Timeout = timeout };
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri($"http://{host}{pathAndQuery}"));
        request.Headers.Host = host;
        request.Headers.TryAddWithoutValidation("Authorization", Sign(credentials, "POST", host, pathAndQuery, []));
        try
        {
            using HttpResponseMessage response = await http.SendAsync(request, cancel).ConfigureAwait(false);
            string body = await response.Content.ReadAsStringAsync(cancel).ConfigureAwait(false);
            (response.IsSuccessStatusCode ? Console.Out : Console.Error).WriteLine($"{(response.IsSuccessStatusCode ? "" : $"{(int)response.StatusCode} ")}{body.Trim()}");
            return response.IsSuccessStatusCode ? 0 : 1;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            Console.Error.WriteLine($"engine admin {verb}: {e.Message}");
            return 2;
        }
    }

    /// <summary>The Authorization header for an admin request signed by <paramref name="credentials"/> now.</summary>
    public static string Sign(ClusterCredentials credentials, string method, string host, string pathAndQuery, byte[] body) =>
        AdminAuthorization.Create(credentials.Self.Name, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), method, host, pathAndQuery, body,
            bytes => credentials.Sign(AdminAuthorization.SigningContext, bytes));
}

/// <summary>
/// <c>--cluster FILE --key FILE</c> for a command that acts as one principal of the cluster, and,
/// for one that listens, <c>--allow-development-cluster-on-network</c>. Without --cluster and --key
/// the built-in development cluster is used (its keys are derived from a constant in the source: it
/// authenticates nobody), and a listener then refuses any address but loopback unless that flag says
/// the operator accepts that anyone who can reach it can act as any principal.
/// </summary>
internal sealed class ClusterOptions
{
    public const string AllowDevelopmentFlag = "--allow-development-cluster-on-network";

    private readonly PrincipalRole _role;
    private readonly string _developmentName;
    private readonly Option<string> _cluster;
    private readonly Option<string> _key;
    private readonly Option<bool>? _allowDevelopment;

    /// <param name="role">The role the key must have.</param>
    /// <param name="developmentName">The principal's name in the development cluster.</param>
    /// <param name="listens">Whether the command listens (then the development cluster is for loopback only, unless allowed).</param>
    public ClusterOptions(PrincipalRole role, string developmentName, bool listens)
    {
        _role = role;
        _developmentName = developmentName;
        string roleName = Principal.RoleName(role);
        _cluster = new Option<string>("--cluster") { Description = "The cluster's roster (DIR/cluster.json from `engine cluster init DIR`). Without --cluster and --key: the built-in development cluster, whose keys everyone knows" + (listens ? $" (loopback only, unless {AllowDevelopmentFlag})." : ".") };
        _key = new Option<string>("--key") { Description = $"This process's private key: DIR/NAME.key of a principal of role {roleName}." };
        if (listens)
        {
            _allowDevelopment = new Option<bool>(AllowDevelopmentFlag) { Description = "Listen on a non-loopback address with the development cluster: ANYONE WHO CAN REACH IT CAN ACT AS ANY NODE, WITNESS OR OPERATOR (its keys are in the source). For a test network only." };
        }
    }

    public void AddTo(Command command)
    {
        command.Options.Add(_cluster);
        command.Options.Add(_key);
        if (_allowDevelopment is not null)
        {
            command.Options.Add(_allowDevelopment);
        }
    }

    /// <summary>Loads the credentials the flags name, or the development ones; refuses the development cluster on a non-loopback <paramref name="listen"/> unless allowed.</summary>
    /// <exception cref="ArgumentException">The flags are inconsistent, the key has the wrong role, or the development cluster would listen on the network.</exception>
    /// <exception cref="InvalidDataException">A file is invalid (the message names it).</exception>
    /// <exception cref="IOException">A file cannot be read.</exception>
    public ClusterCredentials Load(ParseResult parse, IPEndPoint? listen)
    {
        string? cluster = parse.GetValue(_cluster), key = parse.GetValue(_key);
        if ((cluster is null) != (key is null))
        {
            throw new ArgumentException("--cluster and --key go together (the roster and this principal's key in it)");
        }
        ClusterCredentials credentials = cluster is null ? ClusterCredentials.Development(_developmentName) : ClusterCredentials.Load(cluster, key!);
        if (credentials.Self.Role != _role)
        {
            throw new ArgumentException($"{key} is the key of {credentials.Self}; this command needs one of role {Principal.RoleName(_role)}");
        }
        if (credentials.IsDevelopment && listen is not null && !IPAddress.IsLoopback(listen.Address) && !(_allowDevelopment is not null && parse.GetValue(_allowDevelopment)))
        {
            throw new ArgumentException($"no --cluster/--key: the development cluster, whose keys everyone knows, is for loopback only; {listen} is not loopback. "
                + $"Make a cluster with `engine cluster init DIR`, or add {AllowDevelopmentFlag} for a test network");
        }
        return credentials;
    }
}
