using System.CommandLine;
using System.Globalization;
using Engine.Core.Server;

namespace Engine.Cli.Drill;

/// <summary><c>engine proxy</c>: the drill's fault proxy on its own, steered from standard input.</summary>
internal static class ProxyCommand
{
    public static Command Build()
    {
        var listen = new Option<string>("--listen") { Description = "HOST:PORT to accept connections on.", Required = true };
        var target = new Option<string>("--target") { Description = "HOST:PORT to forward them to.", Required = true };
        var command = new Command("proxy", """
            A TCP proxy that breaks a link on purpose (put it between a backup and its primary's replication endpoint).
            Commands on standard input, one per line: blackhole (pass nothing, say nothing), delay MS (pass everything MS later, in order),
            corrupt (flip one byte of the next chunk from the target), heal (pass everything; connections that lived through a black hole are closed), status.
            """)
        {
            listen, target,
        };
        command.SetAction(async (parse, cancel) =>
        {
            FaultProxy proxy;
            try
            {
                proxy = new FaultProxy(EngineSettings.ParseEndpoint(parse.GetValue(listen)!, "--listen"), EngineSettings.ParseEndpoint(parse.GetValue(target)!, "--target"));
            }
            catch (Exception e) when (e is ArgumentException or System.Net.Sockets.SocketException)
            {
                Console.Error.WriteLine($"engine proxy: {e.Message}");
                return 2;
            }
            using (proxy)
            {
                Console.WriteLine($"proxy: {proxy.Endpoint} -> {parse.GetValue(target)}; commands: blackhole, delay MS, corrupt, heal, status");
                while (await Console.In.ReadLineAsync(cancel).ConfigureAwait(false) is { } line)
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
                            Console.WriteLine($"proxy: unknown command '{line}' (blackhole, delay MS with MS 0 to 60000, corrupt, heal, status)");
                            continue;
                    }
                    Console.WriteLine($"proxy: {proxy.Fault}, {proxy.Corrupted} bytes flipped so far");
                }
            }
            return 0;
        });
        return command;
    }
}
