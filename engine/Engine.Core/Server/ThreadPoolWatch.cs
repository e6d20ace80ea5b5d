using System.Diagnostics;

namespace Engine.Core.Server;

/// <summary>
/// Tells when the thread pool stalls: work queued and none completed for at least
/// <see cref="ReportAfterMs"/>. A stalled pool delays everything that runs on it (socket
/// completions, the pair's ticks and its witness requests, FASTER's commit completions), so a gap
/// in a node's answers that lines up with a line from here has its cause named. It samples from a
/// thread of its own (a timer runs on the pool, and would stall with it), every
/// <see cref="SampleMs"/>: ten wake-ups a second, and one log line per stall, when it ends.
/// </summary>
public sealed class ThreadPoolWatch : IDisposable
{
    /// <summary>How often the pool is looked at.</summary>
    public const int SampleMs = 100;

    /// <summary>A stall shorter than this is not told.</summary>
    public const int ReportAfterMs = 200;

    private readonly Action<string> _log;
    private readonly ManualResetEventSlim _stop = new();
    private readonly Thread _thread;

    private ThreadPoolWatch(Action<string> log)
    {
        _log = log;
        _thread = new Thread(Run) { IsBackground = true, Name = "pool-watch" };
    }

    /// <summary>Starts watching; <paramref name="log"/> gets one line per stall of <see cref="ReportAfterMs"/> or more.</summary>
    public static ThreadPoolWatch Start(Action<string> log)
    {
        var watch = new ThreadPoolWatch(log);
        watch._thread.Start();
        return watch;
    }

    private void Run()
    {
        var detector = new PoolStallDetector(ThreadPool.CompletedWorkItemCount, ReportAfterMs);
        while (!_stop.Wait(SampleMs))
        {
            if (detector.Observe(Stopwatch.GetTimestamp(), ThreadPool.CompletedWorkItemCount, ThreadPool.PendingWorkItemCount) is { } stall)
            {
                _log($"the thread pool was stalled for about {stall.Duration.TotalMilliseconds:F0} ms ({stall.MostQueued} work items queued, none completed, {ThreadPool.ThreadCount} threads): "
                    + "whatever runs on it (sockets, the pair's ticks, witness requests, journal commits) waited that long");
            }
        }
    }

    public void Dispose()
    {
        _stop.Set();
        _thread.Join();
        _stop.Dispose();
    }
}

/// <summary>A stall of the thread pool, told when it ended: how long, and the most work items queued meanwhile.</summary>
public readonly record struct PoolStall(TimeSpan Duration, long MostQueued);

/// <summary>
/// The stall rule of <see cref="ThreadPoolWatch"/>, on samples given to it (so that it is tested
/// without starving a real pool): a stall is a run of samples with work queued and the completed
/// count unchanged; it is told once, at the first sample after it, if it lasted at least the threshold.
/// </summary>
public struct PoolStallDetector(long completed, int reportAfterMs)
{
    private long _lastCompleted = completed;
    private long _stalledSince;
    private long _mostQueued;

    /// <summary>One sample (<paramref name="timestamp"/> in <see cref="Stopwatch"/> ticks); a stall that just ended and lasted long enough, else null.</summary>
    public PoolStall? Observe(long timestamp, long completed, long queued)
    {
        PoolStall? ended = null;
        if (queued > 0 && completed == _lastCompleted)
        {
            _stalledSince = _stalledSince == 0 ? timestamp : _stalledSince;
            _mostQueued = Math.Max(_mostQueued, queued);
        }
        else if (_stalledSince != 0)
        {
            TimeSpan lasted = Stopwatch.GetElapsedTime(_stalledSince, timestamp);
            if (lasted.TotalMilliseconds >= reportAfterMs)
            {
                ended = new PoolStall(lasted, _mostQueued);
            }
            _stalledSince = 0;
            _mostQueued = 0;
        }
        _lastCompleted = completed;
        return ended;
    }
}
