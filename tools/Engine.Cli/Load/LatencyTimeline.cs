using System.Diagnostics;

namespace Engine.Cli.Load;

/// <summary>
/// Latency over time, in fixed buckets of send time: per bucket the answers counted, their sum and
/// their maximum (Stopwatch ticks). Bounded: a run longer than its buckets keeps the last bucket's
/// worth in the last bucket. One writer per instance (a connection's read loop); the load
/// generator merges them at the end. The latency benchmark plots it to show where a tail comes
/// from: a lone spike (a pause in one process), a comb (a timer), a ramp (a queue building up).
/// </summary>
internal sealed class LatencyTimeline
{
    private readonly long _bucketTicks;
    private readonly long[] _count;
    private readonly long[] _sum;
    private readonly long[] _max;

    public LatencyTimeline(TimeSpan bucket, TimeSpan span)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(bucket, TimeSpan.Zero);
        Bucket = bucket;
        _bucketTicks = Math.Max(1, (long)(bucket.TotalSeconds * Stopwatch.Frequency));
        int buckets = (int)Math.Clamp(Math.Ceiling(span / bucket), 1, 1_000_000);
        _count = new long[buckets];
        _sum = new long[buckets];
        _max = new long[buckets];
    }

    /// <summary>The width of a bucket.</summary>
    public TimeSpan Bucket { get; }

    /// <summary>The Stopwatch timestamp bucket 0 begins at: set by the sender before its first request.</summary>
    public long OriginTicks { get; set; }

    public int Buckets => _count.Length;

    /// <summary>Counts an answer to a request due at <paramref name="dueTicks"/> that took <paramref name="latencyTicks"/>.</summary>
    public void Record(long dueTicks, long latencyTicks)
    {
        long index = (dueTicks - OriginTicks) / _bucketTicks;
        if (index < 0)
        {
            return;
        }
        int i = (int)Math.Min(index, _count.Length - 1);
        _count[i]++;
        _sum[i] += latencyTicks;
        if (latencyTicks > _max[i])
        {
            _max[i] = latencyTicks;
        }
    }

    /// <summary>Adds <paramref name="other"/>'s buckets (same width and count) into this one's.</summary>
    public void Add(LatencyTimeline other)
    {
        if (other._count.Length != _count.Length || other._bucketTicks != _bucketTicks)
        {
            throw new ArgumentException("timelines of different buckets", nameof(other));
        }
        for (int i = 0; i < _count.Length; i++)
        {
            _count[i] += other._count[i];
            _sum[i] += other._sum[i];
            _max[i] = Math.Max(_max[i], other._max[i]);
        }
    }

    public long CountAt(int bucket) => _count[bucket];

    /// <summary>The mean latency in bucket <paramref name="bucket"/> in microseconds (0 when empty).</summary>
    public double MeanUsAt(int bucket) => _count[bucket] == 0 ? 0 : _sum[bucket] * 1e6 / Stopwatch.Frequency / _count[bucket];

    /// <summary>The largest latency in bucket <paramref name="bucket"/> in microseconds (0 when empty).</summary>
    public double MaxUsAt(int bucket) => _max[bucket] * 1e6 / Stopwatch.Frequency;
}
