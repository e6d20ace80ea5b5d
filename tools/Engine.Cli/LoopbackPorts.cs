using System.Net;
using System.Net.Sockets;

namespace Engine.Cli;

/// <summary>
/// Ports for the processes the demo, the drill, the benchmarks and the tests start on the loopback.
/// </summary>
/// <remarks>
/// A port is chosen at random below the kernel's ephemeral range (32768–60999 on Linux) and checked
/// free by binding it. The kernel's own pick (binding port 0) is a port of that range, which any
/// outgoing connection on the machine may take between the probe and the child's bind: seen as a
/// node refusing to start with "address already in use" while other tests ran.
/// </remarks>
public static class LoopbackPorts
{
    private const int First = 20_000, Last = 32_000;

    /// <summary>A TCP port free on the loopback now, outside the ephemeral range.</summary>
    public static int Free()
    {
        for (int attempt = 0; attempt < 200; attempt++)
        {
            int port = Random.Shared.Next(First, Last);
            try
            {
                using var probe = new TcpListener(IPAddress.Loopback, port);
                probe.Start();
                return port;
            }
            catch (SocketException)
            {
                // Taken: another.
            }
        }
        using var any = new TcpListener(IPAddress.Loopback, 0);
        any.Start();
        return ((IPEndPoint)any.LocalEndpoint).Port;
    }
}
