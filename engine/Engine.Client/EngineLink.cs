using System.Net.Security;
using System.Net.Sockets;

namespace Engine.Client;

/// <summary>
/// One connection to the engine: the socket, and over TLS the stream on it. Plaintext reads and
/// writes go straight to the socket, as before TLS existed; TLS ones through the stream.
/// </summary>
internal sealed class EngineLink(Socket socket, SslStream? tls) : IDisposable
{
    public Socket Socket { get; } = socket;

    public SslStream? Tls { get; } = tls;

    public ValueTask<int> ReceiveAsync(Memory<byte> buffer, CancellationToken cancel) =>
        Tls is null ? Socket.ReceiveAsync(buffer, SocketFlags.None, cancel) : Tls.ReadAsync(buffer, cancel);

    /// <summary>Sends all of <paramref name="data"/>.</summary>
    public async ValueTask SendAsync(ReadOnlyMemory<byte> data, CancellationToken cancel = default)
    {
        if (Tls is not null)
        {
            await Tls.WriteAsync(data, cancel).ConfigureAwait(false);
            return;
        }
        int sent = 0;
        while (sent < data.Length)
        {
            sent += await Socket.SendAsync(data[sent..], SocketFlags.None, cancel).ConfigureAwait(false);
        }
    }

    /// <summary>Breaks the connection from another thread: pending reads and writes fail, and their owner cleans up.</summary>
    public void Abort() => Socket.Dispose();

    public void Dispose()
    {
        Socket.Dispose();
        try
        {
            Tls?.Dispose();
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException)
        {
        }
    }
}
