namespace Engine.Core.Server;

/// <summary>
/// Per configured client: the session it is connected through now (replies and reports are routed
/// by client, so after a reconnect they reach the new session) and its requests in flight.
/// </summary>
internal sealed class ClientRegistry
{
    private readonly Entry?[] _entries;

    public ClientRegistry(IEnumerable<uint> clientIds)
    {
        var ids = clientIds.ToList();
        _entries = new Entry?[ids.Count == 0 ? 1 : (int)ids.Max() + 1];
        foreach (uint id in ids)
        {
            _entries[id] = new Entry();
        }
    }

    public Entry? this[uint clientId] => clientId < (uint)_entries.Length ? _entries[clientId] : null;

    /// <summary>Sessions connected and logged on now.</summary>
    public int LoggedOn => _entries.Count(e => e?.Current is not null);

    internal sealed class Entry
    {
        // Written by session threads at logon and close, read by the dispatch stage for every
        // reply: a stale read routes one reply to a session that is closing, which drops it; the
        // client resends and gets the original outcome from the dedupe window.
        private Session? _current;

        public int InFlight;

        public Session? Current => Volatile.Read(ref _current);

        /// <summary>Makes <paramref name="session"/> the client's session; returns the one it replaces.</summary>
        public Session? Attach(Session session) => Interlocked.Exchange(ref _current, session);

        /// <summary>Detaches <paramref name="session"/> if it is still the current one.</summary>
        public void Detach(Session session) => Interlocked.CompareExchange(ref _current, null, session);
    }
}
