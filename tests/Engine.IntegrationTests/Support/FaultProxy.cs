using System.Net;
using System.Net.Sockets;

namespace Engine.IntegrationTests.Support;

/// <summary>
/// A TCP proxy between two processes that can break what passes through it, on purpose. Faults it
/// can cause: flip one byte of the stream from the upstream side (<see cref="CorruptOnce"/>). It
/// never delays, drops or reorders otherwise. Listens on loopback; forwards to <c>target</c>.
/// </summary>
public sealed class FaultProxy : IDisposable
{
    private readonly TcpListener _listener;
    private readonly IPEndPoint _target;
    private readonly CancellationTokenSource _stop = new();
    private int _corruptPending;
    private long _corrupted;

    public FaultProxy(IPEndPoint target)
    {
        _target = target;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _ = Task.Run(AcceptLoop);
    }

    public int Port { get; }

    /// <summary>Times a byte was flipped.</summary>
    public long Corrupted => Interlocked.Read(ref _corrupted);

    /// <summary>Flips one byte of the next chunk that comes back from the target (target → client).</summary>
    public void CorruptOnce() => Interlocked.Exchange(ref _corruptPending, 1);

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            var upstream = new TcpClient { NoDelay = true };
            try
            {
                await upstream.ConnectAsync(_target, _stop.Token);
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException)
            {
                client.Dispose();
                upstream.Dispose();
                continue;
            }
            client.NoDelay = true;
            _ = Pump(client, upstream, corrupt: false);
            _ = Pump(upstream, client, corrupt: true);
        }
    }

    private async Task Pump(TcpClient from, TcpClient to, bool corrupt)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                int read = await from.GetStream().ReadAsync(buffer, _stop.Token);
                if (read == 0)
                {
                    break;
                }
                // Flip a byte past the first frame header of the chunk, inside a payload.
                if (corrupt && read > 64 && Interlocked.Exchange(ref _corruptPending, 0) == 1)
                {
                    buffer[read / 2] ^= 0x5A;
                    Interlocked.Increment(ref _corrupted);
                }
                await to.GetStream().WriteAsync(buffer.AsMemory(0, read), _stop.Token);
            }
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
        }
        from.Dispose();
        to.Dispose();
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
        _stop.Dispose();
    }
}
