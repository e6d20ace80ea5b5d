using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Engine.Protocol;

namespace Engine.Bench.Latency;

/// <summary>
/// The floor of the latency benchmark: a server that speaks the engine's framing and does nothing
/// else. It takes any logon, and answers each request with a receipt the moment it reads it, on the
/// thread that read it (one blocking thread per connection, asleep in the kernel between requests).
/// What the engine adds above this is the pipeline's share; what this costs is the two process
/// wake-ups and the loopback hop the machine charges anyone.
/// </summary>
internal static class FloorServer
{
    public const string Usage = """
        floor-server --port N
          The latency benchmark's floor (started by `latency` as its own process): logs anyone on and
          answers every request at once from its socket with a receipt. Runs until killed.
        """;

    public static int Run(string[] args)
    {
        if (args.Length != 2 || args[0] != "--port" || !int.TryParse(args[1], out int port) || port is < 1 or > 65535)
        {
            Console.Error.WriteLine(Usage);
            return 2;
        }
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, port));
        listener.Listen(64);
        Console.WriteLine($"floor listening on 127.0.0.1:{port}");
        while (true)
        {
            Socket socket = listener.Accept();
            socket.NoDelay = true;
            new Thread(() => Serve(socket)) { IsBackground = true, Name = "floor-connection" }.Start();
        }
    }

    /// <summary>One connection: the logon, then a receipt per request, every read's answers in one send.</summary>
    private static void Serve(Socket socket)
    {
        var buffer = new byte[64 * 1024];
        var replies = new byte[256 * 1024];
        int filled = 0;
        uint clientId = 0;
        ulong lsn = 0;
        try
        {
            while (true)
            {
                int read = socket.Receive(buffer, filled, buffer.Length - filled, SocketFlags.None);
                if (read == 0)
                {
                    return;
                }
                filled += read;
                int offset = 0, replied = 0;
                while (filled - offset >= 4)
                {
                    int length = Frame.PeekLength(buffer.AsSpan(offset));
                    if (length < Frame.HeaderBytes || length > Frame.MaxBytes)
                    {
                        return; // garbage: hang up
                    }
                    if (filled - offset < length)
                    {
                        break;
                    }
                    ReadOnlySpan<byte> frame = buffer.AsSpan(offset, length);
                    offset += length;
                    if (Frame.Check(frame, out MessageType type, out _) != RejectReason.None)
                    {
                        return;
                    }
                    if (type == MessageType.Logon)
                    {
                        ReplyCodec.DecodeLogon(frame, out clientId, out _);
                        var ack = new LogonAck { ClientId = clientId, Status = LogonStatus.Ok };
                        replied += ReplyCodec.EncodeLogonAck(in ack, replies.AsSpan(replied));
                        continue;
                    }
                    // Every request carries its clientSeq at body offset 8.
                    ulong clientSeq = BinaryPrimitives.ReadUInt64LittleEndian(frame[(Frame.HeaderBytes + 8)..]);
                    var receipt = new Receipt { ClientId = clientId, ClientSeq = clientSeq, Lsn = ++lsn, BlockNo = lsn };
                    replied += ReplyCodec.EncodeAccepted(in receipt, replies.AsSpan(replied));
                    if (replied > replies.Length - 512)
                    {
                        socket.Send(replies, 0, replied, SocketFlags.None);
                        replied = 0;
                    }
                }
                if (replied > 0)
                {
                    socket.Send(replies, 0, replied, SocketFlags.None);
                }
                buffer.AsSpan(offset, filled - offset).CopyTo(buffer);
                filled -= offset;
            }
        }
        catch (SocketException)
        {
        }
        finally
        {
            socket.Dispose();
            // The thread stays (asleep, for good): the harness counts the context switches of this
            // process's threads after its load generator has hung up, and an ended thread's are gone.
            Thread.Sleep(Timeout.Infinite);
        }
    }
}
