using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Engine.Core.Server;

namespace Engine.Replication;

/// <summary>
/// Permission for a primary to acknowledge while no backup is in step. Without it, such a primary
/// acknowledges nothing: availability is given up rather than risking two primaries that both
/// acknowledge.
/// </summary>
public interface ISoloLease
{
    /// <summary>True while this node may acknowledge alone.</summary>
    bool Held { get; }

    /// <summary>The backup was just lost (ask for the lease now) or is in step again (give it back now), rather than at the next poll.</summary>
    void Nudge()
    {
    }
}

/// <summary>The operator's lease: given at start (<c>--allow-solo</c>) or later (<c>engine admin go-solo</c>); never expires.</summary>
public sealed class OperatorLease(bool granted) : ISoloLease
{
    private volatile bool _granted = granted;

    public bool Held => _granted;

    public void Grant() => _granted = true;
}

/// <summary>
/// A lease from <c>engine witness</c>: asked for while <c>wanted</c> says so (no backup in step),
/// renewed every third of its length, and held only until its length minus a margin after the
/// request was sent, so that it lapses here before it lapses at the witness: a cut-off primary stops
/// acknowledging before the witness can grant the lease to the other node.
/// </summary>
public sealed class WitnessLease : ISoloLease, IAsyncDisposable
{
    private const int MarginMs = 150;

    private readonly IPEndPoint _witness;
    private readonly string _nodeId;
    private readonly Func<ulong> _epoch;
    private readonly Func<bool> _wanted;
    private readonly Action<string> _log;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private long _validUntilTicks;
    private readonly Action? _fenced;
    private readonly Action? _granted;
    private readonly SemaphoreSlim _wake = new(0, 1);
    private bool _lastHeld;

    // True from a grant until the witness confirms the release: the lease is sticky, so a renewal
    // that failed (the witness unreachable for a moment) does not end it there.
    private bool _holderAtWitness;

    /// <param name="witness">The witness's endpoint.</param>
    /// <param name="nodeId">This node's name at the witness.</param>
    /// <param name="epoch">The epoch this node seals in.</param>
    /// <param name="wanted">True while the lease is needed (no backup in step); once false again, the lease is released.</param>
    /// <param name="log">Where state changes are told.</param>
    /// <param name="heldUntilTicks">A grant already obtained (<see cref="AcquireAsync"/> before a takeover): held until then.</param>
    /// <param name="fenced">Called when the witness answers that a higher epoch exists: the other node took over.</param>
    /// <param name="granted">Called when the lease is granted after not being held: what waits for it may go.</param>
    public WitnessLease(IPEndPoint witness, string nodeId, Func<ulong> epoch, Func<bool> wanted, Action<string> log, long heldUntilTicks = 0,
        Action? fenced = null, Action? granted = null)
    {
        _fenced = fenced;
        _granted = granted;
        _witness = witness;
        _nodeId = nodeId;
        _epoch = epoch;
        _wanted = wanted;
        _log = log;
        _validUntilTicks = heldUntilTicks;
        _lastHeld = heldUntilTicks != 0;
        _holderAtWitness = heldUntilTicks != 0;
        _loop = Task.Run(Loop, CancellationToken.None);
    }

    public bool Held => Stopwatch.GetTimestamp() < Interlocked.Read(ref _validUntilTicks);

    /// <summary>The witness still names this node its holder (a renewal may have lapsed here): until it is given back, the other node cannot take over.</summary>
    public bool HolderAtWitness => Volatile.Read(ref _holderAtWitness);

    public void Nudge()
    {
        if (_wake.CurrentCount == 0)
        {
            try
            {
                _wake.Release();
            }
            catch (Exception e) when (e is SemaphoreFullException or ObjectDisposedException)
            {
                // Nudged twice at once (one wake-up is enough), or already stopped.
            }
        }
    }

    private async Task Loop()
    {
        while (!_stop.IsCancellationRequested)
        {
            int pause = 50;
            if (_wanted())
            {
                (bool granted, long validUntil, int leaseMs, string answer) = await AcquireAsync(_witness, _nodeId, _epoch(), _stop.Token).ConfigureAwait(false);
                if (granted)
                {
                    Interlocked.Exchange(ref _validUntilTicks, validUntil);
                    pause = Math.Max(20, leaseMs / 3);
                    _holderAtWitness = true;
                }
                else if (answer.StartsWith("DENIED", StringComparison.Ordinal))
                {
                    _holderAtWitness = false; // someone else holds it, or we are fenced
                }
                else
                {
                    // No answer: the request may still have reached the witness and been granted
                    // (the lease is sticky), so count ourselves its holder until a release is answered.
                    _holderAtWitness = true;
                }
                if (granted != _lastHeld)
                {
                    _log(granted ? $"solo lease from the witness at {_witness} ({leaseMs} ms, renewed)" : $"the witness refused the solo lease: {answer}");
                    _lastHeld = granted;
                    if (granted)
                    {
                        _granted?.Invoke();
                    }
                }
                if (!granted && answer.EndsWith(" fenced", StringComparison.Ordinal))
                {
                    _fenced?.Invoke();
                }
            }
            else if (_holderAtWitness)
            {
                // A backup is in step again: it holds everything acknowledged alone, so the lease
                // may go to it should this node die. Stop acknowledging alone first, then release.
                Interlocked.Exchange(ref _validUntilTicks, 0);
                string answer = await AskAsync(_witness, $"RELEASE {_nodeId}", _stop.Token).ConfigureAwait(false);
                if (answer.StartsWith("RELEASED", StringComparison.Ordinal) || answer.StartsWith("NOT-HOLDER", StringComparison.Ordinal))
                {
                    _log($"a backup is in step: solo lease given back to the witness ({answer})");
                    _lastHeld = false;
                    _holderAtWitness = false;
                }
            }
            try
            {
                await _wake.WaitAsync(pause, _stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>
    /// Asks <paramref name="witness"/> for the solo lease for <paramref name="nodeId"/> in
    /// <paramref name="epoch"/>. A grant is valid here until its length minus a margin after the request
    /// was sent, so it lapses here before it does at the witness.
    /// </summary>
    public static async Task<(bool Granted, long ValidUntilTicks, int LeaseMs, string Answer)> AcquireAsync(IPEndPoint witness, string nodeId, ulong epoch, CancellationToken cancel)
    {
        long asked = Stopwatch.GetTimestamp();
        string answer = await AskAsync(witness, string.Create(CultureInfo.InvariantCulture, $"ACQUIRE {nodeId} {epoch}"), cancel).ConfigureAwait(false);
        string[] parts = answer.Split(' ');
        return parts.Length >= 2 && parts[0] == "GRANTED" && int.TryParse(parts[1], out int ms)
            ? (true, asked + (ms - MarginMs) * Stopwatch.Frequency / 1000, ms, answer)
            : (false, 0, 0, answer);
    }

    /// <summary>One request line, one answer line; "witness unreachable (…)" when there is none within 200 ms.</summary>
    private static async Task<string> AskAsync(IPEndPoint witness, string request, CancellationToken cancel)
    {
        try
        {
            using var client = new TcpClient { NoDelay = true };
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            timeout.CancelAfter(200);
            await client.ConnectAsync(witness, timeout.Token).ConfigureAwait(false);
            NetworkStream stream = client.GetStream();
            await stream.WriteAsync(Encoding.ASCII.GetBytes(request + "\n"), timeout.Token).ConfigureAwait(false);
            var buffer = new byte[256];
            int read = await stream.ReadAsync(buffer, timeout.Token).ConfigureAwait(false);
            return Encoding.ASCII.GetString(buffer, 0, read).Trim();
        }
        catch (Exception e) when (e is SocketException or IOException or OperationCanceledException)
        {
            return $"witness unreachable ({e.Message})";
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        _stop.Dispose();
        _wake.Dispose();
    }
}

/// <summary>
/// <c>engine witness</c>: grants the solo lease to at most one node, and never to a node of a lower
/// epoch than one it has granted before (an old primary is fenced). A backup asks for it before it
/// takes over, a primary whose backup is gone asks for it to go on alone.
/// </summary>
/// <remarks>
/// The lease is sticky: once granted, nobody else gets it until the holder gives it back (when a
/// backup is in step with it again), even if the holder falls silent. A holder may have acknowledged
/// orders that only it has; granting the lease to the other node then would lose them. The grant's
/// length bounds only how long the holder may act on it without renewing. Protocol, one line per
/// connection: <c>ACQUIRE node epoch</c> → <c>GRANTED ms</c> or <c>DENIED holder epoch why</c>;
/// <c>RELEASE node</c> → <c>RELEASED</c> or <c>NOT-HOLDER holder</c>.
/// </remarks>
public sealed class WitnessServer : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly int _leaseMs;
    private readonly Action<string> _log;
    private readonly object _gate = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly string? _stateFile;
    private string? _holder;
    private ulong _holderEpoch;
    private ulong _highestEpoch;
    private Task? _loop;

    /// <param name="listen">Where to listen.</param>
    /// <param name="leaseMs">How long a holder may act on a grant without renewing it.</param>
    /// <param name="log">Where decisions are told.</param>
    /// <param name="stateFile">Where the holder and the highest epoch granted are kept across restarts
    /// (written, synced and renamed into place before a decision that changes them is answered);
    /// null to keep them in memory only.</param>
    /// <exception cref="InvalidDataException">The state file exists but cannot be read.</exception>
    public WitnessServer(IPEndPoint listen, int leaseMs, Action<string> log, string? stateFile = null)
    {
        _leaseMs = leaseMs;
        _log = log;
        _stateFile = stateFile;
        if (stateFile is not null && File.Exists(stateFile))
        {
            string[] fields = File.ReadAllText(stateFile).Split((char[])['\n', ' '], StringSplitOptions.RemoveEmptyEntries);
            if (fields is not ["holder", string holder, "holder_epoch", string holderEpoch, "highest_epoch", string highest]
                || !ulong.TryParse(holderEpoch, CultureInfo.InvariantCulture, out _holderEpoch)
                || !ulong.TryParse(highest, CultureInfo.InvariantCulture, out _highestEpoch))
            {
                throw new InvalidDataException($"the witness state in '{stateFile}' is not readable; move it away only if both nodes are known to agree");
            }
            _holder = holder == "-" ? null : holder;
            log($"state from {stateFile}: holder {holder} (epoch {_holderEpoch}), highest epoch granted {_highestEpoch}");
        }
        _listener = Listener.Bind(listen, backlog: 16);
        Endpoint = (IPEndPoint)_listener.LocalEndPoint!;
    }

    /// <summary>Makes a new state durable (if there is a state file) before it takes effect; false if it could not be written.</summary>
    private bool Persist(string? holder, ulong holderEpoch, ulong highest)
    {
        if (_stateFile is null)
        {
            return true;
        }
        try
        {
            string temporary = _stateFile + ".tmp";
            using (var file = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 4096, FileOptions.WriteThrough))
            {
                file.Write(Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"holder {holder ?? "-"}\nholder_epoch {holderEpoch}\nhighest_epoch {highest}\n")));
                file.Flush(flushToDisk: true);
            }
            File.Move(temporary, _stateFile, overwrite: true);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _log($"could not write the state to {_stateFile}: {e.Message}; nothing changed");
            return false;
        }
    }

    public IPEndPoint Endpoint { get; }

    public void Start() => _loop = Task.Run(AcceptLoop, CancellationToken.None);

    /// <summary>The decision on an ACQUIRE, under the lock: one holder until it releases, never backwards in epoch.</summary>
    public string Decide(string node, ulong epoch)
    {
        lock (_gate)
        {
            if (epoch < _highestEpoch)
            {
                return string.Create(CultureInfo.InvariantCulture, $"DENIED {_holder ?? "-"} {_highestEpoch} fenced");
            }
            if (_holder is not null && _holder != node)
            {
                return string.Create(CultureInfo.InvariantCulture, $"DENIED {_holder} {_holderEpoch} held");
            }
            ulong highest = Math.Max(_highestEpoch, epoch);
            if (_holder != node || _holderEpoch != epoch || _highestEpoch != highest)
            {
                if (!Persist(node, epoch, highest))
                {
                    return "DENIED - 0 unwritable";
                }
                _log($"solo lease granted to {node} (epoch {epoch})");
            }
            _holder = node;
            _holderEpoch = epoch;
            _highestEpoch = highest;
            return string.Create(CultureInfo.InvariantCulture, $"GRANTED {_leaseMs}");
        }
    }

    /// <summary>The holder gives the lease back: a backup is in step with it again.</summary>
    public string Release(string node)
    {
        lock (_gate)
        {
            if (_holder != node)
            {
                return $"NOT-HOLDER {_holder ?? "-"}";
            }
            if (!Persist(null, _holderEpoch, _highestEpoch))
            {
                return $"NOT-RELEASED unwritable";
            }
            _holder = null;
            _log($"solo lease released by {node}");
            return "RELEASED";
        }
    }

    private Task AcceptLoop() => Listener.AcceptAllAsync(_listener, socket =>
    {
        _ = Task.Run(async () =>
        {
            await using var stream = new NetworkStream(socket, ownsSocket: true);
            try
            {
                var buffer = new byte[256];
                int read = await stream.ReadAsync(buffer).ConfigureAwait(false);
                string[] parts = Encoding.ASCII.GetString(buffer, 0, read).Trim().Split(' ');
                string answer = parts switch
                {
                    ["ACQUIRE", string node, string epoch] when ulong.TryParse(epoch, CultureInfo.InvariantCulture, out ulong e) => Decide(node, e),
                    ["RELEASE", string node] => Release(node),
                    _ => "ERROR expected: ACQUIRE node epoch, or RELEASE node",
                };
                await stream.WriteAsync(Encoding.ASCII.GetBytes(answer + "\n")).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or SocketException)
            {
            }
        });
        return Task.CompletedTask;
    }, _stop.Token);

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
