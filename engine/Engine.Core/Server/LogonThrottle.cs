using System.Net;

namespace Engine.Core.Server;

/// <summary>
/// Failed logons per source address: after <see cref="GatewaySettings.FailedLogonLimit"/> within
/// <see cref="GatewaySettings.FailedLogonWindowMs"/>, the address is refused at accept for
/// <see cref="GatewaySettings.FailedLogonBlockMs"/>. Time is an argument (milliseconds of any
/// monotonic clock), so tests drive it.
/// </summary>
/// <remarks>
/// <para>Bounded: at most <see cref="GatewaySettings.MaxTrackedAddresses"/> addresses. When the
/// table is full, entries that neither block nor count anything any more are dropped; if that
/// frees nothing, a new address is not tracked (its failures go uncounted, it is never refused):
/// the table fails open rather than grow, and the pending-logon limits still bound what such a
/// source can hold.</para>
/// <para>A successful logon clears its address's count: a client behind the same address as a
/// typo does not stay one failure from the limit.</para>
/// </remarks>
internal sealed class LogonThrottle(GatewaySettings settings)
{
    private readonly object _lock = new();
    private readonly Dictionary<IPAddress, Entry> _entries = [];

    /// <summary>Addresses refused now.</summary>
    public int Blocked(long nowMs)
    {
        lock (_lock)
        {
            return _entries.Values.Count(e => e.BlockedUntilMs > nowMs);
        }
    }

    /// <summary>Addresses tracked now (for tests).</summary>
    internal int Tracked
    {
        get
        {
            lock (_lock)
            {
                return _entries.Count;
            }
        }
    }

    public bool IsBlocked(IPAddress address, long nowMs)
    {
        lock (_lock)
        {
            return _entries.TryGetValue(address, out Entry? entry) && entry.BlockedUntilMs > nowMs;
        }
    }

    /// <summary>Counts a failure; true when it makes the address blocked (the moment to log it).</summary>
    public bool Failed(IPAddress address, long nowMs)
    {
        lock (_lock)
        {
            if (!_entries.TryGetValue(address, out Entry? entry))
            {
                if (_entries.Count >= settings.MaxTrackedAddresses && !Sweep(nowMs))
                {
                    return false;
                }
                entry = new Entry { WindowStartMs = nowMs };
                _entries[address] = entry;
            }
            if (entry.BlockedUntilMs > nowMs)
            {
                return false; // already refused (a connection accepted before the block, failing now)
            }
            if (nowMs - entry.WindowStartMs >= settings.FailedLogonWindowMs)
            {
                entry.WindowStartMs = nowMs;
                entry.Failures = 0;
            }
            if (++entry.Failures < settings.FailedLogonLimit)
            {
                return false;
            }
            entry.BlockedUntilMs = nowMs + settings.FailedLogonBlockMs;
            entry.Failures = 0;
            entry.WindowStartMs = entry.BlockedUntilMs;
            return true;
        }
    }

    public void Succeeded(IPAddress address)
    {
        lock (_lock)
        {
            if (_entries.TryGetValue(address, out Entry? entry))
            {
                entry.Failures = 0;
            }
        }
    }

    /// <summary>Drops entries that neither block nor hold failures in their window; true when room was made.</summary>
    private bool Sweep(long nowMs)
    {
        int before = _entries.Count;
        foreach (var (address, entry) in _entries)
        {
            if (entry.BlockedUntilMs <= nowMs && nowMs - entry.WindowStartMs >= settings.FailedLogonWindowMs)
            {
                _entries.Remove(address); // removing the current entry while enumerating is allowed
            }
        }
        return _entries.Count < before;
    }

    /// <summary>Forgets what no longer counts; the owner calls it now and then so a quiet table shrinks.</summary>
    public void Expire(long nowMs)
    {
        lock (_lock)
        {
            Sweep(nowMs);
        }
    }

    private sealed class Entry
    {
        public long WindowStartMs;
        public int Failures;
        public long BlockedUntilMs;
    }
}
