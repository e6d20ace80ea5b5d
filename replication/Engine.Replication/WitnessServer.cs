using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Engine.Core.Journaling;
using Engine.Core.Server;
using Engine.Security;

namespace Engine.Replication;

/// <summary>
/// <c>engine witness</c>: grants the solo lease to at most one node of the cluster at a time, and
/// never to a lower epoch than one it has granted (an old primary is fenced) nor more than one above
/// (<see cref="WitnessRules"/>). A backup asks for it before it takes over, a primary whose backup
/// is gone asks for it to go on alone.
/// </summary>
/// <remarks>
/// <para>Every connection is a <see cref="SecureChannel"/> for <see cref="LinkPurpose.Witness"/>:
/// the client must prove it holds the key of a principal of role <see cref="PrincipalRole.Node"/>,
/// and the name it is granted under is that principal's, never a string it sends. Then requests and
/// answers (<see cref="WitnessLine"/>), one at a time, while the node sends one at least every
/// <see cref="IdleTimeout"/>. Anything else (no handshake, another cluster, another role, a false
/// signature, a malformed or overlong line, a first request later than <see cref="ConnectionTimeout"/>
/// after the accept) closes that connection only,
/// counted and logged at most once a second per source; the listener and everyone else go on. At most
/// <see cref="MaxConnections"/> connections at once, more are closed at once.</para>
/// <para>The lease is sticky: once granted, nobody else gets it until the holder gives it back
/// (when a backup is in step with it again), even if the holder falls silent. A holder may have
/// acknowledged orders that only it has; granting the lease to the other node then would lose them.
/// The grant's length bounds only how long the holder may act on it without renewing.</para>
/// </remarks>
public sealed class WitnessServer : IAsyncDisposable
{
    /// <summary>Connections at once: two nodes need one each now and then; the rest is slack for reconnects.</summary>
    public const int MaxConnections = 64;

    /// <summary>Nodes whose newest channel is remembered, at most.</summary>
    private const int MaxRememberedNodes = 1024;

    /// <summary>Handshake and first request of a connection, at most.</summary>
    public static readonly TimeSpan ConnectionTimeout = TimeSpan.FromSeconds(2);

    /// <summary>
    /// A node's connection stays open this long after an answer for its next request: a holder renews
    /// every third of a lease on the channel it has (one round trip, as before authentication, instead
    /// of a handshake's three). Nodes drop an idle channel sooner (<see cref="Pair.WitnessClient"/>).
    /// </summary>
    public static readonly TimeSpan IdleTimeout = TimeSpan.FromSeconds(10);

    private readonly Socket _listener;
    private readonly int _leaseMs;
    private readonly ClusterCredentials _credentials;
    private readonly Action<string> _log;
    private readonly RefusalLog _refusals;
    private readonly object _gate = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly string? _stateFile;
    private readonly Func<string, bool> _isNode;
    private WitnessState _state = WitnessState.Empty;
    private int _connections;
    private long _malformed;
    private long _channels;
    private long _requests;
    private long _superseded;

    // Per node, the number of its newest channel (under _gate). A request on an older channel is
    // dropped: the node gave up on that channel (no answer in time) and may have asked again on a
    // newer one since; deciding the old request after the new one (a late ACQUIRE after a RELEASE)
    // would give the node a lease it believes it gave back, and the other node could never take over.
    // Bounded (MaxRememberedNodes).
    private readonly Dictionary<string, long> _newestChannel = new(StringComparer.Ordinal);
    private long _channelNumber;
    private Task? _loop;

    /// <param name="listen">Where to listen.</param>
    /// <param name="leaseMs">How long a holder may act on a grant without renewing it.</param>
    /// <param name="credentials">The witness's own principal (role witness) and the cluster's roster, whose nodes may hold the lease.</param>
    /// <param name="log">Where decisions are told.</param>
    /// <param name="stateFile">Where the holder and the highest epoch granted are kept across restarts
    /// (written, synced and renamed into place before a decision that changes them is answered);
    /// null to keep them in memory only.</param>
    /// <exception cref="InvalidDataException">The state file exists but cannot be read, or names a holder that is not a node of the cluster.</exception>
    /// <exception cref="ArgumentException">The credentials are not a witness's.</exception>
    public WitnessServer(IPEndPoint listen, int leaseMs, ClusterCredentials credentials, Action<string> log, string? stateFile = null)
    {
        ArgumentNullException.ThrowIfNull(credentials);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(leaseMs);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(leaseMs, WitnessLine.MaxLeaseMs);
        if (credentials.Self.Role != PrincipalRole.Witness)
        {
            throw new ArgumentException($"the witness runs as a principal of role witness, not as {credentials.Self}", nameof(credentials));
        }
        _leaseMs = leaseMs;
        _credentials = credentials;
        _log = log;
        _refusals = new RefusalLog(log, "witness");
        _stateFile = stateFile;
        _isNode = name => credentials.Roster.Find(name)?.Role == PrincipalRole.Node;
        if (stateFile is not null && File.Exists(stateFile))
        {
            _state = ReadState(stateFile);
            log($"state from {stateFile}: holder {_state.Holder ?? "-"} (epoch {_state.HolderEpoch}), highest epoch granted {_state.HighestEpoch}");
        }
        _listener = Listener.Bind(listen, backlog: 16);
        Endpoint = (IPEndPoint)_listener.LocalEndPoint!;
    }

    public IPEndPoint Endpoint { get; }

    /// <summary>What the witness remembers now.</summary>
    public WitnessState State
    {
        get
        {
            lock (_gate)
            {
                return _state;
            }
        }
    }

    /// <summary>Connections refused so far: failed handshakes, malformed requests, timeouts, too many at once.</summary>
    public long Refused => _refusals.Count;

    /// <summary>Authenticated connections that sent a request that is not one (also counted in <see cref="Refused"/>).</summary>
    public long Malformed => Interlocked.Read(ref _malformed);

    /// <summary>Connections that passed the handshake so far.</summary>
    public long Channels => Interlocked.Read(ref _channels);

    /// <summary>Requests dropped because their node had opened a newer channel since.</summary>
    public long Superseded => Interlocked.Read(ref _superseded);

    /// <summary>Requests answered so far.</summary>
    public long Requests => Interlocked.Read(ref _requests);

    public void Start() => _loop = Task.Run(AcceptLoop, CancellationToken.None);

    /// <summary>The decision on an ACQUIRE by <paramref name="node"/> (an authenticated name), made durable before it is answered.</summary>
    public WitnessAnswer Decide(string node, ulong epoch) => Decide(node, epoch, channel: 0)!;

    /// <summary>
    /// As <see cref="Decide(string, ulong)"/> for a request on channel <paramref name="channel"/> of
    /// the node (0: none); null, with nothing decided, when the node has opened a newer channel since.
    /// </summary>
    private WitnessAnswer? Decide(string node, ulong epoch, long channel, bool resume = false)
    {
        lock (_gate)
        {
            if (IsSuperseded(node, channel))
            {
                return null;
            }
            WitnessDecision decision = resume ? WitnessRules.Resume(_state, _isNode, node, epoch, _leaseMs) : WitnessRules.Acquire(_state, _isNode, node, epoch, _leaseMs);
            if (decision.Next != _state)
            {
                if (!Persist(decision.Next))
                {
                    return new WitnessAnswer.Denied(_state.Holder, _state.HighestEpoch, WitnessRefusal.Unwritable);
                }
                if (decision.Next.Holder != _state.Holder || decision.Next.HolderEpoch != _state.HolderEpoch)
                {
                    _log($"solo lease {(resume ? "resumed by" : "granted to")} {node} (epoch {epoch})");
                }
                _state = decision.Next;
            }
            return decision.Answer;
        }
    }

    /// <summary>The holder <paramref name="node"/> (an authenticated name) gives the lease back: a backup is in step with it again.</summary>
    public WitnessAnswer Release(string node) => Release(node, channel: 0)!;

    /// <summary>As <see cref="Release(string)"/> for a request on channel <paramref name="channel"/>; null when superseded.</summary>
    private WitnessAnswer? Release(string node, long channel)
    {
        lock (_gate)
        {
            if (IsSuperseded(node, channel))
            {
                return null;
            }
            WitnessDecision decision = WitnessRules.Release(_state, node);
            if (decision.Next != _state)
            {
                if (!Persist(decision.Next))
                {
                    return new WitnessAnswer.Denied(_state.Holder, _state.HighestEpoch, WitnessRefusal.Unwritable);
                }
                _log($"solo lease released by {node}");
                _state = decision.Next;
            }
            return decision.Answer;
        }
    }

    /// <summary>Numbers a node's new channel; from now on its older channels are superseded.</summary>
    private long OpenChannel(string node)
    {
        lock (_gate)
        {
            if (_newestChannel.Count >= MaxRememberedNodes && !_newestChannel.ContainsKey(node))
            {
                // Only the development cluster's open roster has more nodes than this (a real roster has
                // at most 64 principals): forgetting costs only the ordering of requests already in flight.
                _newestChannel.Clear();
            }
            long number = ++_channelNumber;
            _newestChannel[node] = number;
            return number;
        }
    }

    /// <summary>Under the lock: true (and counted) when <paramref name="channel"/> is not the node's newest.</summary>
    private bool IsSuperseded(string node, long channel)
    {
        if (channel == 0 || !_newestChannel.TryGetValue(node, out long newest) || newest == channel)
        {
            return false;
        }
        Interlocked.Increment(ref _superseded);
        return true;
    }

    /// <summary>
    /// Reads the state file: exactly <c>holder NAME|-</c>, <c>holder_epoch N</c>, <c>highest_epoch N</c>.
    /// A holder that is not a node of this cluster is refused, not dropped: it may have acknowledged
    /// alone, so only the operator may decide it is gone (by editing the file).
    /// </summary>
    private WitnessState ReadState(string stateFile)
    {
        var info = new FileInfo(stateFile);
        string[] fields = info.Length > 4096 ? [] : File.ReadAllText(stateFile, Encoding.ASCII).Split((char[])['\n', ' '], StringSplitOptions.RemoveEmptyEntries);
        if (fields is not ["holder", string holder, "holder_epoch", string holderEpoch, "highest_epoch", string highest]
            || !ulong.TryParse(holderEpoch, NumberStyles.None, CultureInfo.InvariantCulture, out ulong holderEpochValue)
            || !ulong.TryParse(highest, NumberStyles.None, CultureInfo.InvariantCulture, out ulong highestValue)
            || (holder != "-" && !Principal.IsValidName(holder)))
        {
            throw new InvalidDataException($"the witness state in '{stateFile}' is not readable; move it away only if both nodes are known to agree");
        }
        var state = new WitnessState(holder == "-" ? null : holder, holderEpochValue, highestValue);
        if (state.Holder is not null && !_isNode(state.Holder))
        {
            throw new InvalidDataException($"the witness state in '{stateFile}' names holder '{state.Holder}', which is not a node of cluster {_credentials.Roster.ClusterIdHex}: "
                + "it may have acknowledged orders alone, so it is not dropped silently; if that node is really gone and the pair agrees, write 'holder -' in the file (keep the epochs)");
        }
        try
        {
            state.AssertInvariants();
        }
        catch (InvalidOperationException e)
        {
            throw new InvalidDataException($"the witness state in '{stateFile}' is inconsistent: {e.Message}", e);
        }
        return state;
    }

    /// <summary>Makes a new state durable (if there is a state file) before it takes effect; false if it could not be written.</summary>
    private bool Persist(WitnessState next)
    {
        if (_stateFile is null)
        {
            return true;
        }
        try
        {
            DurableFile.Replace(_stateFile, Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"holder {next.Holder ?? "-"}\nholder_epoch {next.HolderEpoch}\nhighest_epoch {next.HighestEpoch}\n")));
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _log($"could not write the state to {_stateFile}: {e.Message}; nothing changed");
            return false;
        }
    }

    private Task AcceptLoop() => Listener.AcceptAllAsync(_listener, socket =>
    {
        if (Interlocked.Increment(ref _connections) > MaxConnections)
        {
            Interlocked.Decrement(ref _connections);
            _refusals.Refused(socket.RemoteEndPoint, string.Create(CultureInfo.InvariantCulture, $"{MaxConnections} connections already open"));
            socket.Dispose();
            return Task.CompletedTask;
        }
        _ = Task.Run(() => ServeAsync(socket));
        return Task.CompletedTask;
    }, _stop.Token);

    /// <summary>One connection: handshake, then requests and answers, one at a time, until the node closes it, goes idle or sends a malformed one; never throws.</summary>
    private async Task ServeAsync(Socket socket)
    {
        EndPoint? remote = null;
        int answered = 0;
        try
        {
            remote = socket.RemoteEndPoint;
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            timeout.CancelAfter(ConnectionTimeout);
            AcceptOutcome outcome = await SecureChannel.AcceptAsync(socket, _credentials, LinkPurpose.Witness, [PrincipalRole.Node], timeout: ConnectionTimeout, cancel: timeout.Token)
                .ConfigureAwait(false);
            if (outcome.Channel is not { } channel)
            {
                _refusals.Refused(remote, $"handshake refused: {outcome.Refusal}");
                return;
            }
            Interlocked.Increment(ref _channels);
            long number = OpenChannel(channel.Peer.Name);
            using (channel)
            {
                // Room for the longest request and the tag: a longer record fails the receive (InvalidDataException).
                byte[] buffer = new byte[WitnessLine.MaxRequestBytes + SecureChannel.TagBytes];
                while (true)
                {
                    int read = await channel.ReceiveAsync(buffer, timeout.Token).ConfigureAwait(false);
                    if (read == 0)
                    {
                        return; // closed between requests: nothing to do
                    }
                    if (!WitnessLine.TryParseRequest(buffer.AsSpan(0, read), out WitnessRequest request, out string error))
                    {
                        Interlocked.Increment(ref _malformed);
                        _refusals.Refused(remote, $"{channel.Peer.Name}: not a request ({error}): closed");
                        return;
                    }
                    WitnessAnswer? decided = request.Verb switch
                    {
                        WitnessVerb.Acquire => Decide(channel.Peer.Name, request.Epoch, number),
                        WitnessVerb.Resume => Decide(channel.Peer.Name, request.Epoch, number, resume: true),
                        _ => Release(channel.Peer.Name, number),
                    };
                    if (decided is not { } answer)
                    {
                        return; // the node has a newer channel: this one is closed unanswered, as the node expects
                    }
                    if (answer is WitnessAnswer.Denied { Reason: WitnessRefusal.EpochTooHigh or WitnessRefusal.UnknownNode } refusal)
                    {
                        _refusals.Refused(remote, string.Create(CultureInfo.InvariantCulture, $"{channel.Peer.Name}: {request.Verb.ToString().ToUpperInvariant()} {request.Epoch} refused ({WitnessLine.Word(refusal.Reason)})"));
                    }
                    await channel.SendAsync(WitnessLine.Format(answer), timeout.Token).ConfigureAwait(false);
                    answered++;
                    Interlocked.Increment(ref _requests);
                    timeout.CancelAfter(IdleTimeout); // the next request, if any, within this
                }
            }
        }
        catch (InvalidDataException e)
        {
            Interlocked.Increment(ref _malformed);
            _refusals.Refused(remote, $"not a request: {e.Message}: closed");
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // A node that answered before and then went quiet (or closed) is no stranger: its channel simply ends.
            if (!_stop.IsCancellationRequested && answered == 0)
            {
                _refusals.Refused(remote, e is OperationCanceledException ? "no request in time: closed" : e.Message);
            }
        }
        finally
        {
            socket.Dispose();
            Interlocked.Decrement(ref _connections);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
        if (_loop is not null)
        {
            await _loop.ConfigureAwait(false);
        }
        _stop.Dispose();
    }
}
