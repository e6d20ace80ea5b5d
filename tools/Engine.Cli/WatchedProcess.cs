using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Engine.Replication;

namespace Engine.Cli;

/// <summary>
/// A node process the demo or the drill watches: its log as it arrives (with when each line came),
/// its pair events by kind (followed through its admin endpoint), waiting for either, and signals. A <see cref="NodeProcess"/> is a child whose output we read; an
/// attached node (<c>engine drill --attach</c>) is one started elsewhere, followed through its admin endpoint.
/// </summary>
internal abstract partial class WatchedProcess : IDisposable
{
    public const int SigKill = 9;
    public const int SigTerm = 15;
    public const int SigStop = 19;
    public const int SigCont = 18;

    /// <summary>How often the node's /log is asked for new events.</summary>
    private static readonly TimeSpan PollEvery = TimeSpan.FromMilliseconds(20);

    private readonly StringBuilder _output = new();
    private readonly List<(long Ticks, int End)> _lineTimes = [];
    private readonly List<(long Ticks, PairEvent Event)> _events = [];
    private readonly CancellationTokenSource _stopFollowing = new();
    private Task? _follower;

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

    /// <summary>Pair events followed so far (see <see cref="FollowEvents"/>).</summary>
    public int EventCount
    {
        get
        {
            lock (_events)
            {
                return _events.Count;
            }
        }
    }

    /// <summary>
    /// Follows the node's pair events through its admin endpoint (<c>GET /log</c>) until disposed:
    /// what the drill and the demo decide on, by kind, instead of scraping log text.
    /// </summary>
    /// <param name="http">The client to poll with.</param>
    /// <param name="admin">The node's --admin HOST:PORT.</param>
    /// <param name="pid">Only events of this process (after a restart the endpoint is another's); null: whoever answers.</param>
    /// <param name="appendText">Also add each event's text to <see cref="Output"/> (a node whose output we do not read).</param>
    public void FollowEvents(HttpClient http, string admin, int? pid, bool appendText)
    {
        if (_follower is not null)
        {
            throw new InvalidOperationException("already following the node's events");
        }
        _follower = Task.Run(() => PollEventsAsync(http, new Uri($"http://{admin}/log"), pid, appendText, _stopFollowing.Token));
    }

    /// <summary>Stops following the node's events (and waits a moment for the poller to end).</summary>
    protected void StopFollowing()
    {
        _stopFollowing.Cancel();
        try
        {
            _follower?.Wait(TimeSpan.FromSeconds(2));
        }
        catch (AggregateException)
        {
        }
    }

    /// <summary>Waits until the node has raised an event of <paramref name="kind"/>, numbered from <paramref name="since"/> (<see cref="EventCount"/> before); false if it exited or time ran out.</summary>
    public bool WaitForEvent(PairEventKind kind, TimeSpan timeout, int since = 0)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            if (HasEvent(kind, since))
            {
                return true;
            }
            if (HasExited)
            {
                return HasEvent(kind, since);
            }
            Thread.Sleep(5);
        }
        return false;
    }

    /// <summary>Whether an event of <paramref name="kind"/> came after the first <paramref name="since"/>.</summary>
    public bool HasEvent(PairEventKind kind, int since = 0) => LastEvent(kind, since) is not null;

    /// <summary>The last event of <paramref name="kind"/> after the first <paramref name="since"/>, or null.</summary>
    public PairEvent? LastEvent(PairEventKind kind, int since = 0)
    {
        lock (_events)
        {
            for (int i = _events.Count - 1; i >= since; i--)
            {
                if (_events[i].Event.Kind == kind)
                {
                    return _events[i].Event;
                }
            }
            return null;
        }
    }

    /// <summary>When (<see cref="Stopwatch"/> ticks, as the node stamped it) the first event after the first <paramref name="since"/> of one of <paramref name="kinds"/> happened; null if none has.</summary>
    public long? FirstEventAt(int since, params PairEventKind[] kinds) => FirstEventAt(since, e => kinds.Contains(e.Kind));

    /// <summary>When (<see cref="Stopwatch"/> ticks, as the node stamped it, to the millisecond) the first event after the first <paramref name="since"/> that <paramref name="match"/> happened; null if none has.</summary>
    public (long Ticks, PairEvent Event)? FirstEvent(int since, Func<PairEvent, bool> match)
    {
        lock (_events)
        {
            for (int i = since; i < _events.Count; i++)
            {
                if (match(_events[i].Event))
                {
                    return _events[i];
                }
            }
            return null;
        }
    }

    private long? FirstEventAt(int since, Func<PairEvent, bool> match) => FirstEvent(since, match)?.Ticks;

    private async Task PollEventsAsync(HttpClient http, Uri log, int? pid, bool appendText, CancellationToken stop)
    {
        long after = 0;
        while (!stop.IsCancellationRequested)
        {
            try
            {
                using var response = await http.GetAsync(new Uri(log, $"?after={after}"), stop).ConfigureAwait(false);
                PairLogPage page = PairLogPage.Parse(await response.Content.ReadAsByteArrayAsync(stop).ConfigureAwait(false));
                if (pid is null || page.Pid == pid)
                {
                    long nowMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), nowTicks = Stopwatch.GetTimestamp();
                    foreach (PairLogLine line in page.Lines)
                    {
                        long at = line.AtMs;
                        long ticks = nowTicks - ((nowMs - at) * Stopwatch.Frequency / 1000);
                        after = line.Seq;
                        PairEvent pairEvent = line.ToEvent();
                        lock (_events)
                        {
                            _events.Add((ticks, pairEvent));
                        }
                        if (appendText)
                        {
                            Append($"{DateTimeOffset.FromUnixTimeMilliseconds(at):HH:mm:ss.fff} {pairEvent}", ticks);
                        }
                    }
                }
            }
            catch (Exception e) when (e is HttpRequestException or JsonException or KeyNotFoundException or InvalidOperationException or FormatException
                || (e is TaskCanceledException && !stop.IsCancellationRequested))
            {
                // Not up yet, dead, stopped or restarting: keep asking until told to stop.
            }
            catch (OperationCanceledException)
            {
                return;
            }
            try
            {
                await Task.Delay(PollEvery, stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
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
