using System.Net;
using System.Net.Sockets;

namespace Engine.Core.Server;

/// <summary>
/// The one way this code base listens for TCP connections: the gateway (front-ends), the mirror
/// hub (backups), the witness and the drill's fault proxy all bind with <see cref="Bind"/> and
/// accept with <see cref="AcceptAllAsync"/>.
/// </summary>
public static class Listener
{
    /// <summary>Binds <paramref name="endpoint"/> (address reuse on, so a restarted node gets its port back at once) and listens.</summary>
    public static Socket Bind(IPEndPoint endpoint, int backlog)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            socket.Bind(endpoint);
            socket.Listen(backlog);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Accepts connections one after the other and hands each (with Nagle off) to
    /// <paramref name="accepted"/>, awaited before the next accept, until <paramref name="stop"/> or
    /// until the listener is closed.
    /// </summary>
    /// <remarks>
    /// An accept that fails for the one connection (reset before it was taken) or for want of a
    /// resource (out of file descriptors under a flood) does not end the loop: it waits a moment
    /// and goes on, so a flood that exhausts descriptors for a while does not close the port for
    /// good. Cancelling <paramref name="stop"/> leaves the listener open and listening.
    /// </remarks>
    public static async Task AcceptAllAsync(Socket listener, Func<Socket, Task> accepted, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptAsync(stop).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.OperationAborted or SocketError.Interrupted or SocketError.NotSocket
                or SocketError.InvalidArgument or SocketError.Shutdown)
            {
                return; // the listener was closed
            }
            catch (SocketException)
            {
                try
                {
                    await Task.Delay(10, stop).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                continue;
            }
            try
            {
                socket.NoDelay = true;
            }
            catch (SocketException)
            {
                socket.Dispose(); // reset already: nothing to hand over
                continue;
            }
            await accepted(socket).ConfigureAwait(false);
        }
    }
}
