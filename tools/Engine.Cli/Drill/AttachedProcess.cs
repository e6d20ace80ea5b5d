using System.Diagnostics;

namespace Engine.Cli.Drill;

/// <summary>
/// An <c>engine serve</c> started elsewhere (by the operator, a service manager, a test), followed
/// through its admin endpoint: <c>/status</c> says what it is, <c>/log</c> what it said and when.
/// Signals go to its pid, so it must run on this host. Disposing stops watching; it never kills.
/// </summary>
internal sealed class AttachedProcess : WatchedProcess
{
    private AttachedProcess(HttpClient http, string admin, NodeStatusReport status)
    {
        Status = status;
        Launch = Launch.Of(status.Pid);
        // Its output is not ours to read: its pair events (and their text) come from its /log.
        FollowEvents(http, admin, status.Pid, appendText: true);
    }

    /// <summary>What the node's admin endpoint said when we attached.</summary>
    public NodeStatusReport Status { get; }

    /// <summary>How it was started (read from /proc when we attached): what a restart repeats.</summary>
    public Launch Launch { get; }

    public override int Id => Status.Pid;

    /// <summary>Gone, or a zombie its parent has not reaped yet.</summary>
    public override bool HasExited => !Launch.IsRunning(Status.Pid);

    /// <summary>
    /// Waits until the node at <paramref name="admin"/> answers (with a pid other than
    /// <paramref name="notPid"/>: a restarted node) and starts following its log.
    /// </summary>
    public static async Task<AttachedProcess> AttachAsync(HttpClient http, string admin, TimeSpan timeout, int? notPid, CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        string? why = null;
        while (clock.Elapsed < timeout)
        {
            cancel.ThrowIfCancellationRequested();
            try
            {
                NodeStatusReport status = await NodeStatusReport.GetAsync(http, admin, state: false, cancel).ConfigureAwait(false);
                if (status.Pid != notPid)
                {
                    if (!Launch.IsRunning(status.Pid))
                    {
                        throw new InvalidOperationException($"the node at {admin} has pid {status.Pid}, which is not a process on this host: the drill attaches only to local nodes");
                    }
                    return new AttachedProcess(http, admin, status);
                }
                why = $"still the old process (pid {status.Pid})";
            }
            catch (HttpRequestException e)
            {
                why = e.Message;
            }
            catch (TaskCanceledException) when (!cancel.IsCancellationRequested)
            {
                why = "no answer in time";
            }
            await Task.Delay(100, cancel).ConfigureAwait(false);
        }
        throw new InvalidOperationException($"no engine node answered on the admin endpoint {admin} within {timeout.TotalSeconds:0} s ({why}); start it with --admin {admin}");
    }

    public override void KillHard()
    {
        Signal(SigKill);
        var clock = Stopwatch.StartNew();
        while (!HasExited && clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            Thread.Sleep(5);
        }
    }

    public override void Dispose() => StopFollowing();
}

/// <summary>
/// How a local process was started, read from /proc: executable, arguments, working directory,
/// environment and where its output went. <see cref="Relaunch"/> starts it again (detached, in its own
/// session) with another <c>--role</c>, as the operator's service manager would.
/// </summary>
internal sealed record Launch(string Executable, string[] Arguments, string WorkingDirectory, Dictionary<string, string> Environment, string? OutputFile)
{
    public static Launch Of(int pid)
    {
        string proc = $"/proc/{pid}";
        try
        {
            string[] argv = File.ReadAllText($"{proc}/cmdline").TrimEnd('\0').Split('\0');
            // A binary replaced since it started (an upgrade, a rebuild) reads "PATH (deleted)": start what is at PATH now.
            string exe = new FileInfo($"{proc}/exe").LinkTarget is { } target ? target.Replace(" (deleted)", "", StringComparison.Ordinal) : argv[0];
            string cwd = new DirectoryInfo($"{proc}/cwd").LinkTarget ?? "/";
            var environment = new Dictionary<string, string>();
            foreach (string entry in File.ReadAllText($"{proc}/environ").Split('\0', StringSplitOptions.RemoveEmptyEntries))
            {
                int eq = entry.IndexOf('=', StringComparison.Ordinal);
                if (eq > 0)
                {
                    environment[entry[..eq]] = entry[(eq + 1)..];
                }
            }
            string? output = new FileInfo($"{proc}/fd/1").LinkTarget;
            return new Launch(exe, argv[1..], cwd, environment, output is not null && output.StartsWith('/') && File.Exists(output) ? output : null);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidOperationException($"cannot read how process {pid} was started from {proc} ({e.Message}): the drill restarts the nodes it kills, so it must run on their host as their user or root", e);
        }
    }

    /// <summary>Running and not a zombie.</summary>
    public static bool IsRunning(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            int close = stat.LastIndexOf(')');
            return close > 0 && close + 2 < stat.Length && stat[close + 2] != 'Z' && stat[close + 2] != 'X';
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>The same command with <c>--role</c> set to <paramref name="role"/>.</summary>
    public string[] WithRole(string role)
    {
        var args = new List<string>(Arguments);
        int at = args.IndexOf("--role");
        int inline = args.FindIndex(a => a.StartsWith("--role=", StringComparison.Ordinal));
        if (at >= 0 && at + 1 < args.Count)
        {
            args[at + 1] = role;
        }
        else if (inline >= 0)
        {
            args[inline] = $"--role={role}";
        }
        else
        {
            args.Add("--role");
            args.Add(role);
        }
        return [.. args];
    }

    /// <summary>
    /// Starts the command again with <paramref name="role"/>, in its own session (it outlives the
    /// drill), its output appended to where the old one's went or else to <paramref name="fallbackLog"/>.
    /// Returns the file its output goes to.
    /// </summary>
    public string Relaunch(string role, string fallbackLog)
    {
        string log = OutputFile ?? fallbackLog;
        var info = new ProcessStartInfo("/bin/sh") { UseShellExecute = false, WorkingDirectory = WorkingDirectory };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add("log=$1; shift; exec /usr/bin/setsid -f \"$@\" >>\"$log\" 2>&1 </dev/null");
        info.ArgumentList.Add("sh");
        info.ArgumentList.Add(log);
        info.ArgumentList.Add(Executable);
        foreach (string arg in WithRole(role))
        {
            info.ArgumentList.Add(arg);
        }
        info.Environment.Clear();
        foreach ((string key, string value) in Environment)
        {
            info.Environment[key] = value;
        }
        using Process shell = Process.Start(info)!;
        shell.WaitForExit(10_000);
        if (!shell.HasExited || shell.ExitCode != 0)
        {
            throw new InvalidOperationException($"could not start `{Executable} {string.Join(' ', WithRole(role))}` again (exit {(shell.HasExited ? shell.ExitCode : -1)})");
        }
        return log;
    }
}
