using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Engine.Security;

namespace Engine.Replication;

/// <summary>
/// The replication link's transport seam: a <see cref="SecureChannel"/> between two node principals
/// (authenticated, encrypted, every record checked), carrying <see cref="ReplicationFrame"/> frames.
/// The pair's logic (<see cref="Pair.TcpPairTransport"/>) reads and writes frames as
/// it always did; who the peer is and that no byte was injected, replayed or altered is settled here.
/// </summary>
/// <remarks>
/// A record may hold several frames (the mirror sends its whole pending buffer at once: one AEAD
/// operation per write batch) and a frame may span records (a batch over 1 MiB is split anywhere),
/// so the reader keeps a buffer of one frame plus one record: whatever is left of a frame is moved to
/// the front before the next record is received behind it.
/// </remarks>
public sealed class ReplicationLink : IDisposable
{
    private readonly SecureChannel _channel;
    private readonly byte[] _buffer;
    private readonly int _maxFrameBytes;
    private int _start;
    private int _end;

    /// <param name="channel">An authenticated channel; the link owns it.</param>
    /// <param name="maxFrameBytes">Longest frame accepted from the peer (a primary sends up to <see cref="ReplicationFrame.MaxBytes"/>, a backup only acks and heartbeats).</param>
    /// <param name="maxRecordBytes">Longest record accepted from the peer.</param>
    public ReplicationLink(SecureChannel channel, int maxFrameBytes, int maxRecordBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxFrameBytes, ReplicationFrame.HeaderBytes);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxFrameBytes, ReplicationFrame.MaxBytes);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxRecordBytes, SecureChannel.MaxRecordBytes);
        _channel = channel;
        _maxFrameBytes = maxFrameBytes;
        _buffer = new byte[maxFrameBytes + maxRecordBytes + SecureChannel.TagBytes];
    }

    /// <summary>Who is at the other end (authenticated).</summary>
    public Principal Peer => _channel.Peer;

    /// <summary>The other end's address.</summary>
    public EndPoint? RemoteEndPoint => _channel.RemoteEndPoint;

    /// <summary>
    /// Connects to the primary (or the peer being probed) at <paramref name="endpoint"/> as
    /// <paramref name="self"/>, requiring it to be a node of our cluster. A link that takes whole frames
    /// from the primary (<see cref="ReplicationFrame.MaxBytes"/>, records of up to 1 MiB).
    /// </summary>
    /// <exception cref="SocketException">Nobody listens there.</exception>
    /// <exception cref="OperationCanceledException">The connect took longer than <paramref name="connectTimeout"/>, or <paramref name="cancel"/>.</exception>
    /// <exception cref="LinkRefusedException">The handshake failed: either side refused (the reason is in it).</exception>
    public static async Task<ReplicationLink> ConnectAsync(IPEndPoint endpoint, ClusterCredentials self, TimeSpan connectTimeout, CancellationToken cancel)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            using (var connect = CancellationTokenSource.CreateLinkedTokenSource(cancel))
            {
                connect.CancelAfter(connectTimeout);
                await socket.ConnectAsync(endpoint, connect.Token).ConfigureAwait(false);
            }
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        SecureChannel channel = await SecureChannel.ConnectAsync(socket, self, LinkPurpose.Replication, PrincipalRole.Node, cancel: cancel).ConfigureAwait(false);
        return new ReplicationLink(channel, ReplicationFrame.MaxBytes, SecureChannel.MaxRecordBytes);
    }

    /// <summary>
    /// The next frame: its type and payload (valid until the next read), or null when the peer closed
    /// the link (also in the middle of a frame: a killed process's last bytes). One reader at a time.
    /// </summary>
    /// <exception cref="InvalidDataException">A record failed authentication, or a frame has a bad length, reserved bytes or CRC: the link is corrupt.</exception>
    /// <exception cref="IOException">The connection failed.</exception>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<(ReplicationType Type, ReadOnlyMemory<byte> Payload)?> ReadAsync(CancellationToken cancel)
    {
        while (true)
        {
            int available = _end - _start;
            if (available >= ReplicationFrame.HeaderBytes)
            {
                uint length = BinaryPrimitives.ReadUInt32LittleEndian(_buffer.AsSpan(_start));
                if (length < ReplicationFrame.HeaderBytes || length > _maxFrameBytes)
                {
                    throw new InvalidDataException($"a replication frame of {length:N0} bytes from {Peer.Name} (at most {_maxFrameBytes:N0} here)");
                }
                if (available >= length)
                {
                    int at = _start;
                    _start += (int)length;
                    if (ReplicationFrame.Invalid(_buffer.AsSpan(at, (int)length), _maxFrameBytes) is { } invalid)
                    {
                        throw new InvalidDataException($"{invalid}, from {Peer.Name}");
                    }
                    return ((ReplicationType)_buffer[at + 4], _buffer.AsMemory(at + ReplicationFrame.HeaderBytes, (int)length - ReplicationFrame.HeaderBytes));
                }
            }
            // Not a whole frame yet: what is left (less than one frame) to the front, the next record behind it.
            if (_start > 0)
            {
                Buffer.BlockCopy(_buffer, _start, _buffer, 0, available);
                _start = 0;
                _end = available;
            }
            int received = await _channel.ReceiveAsync(_buffer.AsMemory(_end), cancel).ConfigureAwait(false);
            if (received == 0)
            {
                return null;
            }
            _end += received;
        }
    }

    /// <summary>Sends whole frames (one or more), blocking. Thread-safe.</summary>
    /// <exception cref="IOException">The link is closed or failed.</exception>
    public void Send(ReadOnlySpan<byte> frames) => _channel.Send(frames);

    /// <summary>Sends whole frames (one or more). Thread-safe.</summary>
    /// <exception cref="IOException">The link is closed or failed.</exception>
    public ValueTask SendAsync(ReadOnlyMemory<byte> frames, CancellationToken cancel) => _channel.SendAsync(frames, cancel);

    /// <summary>Sends whole frames (one or more) on this thread if that costs no wait (<see cref="SecureChannel.TrySendNow"/>).</summary>
    public SendNow TrySendNow(ReadOnlySpan<byte> frames) => _channel.TrySendNow(frames);

    /// <summary>Sends what is left of frames <see cref="TrySendNow"/> sent in part.</summary>
    /// <exception cref="IOException">The link is closed or failed.</exception>
    public ValueTask FlushAsync(CancellationToken cancel) => _channel.FlushAsync(cancel);

    /// <summary>Closes the link; a pending read or send fails.</summary>
    public void Dispose() => _channel.Dispose();
}
