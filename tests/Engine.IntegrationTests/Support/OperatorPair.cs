using System.Diagnostics;
using Engine.Cli;
using Engine.Replication;

namespace Engine.IntegrationTests.Support;

/// <summary>
/// A pair started the way an operator would, for <c>engine drill --attach</c>: a witness, a primary
/// (A) and a backup (B) with admin endpoints, and optionally an <c>engine proxy --control</c> in each
/// replication link and on each node's way to the witness. Disposing kills every process that names
/// its directory, also the ones a drill restarted (nobody's children), and deletes the directory.
/// </summary>
public sealed class OperatorPair : IDisposable
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);
    private readonly List<EngineProcess> _processes = [];

    private OperatorPair()
    {
    }

    public string Root { get; } = Path.Combine(Path.GetTempPath(), $"attach-{Guid.NewGuid():N}");

    public string AdminA { get; } = $"127.0.0.1:{Ports.Free()}";

    public string AdminB { get; } = $"127.0.0.1:{Ports.Free()}";

    /// <summary>The process the operator started as primary.</summary>
    public EngineProcess A { get; private set; } = null!;

    /// <summary>What a drill is given to attach: the admin endpoints, and the proxies' control endpoints if there are proxies.</summary>
    public List<string> DrillArguments { get; } = [];

    public static OperatorPair Start(bool proxies)
    {
        var pair = new OperatorPair();
        try
        {
            pair.StartAll(proxies);
            return pair;
        }
        catch
        {
            pair.Dispose();
            throw;
        }
    }

    private void StartAll(bool proxies)
    {
        int witness = Ports.Free(), clientA = Ports.Free(), clientB = Ports.Free(), replicationA = Ports.Free(), replicationB = Ports.Free();
        _processes.Add(EngineProcess.Start("witness", "--listen", $"127.0.0.1:{witness}", "--state", Path.Combine(Root, "witness.state")));
        DrillArguments.AddRange(["--attach", AdminA, "--attach", AdminB]);
        // A node's peer is (the proxy in front of) the other node's replication endpoint; its witness (the proxy in front of) the witness.
        int peerOfA = replicationB, peerOfB = replicationA, witnessOfA = witness, witnessOfB = witness;
        if (proxies)
        {
            int Proxy(int target, string flag)
            {
                int listen = Ports.Free(), control = Ports.Free();
                EngineProcess proxy = EngineProcess.Start("proxy", "--listen", $"127.0.0.1:{listen}", "--target", $"127.0.0.1:{target}", "--control", $"127.0.0.1:{control}");
                _processes.Add(proxy);
                proxy.WaitForOutput(o => o.Contains("control on", StringComparison.Ordinal), "a proxy to listen", Wait);
                DrillArguments.AddRange([flag, $"127.0.0.1:{control}"]);
                return listen;
            }
            (peerOfB, peerOfA) = (Proxy(replicationA, "--link-proxy"), Proxy(replicationB, "--link-proxy"));
            (witnessOfA, witnessOfB) = (Proxy(witness, "--witness-proxy"), Proxy(witness, "--witness-proxy"));
        }
        string[] Node(string name, string role, int client, string admin, int replication, int peer, int toWitness) => ["serve", "--role", role, "--data", Path.Combine(Root, name),
            "--listen", $"127.0.0.1:{client}", "--admin", admin, "--replication-listen", $"127.0.0.1:{replication}",
            "--peer", $"127.0.0.1:{peer}", "--witness", $"127.0.0.1:{toWitness}"];
        A = EngineProcess.Start(Node("a", "primary", clientA, AdminA, replicationA, peerOfA, witnessOfA));
        _processes.Add(A);
        _processes.Add(EngineProcess.Start(Node("b", "backup", clientB, AdminB, replicationB, peerOfB, witnessOfB)));
        A.WaitForEvent(PairEventKind.BackupInStep, "the operator's pair to be in step", Wait);
    }


    /// <summary>Waits until one node is primary with its backup in step and the other is that backup; returns both statuses.</summary>
    internal async Task<(NodeStatusReport Primary, NodeStatusReport Backup)> WaitWholeAsync()
    {
        var clock = Stopwatch.StartNew();
        string last = "";
        while (clock.Elapsed < Wait)
        {
            try
            {
                NodeStatusReport a = await AdminStatus.GetAsync(AdminA).ConfigureAwait(false), b = await AdminStatus.GetAsync(AdminB).ConfigureAwait(false);
                (NodeStatusReport primary, NodeStatusReport backup) = a.IsPrimary ? (a, b) : (b, a);
                if (primary.IsPrimary && backup.Role == "backup" && primary.BackupInStep == true)
                {
                    return (primary, backup);
                }
                last = $"A: {a}\nB: {b}";
            }
            catch (HttpRequestException e)
            {
                last = e.Message;
            }
            await Task.Delay(50).ConfigureAwait(false);
        }
        Assert.Fail($"the pair did not become whole within {Wait.TotalSeconds} s; last seen:\n{last}");
        throw new InvalidOperationException("unreachable");
    }


    public void Dispose()
    {
        foreach (EngineProcess process in _processes)
        {
            process.Dispose();
        }
        // The nodes a drill restarted are nobody's children: find them by the directory on their command line.
        foreach (string proc in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(proc), out int pid) || pid == Environment.ProcessId)
            {
                continue;
            }
            try
            {
                if (File.ReadAllText(Path.Combine(proc, "cmdline")).Contains(Root, StringComparison.Ordinal))
                {
                    using var process = Process.GetProcessById(pid);
                    process.Kill();
                    process.WaitForExit(TimeSpan.FromSeconds(10));
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException)
            {
                // Gone meanwhile.
            }
        }
        if (Directory.Exists(Root))
        {
            Directory.Delete(Root, recursive: true);
        }
    }
}
