using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Engine.Cli;

/// <summary>
/// An <c>engine</c> child process (serve, witness) started from this very executable, for the demo and
/// the drill: start, wait for a line in its log (and when it came), SIGKILL, SIGTERM, SIGSTOP/SIGCONT.
/// Disposing kills it.
/// </summary>
internal sealed partial class NodeProcess : IDisposable
{
    public const int SigTerm = 15;
    public const int SigStop = 19;
    public const int SigCont = 18;

    private readonly Process _process;
    private readonly System.Text.StringBuilder _output = new();
    private readonly List<(long Ticks, int End)> _lineTimes = [];

    private NodeProcess(Process process, int port)
    {
        _process = process;
        Port = port;
    }

    /// <summary>What the node has logged so far.</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>Waits until the node has logged a line containing <paramref name="text"/>; false if it exited or time ran out.</summary>
    /// <param name="text">What to look for.</param>
    /// <param name="timeout">How long to wait.</param>
    /// <param name="since">Look only at what was logged after this many characters (see <see cref="Output"/>'s length).</param>
    public bool WaitForLog(string text, TimeSpan timeout, int since = 0)
    {
        var clock = Stopwatch.StartNew();
        bool Seen() => Output.AsSpan(Math.Min(since, Output.Length)).Contains(text, StringComparison.Ordinal);
        while (clock.Elapsed < timeout)
        {
            if (Seen())
            {
                return true;
            }
            if (_process.HasExited)
            {
                return Seen();
            }
            Thread.Sleep(5);
        }
        return false;
    }

    /// <summary>When (<see cref="Stopwatch"/> ticks) the first line after <paramref name="since"/> containing one of <paramref name="texts"/> arrived; null if none has.</summary>
    public long? FirstLineAt(int since, params string[] texts)
    {
        lock (_output)
        {
            int start = since;
            foreach ((long ticks, int end) in _lineTimes)
            {
                if (end <= since)
                {
                    continue;
                }
                string line = _output.ToString(start, end - start);
                start = end;
                if (texts.Any(t => line.Contains(t, StringComparison.Ordinal)))
                {
                    return ticks;
                }
            }
            return null;
        }
    }

    public int Port { get; }

    public int Id => _process.Id;

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
        process.OutputDataReceived += (_, e) => node.Append(e.Data);
        process.ErrorDataReceived += (_, e) => node.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return node;
    }

    private void Append(string? line)
    {
        if (line is not null)
        {
            long now = Stopwatch.GetTimestamp();
            lock (_output)
            {
                _output.AppendLine(line);
                _lineTimes.Add((now, _output.Length));
            }
        }
    }

    /// <summary>Sends a signal (SIGSTOP, SIGCONT, …) to the process.</summary>
    public void Signal(int signal) => _ = Kill(_process.Id, signal);

    public bool HasExited => _process.HasExited;

    /// <summary>SIGKILL: no chance to flush, commit or say goodbye.</summary>
    public void KillHard()
    {
        _process.Kill(entireProcessTree: true);
        _process.WaitForExit(10_000);
    }

    /// <summary>SIGTERM, then wait for the drain and the exit code.</summary>
    public int Terminate(TimeSpan timeout)
    {
        if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS())
        {
            _ = Kill(_process.Id, SigTerm);
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

    public void Dispose()
    {
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

    [LibraryImport("libc", EntryPoint = "kill")]
    private static partial int Kill(int pid, int signal);
}
