using System.Net;
using System.Net.Sockets;

namespace Engine.IntegrationTests.Support;

/// <summary>Ports for the processes a test starts.</summary>
public static class Ports
{
    /// <summary>A TCP port free on the loopback now (the kernel's pick; the test binds it soon after).</summary>
    public static int Free()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }
}
