namespace Engine.IntegrationTests.Support;

/// <summary>Ports for the processes a test starts (<see cref="Cli.LoopbackPorts"/>: outside the ephemeral range).</summary>
public static class Ports
{
    /// <summary>A TCP port free on the loopback now; the test binds it soon after.</summary>
    public static int Free() => Cli.LoopbackPorts.Free();
}
