using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Engine.Core.Ledger;
using Engine.Core.Ring;
using Engine.Protocol;

namespace Engine.Core.Server;

/// <summary>
/// One front-end connection: a read loop that logs the client on and publishes its requests into
/// the inbound ring, and a write loop that sends what the dispatch stage queued for it.
/// </summary>
/// <remarks>
/// <para>Bounded both ways. In: a frame longer than <see cref="Frame.MaxBytes"/> or shorter than a
/// header is garbage and closes this session only; requests beyond the client's in-flight limit,
/// or when the ring is full, are answered "busy" at once. Out: replies wait in a buffer of
/// <see cref="EngineSettings.MaxOutboundBytesPerSession"/>; a client that reads slower than that
/// is disconnected, and nobody else slows down.</para>
/// </remarks>
internal sealed class Session : IDisposable
{
    private const int ReadBufferBytes = 64 * 1024;
    private const int MaxFramesPerClaim = 256;

    private readonly Socket _socket;
    private readonly Gateway _gateway;
    private readonly EngineSettings _settings;
    private readonly object _sendLock = new();
    private readonly SemaphoreSlim _sendWanted = new(0, int.MaxValue);
    private byte[] _pending;
    private byte[] _sending;
    private int _pendingLength;
    private int _sendSignalled;
    private volatile bool _sendInProgress;
    private int _closed;
    private ClientRegistry.Entry? _client;

    public Session(long id, Socket socket, Gateway gateway, EngineSettings settings)
    {
        Id = id;
        _socket = socket;
        _gateway = gateway;
        _settings = settings;
        Remote = socket.RemoteEndPoint;
        // Non-blocking for the direct sends of Enqueue; the async receive and send work either way.
        socket.Blocking = false;
        _pending = new byte[settings.MaxOutboundBytesPerSession];
        _sending = new byte[settings.MaxOutboundBytesPerSession];
    }

    public long Id { get; }

    public EndPoint? Remote { get; }

    public uint ClientId { get; private set; }

    public string? CloseReason { get; private set; }

    public bool IsClosed => Volatile.Read(ref _closed) != 0;

    public Task Run(CancellationToken stopping) => Task.WhenAll(ReadLoop(stopping), WriteLoop());

    /// <summary>
    /// Sends <paramref name="frame"/> (one frame or several): straight to the socket when nothing
    /// is queued and the kernel takes it all (a non-blocking send: no thread hand-over to a writer,
    /// never a wait), otherwise queued for the write loop. False (and the session closes) when the
    /// client has let its buffer fill.
    /// </summary>
    public bool Enqueue(ReadOnlySpan<byte> frame)
    {
        lock (_sendLock)
        {
            if (IsClosed)
            {
                return false;
            }
            if (_pendingLength == 0 && !_sendInProgress)
            {
                int sent = _socket.Send(frame, SocketFlags.None, out SocketError error);
                if (error is SocketError.Success or SocketError.WouldBlock)
                {
                    frame = frame[Math.Max(sent, 0)..];
                    if (frame.IsEmpty)
                    {
                        return true;
                    }
                }
                else
                {
                    Close($"send failed: {error}");
                    return false;
                }
            }
            if (_pendingLength + frame.Length > _pending.Length)
            {
                Close($"outbound buffer full ({_pending.Length >> 10} KiB): the client does not read");
                return false;
            }
            frame.CopyTo(_pending.AsSpan(_pendingLength));
            _pendingLength += frame.Length;
        }
        if (Interlocked.Exchange(ref _sendSignalled, 1) == 0)
        {
            _sendWanted.Release();
        }
        return true;
    }

    /// <summary>True when nothing is queued or being sent.</summary>
    public bool IsFlushed
    {
        get
        {
            lock (_sendLock)
            {
                return _pendingLength == 0 && !_sendInProgress;
            }
        }
    }

    public void Close(string reason)
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
        {
            return;
        }
        CloseReason = reason;
        _client?.Detach(this);
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
        _socket.Close();
        _sendWanted.Release();
        _gateway.OnClosed(this);
    }

    private async Task WriteLoop()
    {
        try
        {
            while (true)
            {
                await _sendWanted.WaitAsync().ConfigureAwait(false);
                Volatile.Write(ref _sendSignalled, 0);
                if (IsClosed)
                {
                    return;
                }
                int length;
                lock (_sendLock)
                {
                    (_pending, _sending) = (_sending, _pending);
                    length = _pendingLength;
                    _pendingLength = 0;
                    _sendInProgress = true;
                }
                int sent = 0;
                while (sent < length)
                {
                    sent += await _socket.SendAsync(_sending.AsMemory(sent, length - sent), SocketFlags.None).ConfigureAwait(false);
                }
                _sendInProgress = false;
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            Close($"send failed: {e.Message}");
        }
    }

    private async Task ReadLoop(CancellationToken stopping)
    {
        var buffer = new byte[ReadBufferBytes];
        int filled = 0;
        using var logonTimeout = new CancellationTokenSource(_settings.LogonTimeoutMs);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(stopping, logonTimeout.Token);
        try
        {
            while (!IsClosed)
            {
                CancellationToken token = _client is null ? linked.Token : stopping;
                int read = await _socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, token).ConfigureAwait(false);
                if (read == 0)
                {
                    Close("the client closed the connection");
                    return;
                }
                filled += read;
                int consumed = HandleFrames(buffer.AsSpan(0, filled));
                if (consumed < 0)
                {
                    return; // closed for a protocol violation
                }
                buffer.AsSpan(consumed, filled - consumed).CopyTo(buffer);
                filled -= consumed;
            }
        }
        catch (OperationCanceledException)
        {
            // On shutdown only the reading stops: replies to what was already taken still go out.
            if (!stopping.IsCancellationRequested)
            {
                Close($"no logon within {_settings.LogonTimeoutMs} ms");
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            Close($"receive failed: {e.Message}");
        }
    }

    /// <summary>Handles every complete frame at the start of <paramref name="data"/>; returns the bytes consumed, or -1 if the session was closed.</summary>
    private int HandleFrames(ReadOnlySpan<byte> data)
    {
        int offset = 0;
        Span<int> starts = stackalloc int[MaxFramesPerClaim];
        Span<int> lengths = stackalloc int[MaxFramesPerClaim];
        int frames = 0;
        while (data.Length - offset >= 4)
        {
            int length = Frame.PeekLength(data[offset..]);
            if (length < Frame.HeaderBytes || length > Frame.MaxBytes)
            {
                Close($"protocol violation: a frame of {length} bytes (must be {Frame.HeaderBytes} to {Frame.MaxBytes})");
                return -1;
            }
            if (data.Length - offset < length)
            {
                break;
            }
            if (_client is null)
            {
                if (!Logon(data.Slice(offset, length)))
                {
                    return -1;
                }
            }
            else
            {
                starts[frames] = offset;
                lengths[frames] = length;
                if (++frames == MaxFramesPerClaim)
                {
                    Publish(data, starts, lengths, frames);
                    frames = 0;
                }
            }
            offset += length;
        }
        if (frames > 0)
        {
            Publish(data, starts, lengths, frames);
        }
        return offset;
    }

    private bool Logon(ReadOnlySpan<byte> frame)
    {
        Span<byte> reply = stackalloc byte[ReplyCodec.MaxFrameBytes];
        if (ReplyCodec.DecodeLogon(frame, out uint clientId, out string token) != RejectReason.None)
        {
            Close("protocol violation: the first frame must be a well-formed logon");
            return false;
        }
        ClientRegistry.Entry? entry = _gateway.Clients[clientId];
        bool known = entry is not null && _gateway.Reference.Authenticate(clientId, token);
        if (entry is null || !known || _gateway.Redirecting is not null)
        {
            var refused = new LogonAck { ClientId = clientId, Status = known ? LogonStatus.NotPrimary : LogonStatus.BadCredentials };
            Enqueue(reply[..ReplyCodec.EncodeLogonAck(in refused, reply)]);
            _gateway.Log(known
                ? $"session {Id} from {Remote}: client {clientId} sent to the other node ({_gateway.Redirecting})"
                : $"session {Id} from {Remote}: logon refused for client {clientId} (unknown client or wrong token)");
            // Let the write loop send the refusal, then close.
            _ = Task.Delay(200).ContinueWith(_ => Close("logon refused"), TaskScheduler.Default);
            return false;
        }
        ClientId = clientId;
        _client = entry;
        Session? replaced = entry.Attach(this);
        replaced?.Close($"client {clientId} logged on again from {Remote}");
        var ack = new LogonAck
        {
            ClientId = clientId,
            Status = LogonStatus.Ok,
            LastClientSeq = _gateway.ClientSeqs.Highest(clientId),
            Epoch = _gateway.Epoch,
            LastLsn = _gateway.LastLsn,
        };
        Enqueue(reply[..ReplyCodec.EncodeLogonAck(in ack, reply)]);
        _gateway.Log($"session {Id} from {Remote}: client {clientId} logged on (last seq {ack.LastClientSeq})");
        return true;
    }

    /// <summary>Claims slots for the frames in one go and publishes them; answers "busy" for what does not fit.</summary>
    private void Publish(ReadOnlySpan<byte> data, Span<int> starts, Span<int> lengths, int frames)
    {
        ClientRegistry.Entry client = _client!;
        int admitted = Math.Min(frames, _settings.MaxInFlightPerClient - Volatile.Read(ref client.InFlight));
        admitted = Math.Max(admitted, 0);
        // A primary without its backup takes nothing it could not acknowledge.
        bool noBackup = _gateway.Mirror is { MayAcknowledge: false };
        if (noBackup)
        {
            admitted = 0;
        }
        RingBuffer<TxSlot> ring = _gateway.Ring;
        ClaimStatus status = ClaimStatus.Full;
        long high = 0;
        if (admitted > 0)
        {
            status = ring.TryNext(admitted, out high);
            // The ring may have room for fewer: take one at a time until it is full.
            while (status == ClaimStatus.Full && admitted > 1)
            {
                admitted /= 2;
                status = ring.TryNext(admitted, out high);
            }
        }
        int published = 0;
        if (status == ClaimStatus.Claimed)
        {
            Interlocked.Add(ref client.InFlight, admitted);
            long low = high - admitted + 1;
            for (int i = 0; i < admitted; i++)
            {
                ref TxSlot slot = ref ring[low + i];
                slot.SetFrame(data.Slice(starts[i], lengths[i]));
                slot.SessionClientId = ClientId;
                slot.Probe = null;
            }
            ring.Publish(low, high);
            published = admitted;
        }
        RejectReason busy = noBackup ? RejectReason.NoBackup : status switch
        {
            ClaimStatus.Closed or ClaimStatus.Halted => RejectReason.ShuttingDown,
            _ => RejectReason.Busy,
        };
        Span<byte> reply = stackalloc byte[ReplyCodec.MaxFrameBytes];
        for (int i = published; i < frames; i++)
        {
            ReadOnlySpan<byte> frame = data.Slice(starts[i], lengths[i]);
            ulong clientSeq = frame.Length >= Frame.HeaderBytes + 16 ? BinaryPrimitives.ReadUInt64LittleEndian(frame[(Frame.HeaderBytes + 8)..]) : 0;
            string text = busy switch
            {
                RejectReason.Busy => "busy: too many requests in flight, retry",
                RejectReason.NoBackup => "no backup: this primary acknowledges nothing alone",
                _ => "the engine is shutting down",
            };
            if (!Enqueue(reply[..ReplyCodec.EncodeRejected(ClientId, clientSeq, busy, 0, text, reply)]))
            {
                return;
            }
        }
        if (published < frames)
        {
            _gateway.CountBusy(frames - published);
        }
    }

    // The semaphore is not disposed: the write loop may still be waiting on it, and a SemaphoreSlim
    // whose wait handle was never asked for holds no unmanaged resource.
    public void Dispose() => Close("disposed");
}
