using System.Net.Sockets;

namespace Engine.Core.Server;

/// <summary>
/// The transport under a TLS connection. Until the logon, every read completion is moved to the
/// thread pool before the TLS stream sees it: the engine runs socket completions inline on the
/// socket engine's threads (<c>DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS</c>), and a handshake's
/// key exchange and signature on such a thread would stall every session sharing it. After the
/// logon (<see cref="YieldReads"/> false) reads complete inline again: decrypting a record is cheap.
/// </summary>
internal sealed class PreLogonStream(Socket socket) : NetworkStream(socket, ownsSocket: false)
{
    public volatile bool YieldReads = true;

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        int read = await base.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        if (YieldReads)
        {
            await Task.CompletedTask.ConfigureAwait(ConfigureAwaitOptions.ForceYielding);
        }
        return read;
    }
}
