using System.Diagnostics;
using System.Text;

namespace Engine.IntegrationTests.Support;

/// <summary>
/// A real <c>engine</c> process started from the build output. Output is captured; disposing it
/// kills the whole process tree, so a failing test leaves nothing running.
/// </summary>
public sealed class EngineProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();

    private EngineProcess(Process process)
    {
        _process = process;
    }

    /// <summary>Path of engine.dll beside the test assembly (copied there by the project reference).</summary>
    public static string EngineDll => Path.Combine(AppContext.BaseDirectory, "engine.dll");

    public static EngineProcess Start(params string[] args) => Start(new Dictionary<string, string>(), args);

    public static EngineProcess Start(IReadOnlyDictionary<string, string> environment, params string[] args) => StartIn(null, environment, args);

    /// <summary>Starts the engine inside network namespace <paramref name="netns"/> (<c>ip netns exec</c>, which execs: the process is the engine's own), or here when null.</summary>
    public static EngineProcess StartIn(string? netns, IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var info = new ProcessStartInfo(netns is null ? "dotnet" : "ip")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var (key, value) in environment)
        {
            info.Environment[key] = value;
        }
        if (netns is not null)
        {
            foreach (string prefix in new[] { "netns", "exec", netns, "dotnet" })
            {
                info.ArgumentList.Add(prefix);
            }
        }
        info.ArgumentList.Add(EngineDll);
        foreach (string arg in args)
        {
            info.ArgumentList.Add(arg);
        }
        var process = new Process { StartInfo = info };
        var engine = new EngineProcess(process);
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (engine._stdout) { engine._stdout.AppendLine(e.Data); } } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (engine._stderr) { engine._stderr.AppendLine(e.Data); } } };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return engine;
    }

    /// <summary>Runs to the end (at most <paramref name="timeout"/>) and returns the exit code.</summary>
    public int WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout))
        {
            Kill();
            Assert.Fail($"engine did not exit within {timeout.TotalSeconds} s; stderr:\n{StdErr}");
        }
        _process.WaitForExit(); // flushes the asynchronous output readers
        return _process.ExitCode;
    }

    public string StdOut { get { lock (_stdout) { return _stdout.ToString(); } } }

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>Waits until standard output satisfies <paramref name="condition"/>; fails the test if the process exits first or time runs out.</summary>
    public void WaitForOutput(Func<string, bool> condition, string what, TimeSpan timeout) => WaitFor(() => StdOut, condition, what, timeout);

    /// <summary>As <see cref="WaitForOutput"/>, on standard error (where progress lines go).</summary>
    public void WaitForError(Func<string, bool> condition, string what, TimeSpan timeout) => WaitFor(() => StdErr, condition, what, timeout);

    private void WaitFor(Func<string> stream, Func<string, bool> condition, string what, TimeSpan timeout)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!condition(stream()))
        {
            if (_process.HasExited)
            {
                _process.WaitForExit(); // flush the output readers before the last look
            }
            if (_process.HasExited && !condition(stream()))
            {
                Assert.Fail($"engine exited ({_process.ExitCode}) before {what}; stderr:\n{StdErr}");
            }
            if (clock.Elapsed > timeout)
            {
                Assert.Fail($"timed out after {timeout.TotalSeconds} s waiting for {what}; stderr:\n{StdErr}");
            }
            Thread.Sleep(5);
        }
    }

    /// <summary>SIGTERM and wait for the exit code.</summary>
    public int Terminate(TimeSpan timeout)
    {
        using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            kill.WaitForExit();
        }
        return WaitForExit(timeout);
    }

    /// <summary>SIGKILL: the process gets no chance to flush or commit anything.</summary>
    public void KillHard()
    {
        _process.Kill(entireProcessTree: false);
        _process.WaitForExit(10_000);
    }

    public string StdErr { get { lock (_stderr) { return _stderr.ToString(); } } }

    public void Kill()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }
}
