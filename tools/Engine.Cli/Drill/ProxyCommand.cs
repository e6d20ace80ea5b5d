using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Engine.Core.Server;
using Engine.Security;

namespace Engine.Cli.Drill;

/// <summary><c>engine proxy</c>: the drill's fault proxy on its own, steered from standard input or a control endpoint.</summary>
/// <remarks>
/// The control endpoint takes commands only from an operator: each connection is a
/// <see cref="SecureChannel"/> for <see cref="LinkPurpose.Control"/> on which the client proves it
/// is a principal of role operator, and the proxy proves it holds an operator's key too (it is the
/// operator's tool: <c>--cluster</c> and <c>--key</c> name the operator's key, or the development
/// cluster's "operator@proxy" on loopback). Then one command per record, one answer per record. At
/// most <see cref="MaxControlConnections"/> at once; a connection silent for
/// <see cref="ControlIdleTimeout"/> is closed (the drill reconnects); a command that is not
/// printable ASCII or longer than <see cref="MaxCommandBytes"/> closes its connection.
/// </remarks>
internal static class ProxyCommand
{
    public const string Commands = "blackhole, delay MS, corrupt, heal, status";

    /// <summary>Control connections at once: a drill needs one per proxy.</summary>
    public const int MaxControlConnections = 4;

    /// <summary>The longest command line.</summary>
    public const int MaxCommandBytes = 256;

    /// <summary>A control connection that sends nothing for this long is closed.</summary>
    public static readonly TimeSpan ControlIdleTimeout = TimeSpan.FromSeconds(60);

    /// <summary>The proxy's name in the development cluster (an operator).</summary>
    public const string DevelopmentName = "operator@proxy";

    public static Command Build()
    {
        var listen = new Option<string>("--listen") { Description = "HOST:PORT to accept connections on.", Required = true };
        var target = new Option<string>("--target") { Description = "HOST:PORT to forward them to.", Required = true };
        var control = new Option<string>("--control") { Description = "HOST:PORT where the same commands are taken from an operator over the cluster's secure channel, one each, each answered (what `engine drill --attach … --link-proxy` steers)." };
        var cluster = new ClusterOptions(PrincipalRole.Operator, DevelopmentName, listens: true);
        var command = new Command("proxy", """
            A TCP proxy that breaks a link on purpose (put it between a backup and its primary's replication endpoint, or between a node and its witness).
            Commands on standard input (and on --control), one per line: blackhole (pass nothing, say nothing), delay MS (pass everything MS later, in order),
            corrupt (flip one byte of the next chunk from the target), heal (pass everything; connections that lived through a black hole are closed), status.
            Each is answered with the state: "proxy: FAULT, N bytes flipped so far, N connection(s)". Runs until SIGTERM, Ctrl-C or the end of standard input
            (with --control: until SIGTERM or Ctrl-C).
            """)
        {
            listen, target, control,
        };
        cluster.AddTo(command);
        command.SetAction(async (parse, cancel) =>
        {
            FaultProxy? proxy = null;
            Socket? controlListener = null;
            ClusterCredentials? credentials = null;
            try
            {
                IPEndPoint? controlAt = parse.GetValue(control) is { } at ? EngineSettings.ParseEndpoint(at, "--control") : null;
                if (controlAt is not null)
                {
                    credentials = cluster.Load(parse, controlAt);
                }
                proxy = new FaultProxy(EngineSettings.ParseEndpoint(parse.GetValue(listen)!, "--listen"), EngineSettings.ParseEndpoint(parse.GetValue(target)!, "--target"));
                if (controlAt is not null)
                {
                    controlListener = Listener.Bind(controlAt, backlog: MaxControlConnections);
                }
            }
            catch (Exception e) when (e is ArgumentException or SocketException or InvalidDataException or IOException)
            {
                proxy?.Dispose();
                Console.Error.WriteLine($"engine proxy: {e.Message}");
                return 2;
            }
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
            using (proxy)
            using (controlListener)
            {
                Console.WriteLine($"proxy: {proxy.Endpoint} -> {parse.GetValue(target)}{(controlListener is null ? "" : $", control on {controlListener.LocalEndPoint} for operators of cluster {credentials!.Roster.ClusterIdHex}{(credentials.IsDevelopment ? " (DEVELOPMENT)" : "")}")}; commands: {Commands}");
                var controlPort = controlListener is null ? null : new ControlPort(proxy, credentials!, stop.Token);
                Task controlling = controlListener is null ? Task.CompletedTask : Listener.AcceptAllAsync(controlListener, controlPort!.Accept, stop.Token);
                try
                {
                    while (await Console.In.ReadLineAsync(stop.Token).ConfigureAwait(false) is { } line)
                    {
                        Console.WriteLine(Apply(proxy, line));
                    }
                    if (controlListener is not null)
                    {
                        await Task.Delay(Timeout.Infinite, stop.Token).ConfigureAwait(false); // standard input closed: the control endpoint steers
                    }
                }
                catch (OperationCanceledException)
                {
                }
                stop.Cancel();
                await controlling.ConfigureAwait(false);
            }
            return 0;
        });
        return command;
    }

    /// <summary>Carries out one command line and returns the answer.</summary>
    public static string Apply(FaultProxy proxy, string line)
    {
        string[] words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        switch (words)
        {
            case ["blackhole"]:
                proxy.Set(LinkFault.Blackhole);
                break;
            case ["delay", string ms] when int.TryParse(ms, CultureInfo.InvariantCulture, out int delay) && delay is >= 0 and <= 60_000:
                proxy.Set(LinkFault.Delay, TimeSpan.FromMilliseconds(delay));
                break;
            case ["corrupt"]:
                proxy.CorruptOnce();
                break;
            case ["heal"]:
                proxy.Set(LinkFault.None);
                break;
            case ["status"] or []:
                break;
            default:
                return $"proxy: unknown command '{line}' ({Commands}, with MS 0 to 60000)";
        }
        return $"proxy: {proxy.Fault}, {proxy.Corrupted} bytes flipped so far, {proxy.Connections} connection(s)";
    }

    /// <summary>The control endpoint: authenticated operators only, bounded, each connection timed out when idle.</summary>
    private sealed class ControlPort(FaultProxy proxy, ClusterCredentials credentials, CancellationToken stop)
    {
        private readonly RefusalLog _refusals = new(Console.WriteLine, "proxy control");
        private int _connections;

        public Task Accept(Socket socket)
        {
            if (Interlocked.Increment(ref _connections) > MaxControlConnections)
            {
                Interlocked.Decrement(ref _connections);
                _refusals.Refused(socket.RemoteEndPoint, string.Create(CultureInfo.InvariantCulture, $"{MaxControlConnections} control connections already open"));
                socket.Dispose();
                return Task.CompletedTask;
            }
            _ = Task.Run(() => ServeAsync(socket));
            return Task.CompletedTask;
        }

        private async Task ServeAsync(Socket socket)
        {
            EndPoint? remote = null;
            try
            {
                remote = socket.RemoteEndPoint;
                AcceptOutcome outcome = await SecureChannel.AcceptAsync(socket, credentials, LinkPurpose.Control, [PrincipalRole.Operator], cancel: stop).ConfigureAwait(false);
                if (outcome.Channel is not { } channel)
                {
                    _refusals.Refused(remote, $"handshake refused: {outcome.Refusal}");
                    return;
                }
                using (channel)
                {
                    byte[] buffer = new byte[MaxCommandBytes + SecureChannel.TagBytes];
                    while (true)
                    {
                        using var idle = CancellationTokenSource.CreateLinkedTokenSource(stop);
                        idle.CancelAfter(ControlIdleTimeout);
                        int read = await channel.ReceiveAsync(buffer, idle.Token).ConfigureAwait(false);
                        if (read == 0)
                        {
                            return;
                        }
                        ReadOnlySpan<byte> line = buffer.AsSpan(0, read);
                        if (line.ContainsAnyExceptInRange((byte)0x20, (byte)0x7E))
                        {
                            _refusals.Refused(remote, $"{channel.Peer.Name}: a command that is not printable ASCII: closed");
                            return;
                        }
                        await channel.SendAsync(Encoding.ASCII.GetBytes(Apply(proxy, Encoding.ASCII.GetString(line))), idle.Token).ConfigureAwait(false);
                    }
                }
            }
            catch (Exception e) when (e is IOException or InvalidDataException or SocketException or OperationCanceledException or ObjectDisposedException)
            {
                if (!stop.IsCancellationRequested)
                {
                    _refusals.Refused(remote, e is OperationCanceledException ? $"idle for {ControlIdleTimeout.TotalSeconds:0} s: closed" : e.Message);
                }
            }
            finally
            {
                socket.Dispose();
                Interlocked.Decrement(ref _connections);
            }
        }
    }
}

/// <summary>
/// An <c>engine proxy --control</c> steered over the cluster's secure channel as an operator, one
/// command and one answer at a time: how an attached drill breaks links it did not build.
/// </summary>
/// <param name="control">The proxy's control endpoint.</param>
/// <param name="credentials">An operator's credentials (the proxy refuses any other role); null: the development cluster's "operator".</param>
internal sealed class RemoteProxy(string control, ClusterCredentials? credentials = null) : ILinkSwitch, IDisposable
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(5);
    private readonly IPEndPoint _endpoint = EngineSettings.ParseEndpoint(control, "proxy control endpoint");
    private readonly ClusterCredentials _credentials = credentials ?? ClusterCredentials.Development("operator");
    private readonly byte[] _answer = new byte[512 + SecureChannel.TagBytes];
    private readonly SemaphoreSlim _oneAtATime = new(1, 1);
    private SecureChannel? _channel;

    public string Control { get; } = control;

    public Task SetAsync(LinkFault fault, TimeSpan delay = default) => SendAsync(fault switch
    {
        LinkFault.Blackhole => "blackhole",
        LinkFault.Delay => $"delay {(int)delay.TotalMilliseconds}",
        _ => "heal",
    }, CancellationToken.None);

    public Task CorruptOnceAsync() => SendAsync("corrupt", CancellationToken.None);

    /// <summary>How many connections pass through it now (from its status).</summary>
    public async Task<int> ConnectionsAsync(CancellationToken cancel)
    {
        string answer = await SendAsync("status", cancel).ConfigureAwait(false);
        int end = answer.LastIndexOf(" connection(s)", StringComparison.Ordinal);
        int start = answer.LastIndexOf(", ", end, StringComparison.Ordinal) + 2;
        return int.Parse(answer.AsSpan(start, end - start), CultureInfo.InvariantCulture);
    }

    /// <summary>Sends one command (connecting, or reconnecting once, as needed) and returns the answer.</summary>
    /// <exception cref="InvalidOperationException">No proxy answers there, it refused this operator, or it refused the command.</exception>
    public async Task<string> SendAsync(string command, CancellationToken cancel)
    {
        await _oneAtATime.WaitAsync(cancel).ConfigureAwait(false);
        try
        {
            for (int attempt = 0; ; attempt++)
            {
                try
                {
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
                    timeout.CancelAfter(s_timeout);
                    if (_channel is null)
                    {
                        var socket = new Socket(_endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                        try
                        {
                            await socket.ConnectAsync(_endpoint, timeout.Token).ConfigureAwait(false);
                        }
                        catch
                        {
                            socket.Dispose();
                            throw;
                        }
                        _channel = await SecureChannel.ConnectAsync(socket, _credentials, LinkPurpose.Control, PrincipalRole.Operator, cancel: timeout.Token).ConfigureAwait(false);
                    }
                    await _channel.SendAsync(Encoding.ASCII.GetBytes(command), timeout.Token).ConfigureAwait(false);
                    int read = await _channel.ReceiveAsync(_answer, timeout.Token).ConfigureAwait(false);
                    if (read == 0)
                    {
                        throw new IOException("the proxy closed its control connection");
                    }
                    string answer = Encoding.ASCII.GetString(_answer, 0, read);
                    if (!answer.StartsWith("proxy: ", StringComparison.Ordinal) || answer.StartsWith("proxy: unknown", StringComparison.Ordinal))
                    {
                        throw new InvalidOperationException($"the proxy at {Control} answered '{answer}' to '{command}'");
                    }
                    return answer;
                }
                catch (LinkRefusedException e) when (e.Reason is not (RefusalReason.Timeout or RefusalReason.Closed or RefusalReason.Busy))
                {
                    Dispose();
                    throw new InvalidOperationException($"the proxy control at {Control} and {_credentials.Self} do not trust each other: {e.Message}", e);
                }
                catch (Exception e) when (e is IOException or SocketException or InvalidDataException || (e is OperationCanceledException && !cancel.IsCancellationRequested))
                {
                    Dispose();
                    if (attempt > 0)
                    {
                        throw new InvalidOperationException($"no `engine proxy --control` answers at {Control} ({e.Message})", e);
                    }
                }
            }
        }
        finally
        {
            _oneAtATime.Release();
        }
    }

    /// <summary>Closes the control connection (the next command opens a new one).</summary>
    public void Dispose()
    {
        _channel?.Dispose();
        _channel = null;
    }
}
