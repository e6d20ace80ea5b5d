using System.CommandLine;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Engine.Core.Server;

namespace Engine.Cli.Drill;

/// <summary><c>engine proxy</c>: the drill's fault proxy on its own, steered from standard input or a control endpoint.</summary>
internal static class ProxyCommand
{
    public const string Commands = "blackhole, delay MS, corrupt, heal, status";

    public static Command Build()
    {
        var listen = new Option<string>("--listen") { Description = "HOST:PORT to accept connections on.", Required = true };
        var target = new Option<string>("--target") { Description = "HOST:PORT to forward them to.", Required = true };
        var control = new Option<string>("--control") { Description = "HOST:PORT where the same commands are taken over TCP, a line each, answered with a line (what `engine drill --attach … --link-proxy` steers)." };
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
        command.SetAction(async (parse, cancel) =>
        {
            FaultProxy proxy;
            Socket? controlListener = null;
            try
            {
                proxy = new FaultProxy(EngineSettings.ParseEndpoint(parse.GetValue(listen)!, "--listen"), EngineSettings.ParseEndpoint(parse.GetValue(target)!, "--target"));
                if (parse.GetValue(control) is { } at)
                {
                    controlListener = Listener.Bind(EngineSettings.ParseEndpoint(at, "--control"), backlog: 4);
                }
            }
            catch (Exception e) when (e is ArgumentException or SocketException)
            {
                Console.Error.WriteLine($"engine proxy: {e.Message}");
                return 2;
            }
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
            using (proxy)
            using (controlListener)
            {
                Console.WriteLine($"proxy: {proxy.Endpoint} -> {parse.GetValue(target)}{(controlListener is null ? "" : $", control on {controlListener.LocalEndPoint}")}; commands: {Commands}");
                Task controlling = controlListener is null ? Task.CompletedTask
                    : Listener.AcceptAllAsync(controlListener, socket => { _ = Task.Run(() => ServeControlAsync(proxy, socket, stop.Token)); return Task.CompletedTask; }, stop.Token);
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

    private static async Task ServeControlAsync(FaultProxy proxy, Socket socket, CancellationToken stop)
    {
        await using var stream = new NetworkStream(socket, ownsSocket: true);
        using var reader = new StreamReader(stream, Encoding.ASCII);
        await using var writer = new StreamWriter(stream, Encoding.ASCII) { AutoFlush = true, NewLine = "\n" };
        try
        {
            // Bounded: a line of more than 256 characters is no command.
            while (await reader.ReadLineAsync(stop).ConfigureAwait(false) is { } line)
            {
                await writer.WriteLineAsync(line.Length > 256 ? "proxy: unknown command (too long)" : Apply(proxy, line)).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }
}

/// <summary>
/// An <c>engine proxy --control</c> steered over TCP, one command line and one answer at a time:
/// how an attached drill breaks links it did not build.
/// </summary>
internal sealed class RemoteProxy(string control) : ILinkSwitch, IDisposable
{
    private readonly System.Net.IPEndPoint _endpoint = EngineSettings.ParseEndpoint(control, "proxy control endpoint");
    private TcpClient? _client;
    private StreamReader? _reader;
    private StreamWriter? _writer;

    public string Control { get; } = control;

    public void Set(LinkFault fault, TimeSpan delay = default) => Send(fault switch
    {
        LinkFault.Blackhole => "blackhole",
        LinkFault.Delay => $"delay {(int)delay.TotalMilliseconds}",
        _ => "heal",
    });

    public void CorruptOnce() => Send("corrupt");

    /// <summary>How many connections pass through it now (from its status).</summary>
    public int Connections()
    {
        string answer = Send("status");
        int end = answer.LastIndexOf(" connection(s)", StringComparison.Ordinal);
        int start = answer.LastIndexOf(", ", end, StringComparison.Ordinal) + 2;
        return int.Parse(answer.AsSpan(start, end - start), CultureInfo.InvariantCulture);
    }

    /// <summary>Sends one command (connecting, or reconnecting once, as needed) and returns the answer.</summary>
    public string Send(string command)
    {
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                if (_client is null)
                {
                    _client = new TcpClient { NoDelay = true, ReceiveTimeout = 5000, SendTimeout = 5000 };
                    _client.Connect(_endpoint);
                    _reader = new StreamReader(_client.GetStream(), Encoding.ASCII);
                    _writer = new StreamWriter(_client.GetStream(), Encoding.ASCII) { AutoFlush = true, NewLine = "\n" };
                }
                _writer!.WriteLine(command);
                string answer = _reader!.ReadLine() ?? throw new IOException("the proxy closed its control connection");
                if (!answer.StartsWith("proxy: ", StringComparison.Ordinal) || answer.StartsWith("proxy: unknown", StringComparison.Ordinal))
                {
                    throw new InvalidOperationException($"the proxy at {Control} answered '{answer}' to '{command}'");
                }
                return answer;
            }
            catch (Exception e) when (e is IOException or SocketException)
            {
                Dispose();
                if (attempt > 0)
                {
                    throw new InvalidOperationException($"no `engine proxy --control` answers at {Control} ({e.Message})", e);
                }
            }
        }
    }

    public void Dispose()
    {
        _reader?.Dispose();
        _writer?.Dispose();
        _client?.Dispose();
        (_client, _reader, _writer) = (null, null, null);
    }
}
