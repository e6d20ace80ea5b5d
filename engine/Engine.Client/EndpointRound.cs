namespace Engine.Client;

/// <summary>
/// The order in which a failing-over client tries the engine's endpoints in one round: each once,
/// from the current one onwards, except that a node answering "not primary" may name the one to try
/// next (the primary it knows of), if that one was not tried yet in this round. No sockets: the
/// client's logon loop asks it where to go.
/// </summary>
internal sealed class EndpointRound
{
    private readonly bool[] _tried;

    /// <summary>
    /// A round over <paramref name="count"/> endpoints that starts at <paramref name="start"/>, leaving out
    /// <paramref name="avoid"/> (an endpoint just left for silence; -1: none) unless it is the only one.
    /// </summary>
    public EndpointRound(int count, int start, int avoid = -1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(start, count);
        _tried = new bool[count];
        if (avoid >= 0 && avoid < count && count > 1)
        {
            _tried[avoid] = true; // as if tried: neither the start nor a "not primary" answer leads there
            if (start == avoid)
            {
                start = (start + 1) % count;
            }
        }
        Current = start;
        _tried[start] = true;
    }

    /// <summary>The endpoint to try now.</summary>
    public int Current { get; private set; }

    /// <summary>
    /// The attempt at <see cref="Current"/> failed; moves to the next endpoint: <paramref name="named"/>
    /// (the index a "not primary" answer named, or -1) if it is one not yet tried, else the next untried
    /// one after the current. False when every endpoint has been tried in this round.
    /// </summary>
    public bool MoveNext(int named = -1)
    {
        int next = named;
        if ((uint)next >= (uint)_tried.Length || _tried[next])
        {
            next = -1;
            for (int step = 1; step < _tried.Length && next < 0; step++)
            {
                int candidate = (Current + step) % _tried.Length;
                if (!_tried[candidate])
                {
                    next = candidate;
                }
            }
            if (next < 0)
            {
                return false;
            }
        }
        _tried[next] = true;
        Current = next;
        return true;
    }
}
