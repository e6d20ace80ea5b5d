using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace Engine.Cli;

/// <summary>
/// A node process the demo or the drill watches: its log as it arrives (with when each line came),
/// waiting for a line, and signals. A <see cref="NodeProcess"/> is a child whose output we read; an
/// attached node (<c>engine drill --attach</c>) is one started elsewhere, followed through its admin endpoint.
/// </summary>
internal abstract partial class WatchedProcess : IDisposable
{
    public const int SigKill = 9;
    public const int SigTerm = 15;
    public const int SigStop = 19;
    public const int SigCont = 18;

    private readonly StringBuilder _output = new();
    private readonly List<(long Ticks, int End)> _lineTimes = [];

    /// <summary>What the node has logged so far (since we began watching it).</summary>
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

    public abstract int Id { get; }

    public abstract bool HasExited { get; }

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
            if (HasExited)
            {
                return Seen();
            }
            Thread.Sleep(5);
        }
        return false;
    }

    /// <summary>When (<see cref="Stopwatch"/> ticks) the first line after <paramref name="since"/> containing one of <paramref name="texts"/> was logged; null if none has.</summary>
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

    /// <summary>Sends a signal (SIGSTOP, SIGCONT, …) to the process.</summary>
    public void Signal(int signal) => _ = Kill(Id, signal);

    /// <summary>SIGKILL, and wait until the process is gone.</summary>
    public abstract void KillHard();

    public abstract void Dispose();

    /// <summary>Adds one line the node logged at <paramref name="ticks"/> (<see cref="Stopwatch"/> time).</summary>
    protected void Append(string? line, long ticks)
    {
        if (line is not null)
        {
            lock (_output)
            {
                _output.AppendLine(line);
                _lineTimes.Add((ticks, _output.Length));
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "kill")]
    private static partial int Kill(int pid, int signal);
}
