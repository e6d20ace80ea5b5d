using System.Buffers.Binary;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using Engine.Protocol;

namespace Engine.Core.Server;

/// <summary>
/// A connection that has not logged on: the socket, a 256-byte buffer for the logon frame (and
/// whatever the client sent right behind it), the TLS stream if the port speaks TLS, and the
/// bookkeeping of <see cref="FrontDoor"/>'s bounded, age-ordered set. Nothing bigger exists for
/// a connection before its logon succeeds.
/// </summary>
/// <remarks>
/// Exactly one party ends it: whoever wins <see cref="TryFinish"/> (the answerer once the logon
/// is decided, or the door on a timeout, an eviction, a failure or shutdown) removes it from the
/// set and closes or promotes it; everyone else leaves it alone. A socket closed under a pending
/// read makes that read fail, and the reader, seeing the logon finished, says nothing.
/// </remarks>
internal sealed class PendingLogon
{
    /// <summary>A logon frame is 52 bytes; the rest holds what a client pipelines behind it (it goes to the session).</summary>
    public const int BufferBytes = Frame.MaxBytes;

    public const int LogonFrameBytes = Frame.HeaderBytes + ReplyCodec.LogonBodyBytes;

    private int _finished;

    public PendingLogon(Socket socket, IPAddress address, long acceptedMs)
    {
        Socket = socket;
        Address = address;
        AcceptedMs = acceptedMs;
        Remote = socket.RemoteEndPoint;
    }

    public Socket Socket { get; }

    /// <summary>The source address, IPv4-mapped addresses as IPv4: the unit of the per-address limits.</summary>
    public IPAddress Address { get; }

    public EndPoint? Remote { get; }

    public long AcceptedMs { get; }

    public SslStream? Tls { get; set; }

    /// <summary>The stream under <see cref="Tls"/>, which keeps the handshake off the socket threads until logon.</summary>
    public PreLogonStream? TlsTransport { get; set; }

    public byte[] Buffer { get; } = new byte[BufferBytes];

    public int Filled { get; set; }

    /// <summary>Node in <see cref="FrontDoor"/>'s age-ordered set; null once out of it.</summary>
    public LinkedListNode<PendingLogon>? Node { get; set; }

    /// <summary>Set by an answerer that waits before answering (a backup that may take over); the door offers it again later.</summary>
    public bool Held { get; set; }

    /// <summary>
    /// The token's check, when a backup holding this logon made it ahead of its takeover (see
    /// <see cref="LogonResponder"/>): true good, false bad, null not made (or not finished). Never
    /// wipes the token: whoever decides the logon does.
    /// </summary>
    public bool? TokenVerdict => Volatile.Read(ref _verdict) switch { Good => true, Bad => false, _ => null };

    /// <summary>True for the one caller that gets to check the token ahead.</summary>
    public bool TryStartCheckingAhead() => Interlocked.Exchange(ref _checkingAhead, 1) == 0;

    /// <summary>Records the check made ahead.</summary>
    public void SetTokenVerdict(bool good) => Volatile.Write(ref _verdict, good ? Good : Bad);

    private const int Good = 1;
    private const int Bad = 2;
    private int _verdict;
    private int _checkingAhead;

    /// <summary>When the logon frame was complete (door clock), 0 before.</summary>
    public long LogonReadMs { get; set; }

    public bool IsFinished => Volatile.Read(ref _finished) != 0;

    /// <summary>True for the one caller that gets to end this connection.</summary>
    public bool TryFinish() => Interlocked.Exchange(ref _finished, 1) == 0;

    public uint ClientId => BinaryPrimitives.ReadUInt32LittleEndian(Buffer.AsSpan(Frame.HeaderBytes));

    /// <summary>The heartbeat interval the client asked for, ms (0: none: a client from before heartbeats).</summary>
    public int HeartbeatMs => BinaryPrimitives.ReadUInt16LittleEndian(Buffer.AsSpan(Frame.HeaderBytes + ReplyCodec.LogonHeartbeatOffset));

    /// <summary>The token's UTF-8 bytes, without the frame's zero padding.</summary>
    public ReadOnlySpan<byte> Token
    {
        get
        {
            ReadOnlySpan<byte> padded = Buffer.AsSpan(Frame.HeaderBytes + 8, ReplyCodec.MaxTokenBytes);
            int end = padded.IndexOf((byte)0);
            return end < 0 ? padded : padded[..end];
        }
    }

    /// <summary>What the client sent after its logon frame (requests, pipelined): the session handles it first.</summary>
    public ReadOnlySpan<byte> AfterLogon => Buffer.AsSpan(LogonFrameBytes, Math.Max(0, Filled - LogonFrameBytes));

    /// <summary>Forgets the token: once it is checked, nothing keeps it.</summary>
    public void WipeToken() => CryptographicOperations.ZeroMemory(Buffer.AsSpan(Frame.HeaderBytes + 8, ReplyCodec.MaxTokenBytes));

    /// <summary>Closes the connection at once (after <see cref="TryFinish"/>).</summary>
    public void Close()
    {
        WipeToken();
        try
        {
            Tls?.Dispose();
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException)
        {
        }
        Socket.Dispose();
    }

    /// <summary>
    /// Sends a refusal (a <see cref="LogonAck"/> frame) and closes: plaintext straight into the
    /// socket (a fresh socket's send buffer always takes 44 bytes; if not, the client gets only
    /// the close), over TLS through the stream, bounded by a second. After <see cref="TryFinish"/>.
    /// </summary>
    public async Task AnswerAndCloseAsync(LogonAck ack)
    {
        WipeToken();
        var frame = new byte[Frame.HeaderBytes + ReplyCodec.LogonAckBodyBytes];
        ReplyCodec.EncodeLogonAck(in ack, frame);
        try
        {
            if (Tls is null)
            {
                Socket.Send(frame, SocketFlags.None, out _);
            }
            else
            {
                await Tls.WriteAsync(frame).AsTask().WaitAsync(TimeSpan.FromSeconds(1)).ConfigureAwait(false);
            }
            // FIN after the answer, so the client reads it before it sees the end.
            Socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException or TimeoutException or InvalidOperationException)
        {
        }
        Close();
    }
}
