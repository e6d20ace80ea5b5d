using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using Engine.Core.Server;

namespace Engine.Cli.Drill;

/// <summary>What a <see cref="FaultProxy"/> does to the bytes passing through it.</summary>
public enum LinkFault
{
    /// <summary>Passes everything on at once.</summary>
    None = 0,

    /// <summary>Passes nothing, either way, and says nothing: connections stay open and silent, new ones are accepted and go nowhere (a cable cut, a dead switch).</summary>
    Blackhole = 1,

    /// <summary>Passes everything on after a fixed delay, in order (a slow or distant link).</summary>
    Delay = 2,
}

/// <summary>Something that breaks a link on command: a <see cref="FaultProxy"/> in this process, or an <c>engine proxy</c> steered through its control endpoint (<see cref="RemoteProxy"/>).</summary>
/// <remarks>
/// Asynchronous because a remote switch talks over the cluster's secure channel, whose handshake and
/// receives are asynchronous: the engine runs socket completions inline on the socket engine's thread
/// (Program.Main), so a caller that blocked on them there would wait for itself.
/// </remarks>
public interface ILinkSwitch
{
    /// <summary>Sets the fault; <paramref name="delay"/> is used by <see cref="LinkFault.Delay"/>. Back to <see cref="LinkFault.None"/> heals the link.</summary>
    Task SetAsync(LinkFault fault, TimeSpan delay = default);

    /// <summary>Flips one byte of the next chunk that comes back from the target.</summary>
    Task CorruptOnceAsync();
}

/// <summary>
/// A TCP proxy between two processes that breaks the link on purpose: a black hole, a delay, one
/// flipped byte. <c>engine drill</c> puts one in front of each node's replication endpoint (and of the
/// witness); <c>engine proxy</c> runs one on its own. Healing (<see cref="Set"/> back to
/// <see cref="LinkFault.None"/>) closes every connection that lived through a black hole: both ends
/// have given up on it, as they would on a real network.
/// </summary>
public sealed class FaultProxy : ILinkSwitch, IDisposable
{
    private readonly Socket _listener;
    private readonly IPEndPoint _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly object _gate = new();
    private readonly List<Pair> _pairs = [];
    private volatile LinkFault _fault;
    private long _delayTicks;
    private int _corruptPending;
    private long _corrupted;

    public FaultProxy(IPEndPoint listen, IPEndPoint target)
    {
        _target = target;
        _listener = Listener.Bind(listen, backlog: 16);
        Endpoint = (IPEndPoint)_listener.LocalEndPoint!;
        _ = Task.Run(() => Listener.AcceptAllAsync(_listener, socket =>
        {
            var pair = new Pair(socket);
            lock (_gate)
            {
                _pairs.Add(pair);
            }
            _ = Task.Run(() => Serve(pair));
            return Task.CompletedTask;
        }, _stop.Token));
    }

    /// <summary>Where the proxy listens.</summary>
    public IPEndPoint Endpoint { get; }

    public int Port => Endpoint.Port;

    /// <summary>The fault in force.</summary>
    public LinkFault Fault => _fault;

    /// <summary>Times a byte was flipped.</summary>
    public long Corrupted => Interlocked.Read(ref _corrupted);

    /// <summary>Connections passing through now.</summary>
    public int Connections
    {
        get
        {
            lock (_gate)
            {
                return _pairs.Count;
            }
        }
    }

    /// <summary>Sets the fault; <paramref name="delay"/> is used by <see cref="LinkFault.Delay"/>. Back to <see cref="LinkFault.None"/> heals the link.</summary>
    public void Set(LinkFault fault, TimeSpan delay = default)
    {
        Interlocked.Exchange(ref _delayTicks, (long)(delay.TotalSeconds * Stopwatch.Frequency));
        LinkFault before = _fault;
        _fault = fault;
        if (before == LinkFault.Blackhole && fault != LinkFault.Blackhole)
        {
            List<Pair> stale;
            lock (_gate)
            {
                stale = [.. _pairs.Where(p => p.SawBlackhole)];
            }
            foreach (Pair pair in stale)
            {
                pair.Close();
            }
        }
    }

    /// <summary>Flips one byte in the middle of the next chunk of at least 64 bytes that comes back from the target (target → client).</summary>
    public void CorruptOnce() => Interlocked.Exchange(ref _corruptPending, 1);

    Task ILinkSwitch.SetAsync(LinkFault fault, TimeSpan delay)
    {
        Set(fault, delay);
        return Task.CompletedTask;
    }

    Task ILinkSwitch.CorruptOnceAsync()
    {
        CorruptOnce();
        return Task.CompletedTask;
    }

    private async Task Serve(Pair pair)
    {
        try
        {
            // Behind a black hole the connection to the target is not even attempted.
            while (_fault == LinkFault.Blackhole)
            {
                pair.SawBlackhole = true;
                await Task.Delay(20, _stop.Token).ConfigureAwait(false);
            }
            if (pair.Closed)
            {
                return;
            }
            await pair.Upstream.ConnectAsync(_target, _stop.Token).ConfigureAwait(false);
            NetworkStream upstream = pair.Upstream.GetStream();
            await Task.WhenAll(Pump(pair, pair.Client, upstream, corrupt: false), Pump(pair, upstream, pair.Client, corrupt: true)).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException or InvalidOperationException)
        {
        }
        finally
        {
            pair.Close();
            lock (_gate)
            {
                _pairs.Remove(pair);
            }
        }
    }

    /// <summary>One direction: read, then drop (black hole), hold (delay) or pass on.</summary>
    private async Task Pump(Pair pair, Stream from, Stream to, bool corrupt)
    {
        // Delayed chunks wait in order in a bounded queue; the writer sends each at its due time.
        var queue = Channel.CreateBounded<(long Due, byte[] Bytes, int Length)>(new BoundedChannelOptions(1024) { SingleReader = true, SingleWriter = true });
        Task writer = Task.Run(async () =>
        {
            await foreach ((long due, byte[] bytes, int length) in queue.Reader.ReadAllAsync(_stop.Token).ConfigureAwait(false))
            {
                long wait = due - Stopwatch.GetTimestamp();
                if (wait > 0)
                {
                    await Task.Delay(TimeSpan.FromSeconds((double)wait / Stopwatch.Frequency), _stop.Token).ConfigureAwait(false);
                }
                if (_fault != LinkFault.Blackhole)
                {
                    await to.WriteAsync(bytes.AsMemory(0, length), _stop.Token).ConfigureAwait(false);
                }
            }
        });
        try
        {
            var buffer = new byte[64 * 1024];
            while (true)
            {
                int read = await from.ReadAsync(buffer, _stop.Token).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }
                if (_fault == LinkFault.Blackhole)
                {
                    pair.SawBlackhole = true;
                    continue;
                }
                if (corrupt && read >= 64 && Interlocked.Exchange(ref _corruptPending, 0) == 1)
                {
                    buffer[read / 2] ^= 0x5A;
                    Interlocked.Increment(ref _corrupted);
                }
                long delay = Interlocked.Read(ref _delayTicks);
                await queue.Writer.WriteAsync((Stopwatch.GetTimestamp() + (_fault == LinkFault.Delay ? delay : 0), buffer[..read], read), _stop.Token).ConfigureAwait(false);
            }
        }
        finally
        {
            queue.Writer.TryComplete();
            try
            {
                await writer.ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException or InvalidOperationException)
            {
            }
            // A close passes on, unless it happened inside a black hole (then heal closes the rest).
            if (!pair.SawBlackhole)
            {
                pair.Close();
            }
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Dispose();
        lock (_gate)
        {
            foreach (Pair pair in _pairs)
            {
                pair.Close();
            }
        }
    }

    private sealed class Pair(Socket client)
    {
        private int _closed;

        /// <summary>The accepted connection.</summary>
        public NetworkStream Client { get; } = new(client, ownsSocket: true);

        /// <summary>The connection to the target.</summary>
        public TcpClient Upstream { get; } = new() { NoDelay = true };

        public volatile bool SawBlackhole;

        public bool Closed => Volatile.Read(ref _closed) != 0;

        public void Close()
        {
            if (Interlocked.Exchange(ref _closed, 1) == 0)
            {
                Client.Dispose();
                Upstream.Dispose();
            }
        }
    }
}
