using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

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
    private bool _lastHeld;

    public WitnessLease(IPEndPoint witness, string nodeId, Func<ulong> epoch, Func<bool> wanted, Action<string> log)
    {
        _witness = witness;
        _nodeId = nodeId;
        _epoch = epoch;
        _wanted = wanted;
        _log = log;
        _loop = Task.Run(Loop, CancellationToken.None);
    }

    public bool Held => Stopwatch.GetTimestamp() < Interlocked.Read(ref _validUntilTicks);

    private async Task Loop()
    {
        while (!_stop.IsCancellationRequested)
        {
            int pause = 50;
            if (_wanted())
            {
                long asked = Stopwatch.GetTimestamp();
                (bool granted, int leaseMs, string answer) = await AskAsync().ConfigureAwait(false);
                if (granted)
                {
                    Interlocked.Exchange(ref _validUntilTicks, asked + (leaseMs - MarginMs) * Stopwatch.Frequency / 1000);
                    pause = Math.Max(20, leaseMs / 3);
                }
                if (granted != _lastHeld)
                {
                    _log(granted ? $"solo lease from the witness at {_witness} ({leaseMs} ms, renewed)" : $"the witness refused the solo lease: {answer}");
                    _lastHeld = granted;
                }
            }
            try
            {
                await Task.Delay(pause, _stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task<(bool Granted, int LeaseMs, string Answer)> AskAsync()
    {
        try
        {
            using var client = new TcpClient { NoDelay = true };
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            timeout.CancelAfter(200);
            await client.ConnectAsync(_witness, timeout.Token).ConfigureAwait(false);
            NetworkStream stream = client.GetStream();
            await stream.WriteAsync(Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"ACQUIRE {_nodeId} {_epoch()}\n")), timeout.Token).ConfigureAwait(false);
            var buffer = new byte[256];
            int read = await stream.ReadAsync(buffer, timeout.Token).ConfigureAwait(false);
            string answer = Encoding.ASCII.GetString(buffer, 0, read).Trim();
            string[] parts = answer.Split(' ');
            return parts.Length >= 2 && parts[0] == "GRANTED" && int.TryParse(parts[1], out int ms) ? (true, ms, answer) : (false, 0, answer);
        }
        catch (Exception e) when (e is SocketException or IOException or OperationCanceledException)
        {
            return (false, 0, $"witness unreachable ({e.Message})");
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        _stop.Dispose();
    }
}

/// <summary>
/// <c>engine witness</c>: grants the solo lease to at most one node at a time, for a fixed length,
/// and never to a node of a lower epoch than one it has granted before (an old primary is fenced).
/// Protocol, one line per connection: <c>ACQUIRE node epoch</c> → <c>GRANTED ms</c> or
/// <c>DENIED holder epoch remaining-ms</c>.
/// </summary>
public sealed class WitnessServer : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly int _leaseMs;
    private readonly Action<string> _log;
    private readonly object _gate = new();
    private readonly CancellationTokenSource _stop = new();
    private string? _holder;
    private ulong _holderEpoch;
    private ulong _highestEpoch;
    private long _expiresTicks;
    private Task? _loop;

    public WitnessServer(IPEndPoint listen, int leaseMs, Action<string> log)
    {
        _leaseMs = leaseMs;
        _log = log;
        _listener = new TcpListener(listen);
        _listener.Start();
        Endpoint = (IPEndPoint)_listener.LocalEndpoint;
    }

    public IPEndPoint Endpoint { get; }

    public void Start() => _loop = Task.Run(AcceptLoop, CancellationToken.None);

    /// <summary>The decision, under the lock: one holder at a time, never backwards in epoch.</summary>
    public string Decide(string node, ulong epoch)
    {
        lock (_gate)
        {
            long now = Stopwatch.GetTimestamp();
            bool free = _holder is null || now >= _expiresTicks || _holder == node;
            if (epoch < _highestEpoch)
            {
                return string.Create(CultureInfo.InvariantCulture, $"DENIED {_holder} {_highestEpoch} fenced");
            }
            if (!free)
            {
                return string.Create(CultureInfo.InvariantCulture, $"DENIED {_holder} {_holderEpoch} {(_expiresTicks - now) * 1000 / Stopwatch.Frequency}");
            }
            if (_holder != node)
            {
                _log($"solo lease granted to {node} (epoch {epoch})");
            }
            _holder = node;
            _holderEpoch = epoch;
            _highestEpoch = Math.Max(_highestEpoch, epoch);
            _expiresTicks = now + _leaseMs * Stopwatch.Frequency / 1000;
            return string.Create(CultureInfo.InvariantCulture, $"GRANTED {_leaseMs}");
        }
    }

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            _ = Task.Run(async () =>
            {
                using (client)
                {
                    try
                    {
                        NetworkStream stream = client.GetStream();
                        var buffer = new byte[256];
                        int read = await stream.ReadAsync(buffer).ConfigureAwait(false);
                        string[] parts = Encoding.ASCII.GetString(buffer, 0, read).Trim().Split(' ');
                        string answer = parts.Length == 3 && parts[0] == "ACQUIRE" && ulong.TryParse(parts[2], out ulong epoch)
                            ? Decide(parts[1], epoch)
                            : "ERROR expected: ACQUIRE node epoch";
                        await stream.WriteAsync(Encoding.ASCII.GetBytes(answer + "\n")).ConfigureAwait(false);
                    }
                    catch (Exception e) when (e is IOException or SocketException)
                    {
                    }
                }
            });
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Stop();
        if (_loop is not null)
        {
            await _loop.ConfigureAwait(false);
        }
        _stop.Dispose();
    }
}
