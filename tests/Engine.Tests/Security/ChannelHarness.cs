using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Engine.Security;

namespace Engine.Tests.Security;

/// <summary>
/// Connected loopback sockets for channel tests: a direct pair, or a client and a server with the
/// test in the middle (a man in the middle that relays, alters, drops or replays what it likes).
/// </summary>
internal static class ChannelHarness
{
    public static readonly PrincipalRole[] Nodes = [PrincipalRole.Node];

    /// <summary>Two ends of one TCP connection on loopback.</summary>
    public static (Socket Client, Socket Server) Pair()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        client.Connect(listener.LocalEndPoint!);
        Socket server = listener.Accept();
        server.NoDelay = true;
        return (client, server);
    }

    /// <summary>A handshake between <paramref name="client"/> and <paramref name="server"/> credentials on a direct pair; both ends' results.</summary>
    public static async Task<(Task<SecureChannel> Client, AcceptOutcome Server)> HandshakeAsync(ClusterCredentials client, ClusterCredentials server,
        PrincipalRole expectedServerRole = PrincipalRole.Node, IReadOnlyCollection<PrincipalRole>? clientRoles = null, LinkPurpose purpose = LinkPurpose.Replication,
        LinkPurpose serverPurpose = LinkPurpose.Replication)
    {
        (Socket c, Socket s) = Pair();
        Task<SecureChannel> connecting = SecureChannel.ConnectAsync(c, client, purpose, expectedServerRole);
        AcceptOutcome accepted = await SecureChannel.AcceptAsync(s, server, serverPurpose, clientRoles ?? Nodes);
        try
        {
            await connecting.WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch (LinkRefusedException)
        {
            // The caller looks at the task.
        }
        return (connecting, accepted);
    }

    /// <summary>Two connected channels (client, server) between two principals that may talk.</summary>
    public static async Task<(SecureChannel Client, SecureChannel Server)> ConnectedAsync(ClusterCredentials client, ClusterCredentials server)
    {
        (Task<SecureChannel> c, AcceptOutcome s) = await HandshakeAsync(client, server);
        Assert.That(s.Refusal, Is.Null, "the server accepted");
        return (await c, s.Channel!);
    }

    /// <summary>
    /// A client and a server connected through the test: the four handshake messages are relayed
    /// (each passed through <paramref name="alter"/> with its index 0-3 first), then the test holds
    /// both middle sockets and forwards records as it likes.
    /// </summary>
    public static async Task<Middle> ThroughMiddleAsync(ClusterCredentials client, ClusterCredentials server, Func<int, byte[], byte[]>? alter = null)
    {
        (Socket c, Socket fromClient) = Pair();
        (Socket toServer, Socket s) = Pair();
        Task<SecureChannel> connecting = SecureChannel.ConnectAsync(c, client, LinkPurpose.Replication, PrincipalRole.Node);
        Task<AcceptOutcome> accepting = SecureChannel.AcceptAsync(s, server, LinkPurpose.Replication, Nodes);
        for (int i = 0; i < 4; i++)
        {
            (Socket from, Socket to) = i % 2 == 0 ? (fromClient, toServer) : (toServer, fromClient);
            byte[]? message = await ReadMessageAsync(from);
            if (message is null)
            {
                break;
            }
            message = alter?.Invoke(i, message) ?? message;
            try
            {
                await to.SendAsync(message, SocketFlags.None);
            }
            catch (SocketException)
            {
                break;
            }
        }
        // A side that refused has closed: let the other one see it too.
        AcceptOutcome accepted = await accepting.WaitAsync(TimeSpan.FromSeconds(30));
        if (!accepted.Accepted)
        {
            fromClient.Dispose();
        }
        Exception? clientFailure = null;
        SecureChannel? clientChannel = null;
        try
        {
            clientChannel = await connecting.WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch (LinkRefusedException e)
        {
            clientFailure = e;
            toServer.Dispose();
        }
        return new Middle(clientChannel, accepted, clientFailure, fromClient, toServer);
    }

    /// <summary>One <c>u16 length | body</c> handshake message, or null at the end of the stream.</summary>
    public static async Task<byte[]?> ReadMessageAsync(Socket socket)
    {
        var header = new byte[2];
        if (!await ReadExactlyAsync(socket, header))
        {
            return null;
        }
        var message = new byte[2 + BinaryPrimitives.ReadUInt16LittleEndian(header)];
        header.CopyTo(message, 0);
        return await ReadExactlyAsync(socket, message.AsMemory(2)) ? message : null;
    }

    /// <summary>One whole record (length, ciphertext, tag) as it is on the wire.</summary>
    public static async Task<byte[]> ReadRecordAsync(Socket socket)
    {
        var header = new byte[SecureChannel.RecordHeaderBytes];
        Assert.That(await ReadExactlyAsync(socket, header), Is.True, "a record");
        var record = new byte[SecureChannel.RecordHeaderBytes + BinaryPrimitives.ReadUInt32LittleEndian(header) + SecureChannel.TagBytes];
        header.CopyTo(record, 0);
        Assert.That(await ReadExactlyAsync(socket, record.AsMemory(SecureChannel.RecordHeaderBytes)), Is.True, "a whole record");
        return record;
    }

    public static async Task<bool> ReadExactlyAsync(Socket socket, Memory<byte> target)
    {
        int got = 0;
        while (got < target.Length)
        {
            int read;
            try
            {
                read = await socket.ReceiveAsync(target[got..], SocketFlags.None);
            }
            catch (SocketException)
            {
                return false;
            }
            if (read == 0)
            {
                return false;
            }
            got += read;
        }
        return true;
    }

    /// <summary>A client and a server with the test between them.</summary>
    internal sealed record Middle(SecureChannel? Client, AcceptOutcome Server, Exception? ClientFailure, Socket FromClient, Socket ToServer) : IDisposable
    {
        public void Dispose()
        {
            Client?.Dispose();
            Server.Channel?.Dispose();
            FromClient.Dispose();
            ToServer.Dispose();
        }
    }
}
