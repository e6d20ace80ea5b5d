using System.Globalization;
using System.Net;

namespace Engine.Core.Server;

/// <summary>What happened at the client port, as a kind: the unit the log aggregates by (with the source address).</summary>
public enum GatewayEvent
{
    LoggedOn,
    LogonFailed,
    ProtocolViolation,
    LogonTimeout,
    ClosedBeforeLogon,
    Evicted,
    Refused,
    TlsFailed,
    NotPrimary,
    Unavailable,
    SessionClosed,
}

/// <summary>
/// Keeps the gateway's log readable under attack: per (event kind, source address), the first
/// event is logged in full; later ones are only counted, and <see cref="Flush"/> (once a second)
/// writes one line per key that had any, with the count and the last of them. A key quiet for a
/// whole interval is forgotten, so the next event is logged in full again.
/// </summary>
/// <remarks>
/// Bounded: at most <c>maxSources</c> keys; events of a new key past that are counted under the
/// kind with no address ("other addresses"). So a flood from any number of addresses writes at
/// most (<c>maxSources</c> + kinds) lines a second, whatever its rate.
/// </remarks>
internal sealed class EventDigest(Action<string> log, GatewayCounters counters, int maxSources = 64)
{
    private readonly object _lock = new();
    private readonly Dictionary<(GatewayEvent Kind, IPAddress? Source), Entry> _entries = [];
    private long _lastFlushMs = Environment.TickCount64;

    /// <summary>Logs <paramref name="message"/> if it is the first of its kind from <paramref name="source"/> lately; else counts it.</summary>
    public void Report(GatewayEvent kind, IPAddress? source, string message)
    {
        bool overflow = false;
        lock (_lock)
        {
            var key = (kind, source);
            if (!_entries.TryGetValue(key, out Entry? entry) && _entries.Count >= maxSources)
            {
                key = (kind, null);
                overflow = true;
                _entries.TryGetValue(key, out entry);
            }
            if (entry is not null)
            {
                entry.Suppressed++;
                entry.Last = message;
                Interlocked.Increment(ref counters.LogLinesSuppressed);
                return;
            }
            _entries[key] = new Entry { Last = message };
        }
        log(overflow ? $"{message} (one of many addresses: more like it from others are counted together)" : message);
    }

    /// <summary>Writes one summary line per key with suppressed events since the last flush, and forgets keys that were quiet.</summary>
    public void Flush(long nowMs)
    {
        List<string>? lines = null;
        lock (_lock)
        {
            double seconds = Math.Max(0.001, (nowMs - _lastFlushMs) / 1000.0);
            _lastFlushMs = nowMs;
            List<(GatewayEvent, IPAddress?)>? quiet = null;
            foreach (var (key, entry) in _entries)
            {
                if (entry.Suppressed == 0)
                {
                    (quiet ??= []).Add(key);
                    continue;
                }
                string from = key.Source?.ToString() ?? "other addresses";
                (lines ??= []).Add(string.Create(CultureInfo.InvariantCulture,
                    $"{entry.Suppressed} more {Describe(key.Kind)} from {from} in the last {seconds:0.#} s; the last: {entry.Last}"));
                entry.Suppressed = 0;
            }
            foreach (var key in quiet ?? [])
            {
                _entries.Remove(key);
            }
        }
        foreach (string line in lines ?? [])
        {
            log(line);
        }
    }

    /// <summary>Keys held now (for tests).</summary>
    internal int Keys
    {
        get
        {
            lock (_lock)
            {
                return _entries.Count;
            }
        }
    }

    private static string Describe(GatewayEvent kind) => kind switch
    {
        GatewayEvent.LoggedOn => "logons",
        GatewayEvent.LogonFailed => "failed logons",
        GatewayEvent.ProtocolViolation => "protocol violations",
        GatewayEvent.LogonTimeout => "logon timeouts",
        GatewayEvent.ClosedBeforeLogon => "connections closed before a logon",
        GatewayEvent.Evicted => "pending connections dropped for room",
        GatewayEvent.Refused => "refused connections",
        GatewayEvent.TlsFailed => "failed TLS handshakes",
        GatewayEvent.NotPrimary => "logons sent to the other node",
        GatewayEvent.Unavailable => "logons refused for want of a session slot",
        GatewayEvent.SessionClosed => "sessions closed",
        _ => kind.ToString(),
    };

    private sealed class Entry
    {
        public long Suppressed;
        public string Last = "";
    }
}
