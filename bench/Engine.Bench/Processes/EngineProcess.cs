using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Engine.Bench.Processes;

/// <summary>
/// A real <c>engine</c> process (the CLI built with the benchmarks, beside them) for the harnesses that
/// measure whole processes: its output kept, its admin endpoint read, SIGKILLed on dispose.
/// </summary>
public sealed class EngineProcess : IDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();

    private EngineProcess(Process process)
    {
        _process = process;
    }

    /// <summary>The engine CLI beside the benchmarks (a project reference builds it with them).</summary>
    public static string Dll { get; } = Path.Combine(AppContext.BaseDirectory, "engine.dll");

    public static EngineProcess Start(IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        info.ArgumentList.Add(Dll);
        foreach (string arg in args)
        {
            info.ArgumentList.Add(arg);
        }
        foreach ((string name, string value) in environment)
        {
            info.Environment[name] = value;
        }
        var engine = new EngineProcess(Process.Start(info)!);
        engine._process.OutputDataReceived += (_, e) => engine._output.Enqueue(e.Data ?? "");
        engine._process.ErrorDataReceived += (_, e) => engine._output.Enqueue(e.Data ?? "");
        engine._process.BeginOutputReadLine();
        engine._process.BeginErrorReadLine();
        return engine;
    }

    public bool HasExited => _process.HasExited;

    public int Id => _process.Id;

    public int ExitCode => _process.ExitCode;

    /// <summary>Everything it wrote so far, stdout and stderr interleaved.</summary>
    public string Output => string.Join('\n', _output);

    /// <summary>Waits for it to exit; false on timeout.</summary>
    public bool WaitForExit(TimeSpan timeout) => _process.WaitForExit(timeout);

    /// <summary>GET /status of the admin endpoint <paramref name="admin"/> (with the state checksum unless <paramref name="state"/> is false).</summary>
    public static JsonNode Status(string admin, bool state = true)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        return JsonNode.Parse(http.GetStringAsync(new Uri($"http://{admin}/status{(state ? "" : "?state=false")}")).GetAwaiter().GetResult())!;
    }

    /// <summary>Polls <paramref name="admin"/>'s status until <paramref name="done"/> holds (every 100 ms: the harness waits on slow background work), or throws after <paramref name="timeout"/>.</summary>
    public void WaitForStatus(string admin, Func<JsonNode, bool> done, string what, TimeSpan timeout)
    {
        var waited = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                if (done(Status(admin, state: false)))
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // Not up yet.
            }
            if (waited.Elapsed > timeout || HasExited)
            {
                throw new InvalidOperationException($"{what}: not within {timeout.TotalSeconds} s{(HasExited ? $" (exited {ExitCode})" : "")}:\n{Output}");
            }
            Thread.Sleep(100);
        }
    }

    public static int FreePort() => Engine.Cli.LoopbackPorts.Free();

    /// <summary>SIGKILL (and its children).</summary>
    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(10_000);
        }
        _process.Dispose();
    }
}
