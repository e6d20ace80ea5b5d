using System.Diagnostics;

namespace Engine.Cli;

/// <summary>
/// An <c>engine</c> child process (serve, witness) started from this very executable, for the demo and
/// the drill: start, wait for a line in its log (and when it came), SIGKILL, SIGTERM, SIGSTOP/SIGCONT.
/// Disposing kills it.
/// </summary>
internal sealed class NodeProcess : WatchedProcess
{
    private readonly Process _process;

    private NodeProcess(Process process, int port)
    {
        _process = process;
        Port = port;
    }

    public int Port { get; }

    public override int Id => _process.Id;

    public static NodeProcess Start(int port, params string[] args)
    {
        var info = new ProcessStartInfo(Environment.ProcessPath!) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        // Run as `dotnet engine.dll …` or as the `engine` app host, whichever we are.
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath!) == "dotnet")
        {
            info.ArgumentList.Add(typeof(Program).Assembly.Location);
        }
        foreach (string arg in args)
        {
            info.ArgumentList.Add(arg);
        }
        var process = Process.Start(info)!;
        var node = new NodeProcess(process, port);
        process.OutputDataReceived += (_, e) => node.Append(e.Data, Stopwatch.GetTimestamp());
        process.ErrorDataReceived += (_, e) => node.Append(e.Data, Stopwatch.GetTimestamp());
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return node;
    }

    public override bool HasExited => _process.HasExited;

    /// <summary>SIGKILL: no chance to flush, commit or say goodbye.</summary>
    /// <remarks>
    /// kill(2) straight away: <c>Process.Kill(entireProcessTree: true)</c> first walks every process of the
    /// machine for descendants (a node has none), and that walk (tens of milliseconds on a busy machine) was
    /// counted in the demo's and the drill's takeover times, which start at the fault.
    /// </remarks>
    public override void KillHard()
    {
        Signal(SigKill);
        _process.WaitForExit(10_000);
    }

    /// <summary>SIGTERM, then wait for the drain and the exit code.</summary>
    public int Terminate(TimeSpan timeout)
    {
        if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS())
        {
            Signal(SigTerm);
        }
        else
        {
            _process.Kill();
        }
        if (!_process.WaitForExit(timeout))
        {
            KillHard();
            return -1;
        }
        return _process.ExitCode;
    }

    public override void Dispose()
    {
        StopFollowing();
        try
        {
            if (!_process.HasExited)
            {
                KillHard();
            }
        }
        catch (InvalidOperationException)
        {
        }
        _process.Dispose();
    }
}
