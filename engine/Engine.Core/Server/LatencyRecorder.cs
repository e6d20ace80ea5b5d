using HdrHistogram;

namespace Engine.Core.Server;

/// <summary>A latency distribution as <c>/status</c> shows it: how many, and the percentiles in microseconds.</summary>
public sealed record LatencySummary(long Count, double P50Us, double P90Us, double P99Us, double P999Us, double MaxUs);

/// <summary>
/// A latency histogram the hot path records into and <c>/status</c> reads: HdrHistogram's recorder
/// (wait-free for the one writer, no allocation per value) swapped into a running total on each
/// read. Values are nanoseconds, from 1 ns to a minute (clamped), three significant digits.
/// </summary>
public sealed class LatencyRecorder
{
    private const long HighestNs = 60_000_000_000;

    private readonly Recorder _recorder = new(1, HighestNs, 3, (id, lowest, highest, digits) => new LongHistogram(id, lowest, highest, digits));
    private readonly LongHistogram _total = new(HighestNs, 3);
    private readonly object _lock = new();
    private HistogramBase? _interval;

    /// <summary>Records <paramref name="elapsed"/> timestamp units of a clock that ticks <paramref name="frequency"/> times a second.</summary>
    public void Record(long elapsed, long frequency)
    {
        if (elapsed < 0)
        {
            return;
        }
        long ns = frequency == 1_000_000_000 ? elapsed : (long)(elapsed * (1e9 / frequency));
        _recorder.RecordValue(Math.Clamp(ns, 1, HighestNs));
    }

    /// <summary>Everything recorded since the start.</summary>
    public LatencySummary Summary()
    {
        lock (_lock)
        {
            _interval = _recorder.GetIntervalHistogram(_interval);
            _total.Add(_interval);
            long count = _total.TotalCount;
            double Us(double percentile) => count == 0 ? 0 : Math.Round(_total.GetValueAtPercentile(percentile) / 1000.0, 1);
            return new LatencySummary(count, Us(50), Us(90), Us(99), Us(99.9), count == 0 ? 0 : Math.Round(_total.GetMaxValue() / 1000.0, 1));
        }
    }
}
