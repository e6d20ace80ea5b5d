using System.Net;

namespace Engine.Security;

/// <summary>
/// Log lines for refused connections that stay readable under attack: at most one line per source
/// address per <see cref="IntervalMs"/>, the next allowed line telling how many were suppressed
/// meanwhile, and a total count. Bounded: at most <see cref="MaxSources"/> addresses are remembered;
/// past that, idle ones are forgotten, and if all are busy the rest share one "other sources" entry.
/// Thread-safe.
/// </summary>
public sealed class RefusalLog
{
    /// <summary>Addresses remembered at once, at most.</summary>
    public const int MaxSources = 1024;

    private readonly Action<string> _log;
    private readonly string _listener;
    private readonly Dictionary<IPAddress, Source> _sources = [];
    private long _count;

    /// <param name="log">Where lines go.</param>
    /// <param name="listener">What refuses, at the start of each line (e.g. "replication endpoint").</param>
    /// <param name="intervalMs">At most one line per source in this long.</param>
    public RefusalLog(Action<string> log, string listener, int intervalMs = 1000)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(intervalMs);
        _log = log;
        _listener = listener;
        IntervalMs = intervalMs;
    }

    public int IntervalMs { get; }

    /// <summary>Connections refused so far, logged or not.</summary>
    public long Count => Interlocked.Read(ref _count);

    /// <summary>Records one refusal of a connection from <paramref name="source"/>; logs it unless that source had a line less than <see cref="IntervalMs"/> ago.</summary>
    public void Refused(EndPoint? source, string reason) => Refused(source, reason, Environment.TickCount64);

    /// <summary>As <see cref="Refused(EndPoint?, string)"/>, at time <paramref name="nowMs"/> (any monotonic milliseconds): time is an argument so tests drive it.</summary>
    public void Refused(EndPoint? source, string reason, long nowMs)
    {
        Interlocked.Increment(ref _count);
        IPAddress address = (source as IPEndPoint)?.Address ?? IPAddress.None;
        long suppressed;
        lock (_sources)
        {
            if (!_sources.TryGetValue(address, out Source? entry))
            {
                if (_sources.Count >= MaxSources)
                {
                    foreach (var (key, old) in _sources.Where(s => nowMs - s.Value.LastLineMs >= IntervalMs && s.Value.Suppressed == 0).ToList())
                    {
                        _sources.Remove(key);
                    }
                }
                if (_sources.Count >= MaxSources)
                {
                    address = IPAddress.None; // every slot busy: the rest count together
                    entry = _sources.GetValueOrDefault(address);
                }
                if (entry is null)
                {
                    entry = new Source { LastLineMs = nowMs - IntervalMs }; // as if its last line were just old enough
                    _sources[address] = entry;
                }
            }
            if (nowMs - entry.LastLineMs < IntervalMs)
            {
                entry.Suppressed++;
                return;
            }
            suppressed = entry.Suppressed;
            entry.Suppressed = 0;
            entry.LastLineMs = nowMs;
        }
        string who = address.Equals(IPAddress.None) ? (source?.ToString() ?? "an unknown source") : source!.ToString()!;
        _log($"{_listener}: refused {who}: {reason}{(suppressed > 0 ? $" (and {suppressed} more from {address} since the last line)" : "")}");
    }

    private sealed class Source
    {
        public long LastLineMs;
        public long Suppressed;
    }
}
