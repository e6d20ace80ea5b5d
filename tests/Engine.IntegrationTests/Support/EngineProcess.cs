using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Engine.Replication;

namespace Engine.IntegrationTests.Support;

/// <summary>
/// A real <c>engine</c> process started from the build output. Output is captured; disposing it
/// kills the whole process tree, so a failing test leaves nothing running.
/// </summary>
/// <remarks>
/// Every <c>engine serve</c> is started with <c>--log-format json</c> (unless the test names a format),
/// and its standard output is read as its log: <see cref="Events"/> are its pair events, by kind, epoch
/// and block (what tests wait for and assert on, see <see cref="WaitForEvent"/>), and
/// <see cref="LogText"/> is what a person reads. The node's own log rather than its admin
/// <c>GET /log</c>: every node logs, with or without <c>--admin</c>, and nothing has to poll; its
/// standard output holds every event in the order it was raised, up to the last line before the
/// process died or exited (a poller can miss what a node says just before it goes, and a test that
/// asserts an event never came must have seen all that did); and it is the log an operator reads.
/// </remarks>
public sealed class EngineProcess : IDisposable
{
    /// <summary>How many of the last log lines a failed wait shows.</summary>
    private const int TailLines = 40;

    private readonly Process _process;
    private readonly StringBuilder _stdout = new(); // and, under the same lock, _logText and _events
    private readonly StringBuilder _logText = new();
    private readonly List<PairEvent> _events = [];
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
        if (args is ["serve", ..] && !args.Any(a => a.StartsWith("--log-format", StringComparison.Ordinal)))
        {
            info.ArgumentList.Add("--log-format");
            info.ArgumentList.Add("json");
        }
        var process = new Process { StartInfo = info };
        var engine = new EngineProcess(process);
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { engine.Received(e.Data); } };
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

    /// <summary>Standard output as it came (for <c>engine serve</c>: its log in JSON, one entry a line).</summary>
    public string StdOut { get { lock (_stdout) { return _stdout.ToString(); } } }

    /// <summary>The log as a person reads it: one line per entry, its time and message (a pair event's with its [kind]); a line that is no JSON log entry as it came.</summary>
    public string LogText { get { lock (_stdout) { return _logText.ToString(); } } }

    /// <summary>The pair events the node has logged so far, in order (see <see cref="EventCount"/> for a mark to wait from).</summary>
    public IReadOnlyList<PairEvent> Events { get { lock (_stdout) { return [.. _events]; } } }

    /// <summary>How many pair events the node has logged so far: pass it as <c>since</c> to look only at what comes after.</summary>
    public int EventCount { get { lock (_stdout) { return _events.Count; } } }

    /// <summary>Whether the node has logged an event of <paramref name="kind"/> after its first <paramref name="since"/> events.</summary>
    public bool HasEvent(PairEventKind kind, int since = 0) => Events.Skip(since).Any(e => e.Kind == kind);

    /// <summary>The node's events of <paramref name="kind"/> after its first <paramref name="since"/>.</summary>
    public List<PairEvent> EventsOf(PairEventKind kind, int since = 0) => [.. Events.Skip(since).Where(e => e.Kind == kind)];

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>Waits until standard output satisfies <paramref name="condition"/>; fails the test if the process exits first or time runs out.</summary>
    public void WaitForOutput(Func<string, bool> condition, string what, TimeSpan timeout) => WaitFor(() => StdOut, condition, what, timeout);

    /// <summary>As <see cref="WaitForOutput"/>, on <see cref="LogText"/>: for what a node says that is no pair event (start-up notes, the client port's refusals).</summary>
    public void WaitForLog(Func<string, bool> condition, string what, TimeSpan timeout) => WaitFor(() => LogText, condition, what, timeout);

    /// <summary>As <see cref="WaitForOutput"/>, on standard error (where progress lines go).</summary>
    public void WaitForError(Func<string, bool> condition, string what, TimeSpan timeout) => WaitFor(() => StdErr, condition, what, timeout);

    /// <summary>
    /// Waits until the node logs an event of <paramref name="kind"/> (after its first <paramref name="since"/> events,
    /// and satisfying <paramref name="where"/> if given) and returns the first such; fails the test if the process
    /// exits first or time runs out.
    /// </summary>
    public PairEvent WaitForEvent(PairEventKind kind, string what, TimeSpan timeout, int since = 0, Func<PairEvent, bool>? where = null)
    {
        PairEvent? found = null;
        WaitForEvents(events => (found = events.Skip(since).FirstOrDefault(e => e.Kind == kind && (where is null || where(e)))) is not null,
            $"{what} ({PairEvent.Name(kind)})", timeout);
        return found!;
    }

    /// <summary>Waits until the node's events so far satisfy <paramref name="condition"/>; fails the test if the process exits first or time runs out.</summary>
    public void WaitForEvents(Func<IReadOnlyList<PairEvent>, bool> condition, string what, TimeSpan timeout) => WaitFor(() => Events, condition, what, timeout);

    private void WaitFor<T>(Func<T> read, Func<T, bool> condition, string what, TimeSpan timeout)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!condition(read()))
        {
            if (_process.HasExited)
            {
                _process.WaitForExit(); // flush the output readers before the last look
            }
            if (_process.HasExited && !condition(read()))
            {
                Assert.Fail($"engine exited ({_process.ExitCode}) before {what}; its log ends:\n{Tail(LogText)}\nstderr:\n{StdErr}");
            }
            if (clock.Elapsed > timeout)
            {
                Assert.Fail($"timed out after {timeout.TotalSeconds} s waiting for {what}; its log ends:\n{Tail(LogText)}\nstderr:\n{StdErr}");
            }
            Thread.Sleep(5);
        }
    }

    /// <summary>The last <see cref="TailLines"/> lines of <paramref name="text"/>.</summary>
    public static string Tail(string text) => string.Join('\n', text.TrimEnd('\n').Split('\n').TakeLast(TailLines));

    /// <summary>One line of standard output: kept as it came, and read as a log entry (a pair event, if it is one) where it is one.</summary>
    private void Received(string line)
    {
        (string text, PairEvent? pairEvent) = ReadLogEntry(line);
        lock (_stdout)
        {
            _stdout.AppendLine(line);
            _logText.AppendLine(text);
            if (pairEvent is not null)
            {
                _events.Add(pairEvent);
            }
        }
    }

    /// <summary>
    /// A JSON log entry's time and message (as the text log shows it), and the pair event it is if its state has a
    /// Kind (<c>Log.Pair</c>: Message, Kind, epoch, block); anything else is a line as it came, and no event.
    /// </summary>
    public static (string Text, PairEvent? Event) ReadLogEntry(string line)
    {
        if (!line.StartsWith('{'))
        {
            return (line, null);
        }
        try
        {
            using JsonDocument entry = JsonDocument.Parse(line);
            JsonElement root = entry.RootElement;
            if (!root.TryGetProperty("Message", out JsonElement message) || message.ValueKind != JsonValueKind.String)
            {
                return (line, null);
            }
            string text = root.TryGetProperty("Timestamp", out JsonElement at) ? $"{at.GetString()!.Trim()} {message.GetString()}" : message.GetString()!;
            if (root.TryGetProperty("State", out JsonElement state) && state.TryGetProperty("Kind", out JsonElement kind)
                && PairEvent.TryParse(kind.GetString(), out PairEventKind parsed)) // a kind this build does not know stays text: its wait fails, showing it
            {
                return (text, new PairEvent(parsed, state.GetProperty("Message").GetString()!, state.GetProperty("epoch").GetUInt64(), state.GetProperty("block").GetUInt64()));
            }
            return (text, null);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            return (line, null); // not a log entry after all
        }
    }

    /// <summary>SIGTERM and wait for the exit code.</summary>
    public int Terminate(TimeSpan timeout)
    {
        Signal("TERM"); // one that has exited already just has its code read
        return WaitForExit(timeout);
    }

    /// <summary>Sends the signal <paramref name="name"/> (TERM, STOP, CONT, …) with kill(1); false if it could not (the process is gone).</summary>
    public bool Signal(string name)
    {
        using var kill = Process.Start("kill", [$"-{name}", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!;
        kill.WaitForExit();
        return kill.ExitCode == 0;
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
