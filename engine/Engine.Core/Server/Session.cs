using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using Engine.Core.Ledger;
using Engine.Core.Ring;
using Engine.Protocol;

namespace Engine.Core.Server;

/// <summary>
/// One logged-on front-end connection: a read loop that publishes its requests into the inbound
/// ring, and a write loop that sends what the dispatch stage queued for it. Made by the
/// <see cref="Gateway"/> only once the logon succeeded (<see cref="FrontDoor"/> handles everything
/// before): its buffers are the first thing of size a connection gets.
/// </summary>
/// <remarks>
/// <para>Bounded both ways. In: a frame longer than <see cref="Frame.MaxBytes"/> or shorter than a
/// header is garbage and closes this session only; requests beyond the client's in-flight limit,
/// or when the ring is full, are answered "busy" at once. Out: replies wait in a buffer of
/// <see cref="EngineSettings.MaxOutboundBytesPerSession"/>; a client that reads slower than that
/// is disconnected, and nobody else slows down.</para>
/// <para>Buffers are rented from the gateway's pool and given back when both loops have ended
/// (<see cref="Run"/>): a client that reconnects often reuses them instead of making the GC
/// zero 8 MiB each time.</para>
/// <para>Over TLS, replies cannot go straight to the socket (the stream encrypts in its own
/// writes, one at a time): every reply is queued and the write loop sends each batch through the
/// stream. Plaintext sessions keep the direct non-blocking send.</para>
/// </remarks>
internal sealed class Session : IDisposable
{
    private const int ReadBufferBytes = 64 * 1024;
    private const int MaxFramesPerClaim = 256;

    private readonly Socket _socket;
    private readonly SslStream? _tls;
    private readonly Gateway _gateway;
    private readonly EngineSettings _settings;
    private readonly ArrayPool<byte> _pool;
    private readonly ClientRegistry.Entry _client;
    private readonly object _sendLock = new();
    private readonly SemaphoreSlim _sendWanted = new(0, int.MaxValue);
    private readonly int _outboundBytes;
    private byte[] _pending; // grows (GrowPending) up to _outboundBytes; swapped with _sending by the writer
    private byte[] _sending;
    private byte[] _read;
    private readonly int _readFilled;
    private int _pendingLength;
    private int _sendSignalled;
    private long _lastSentTicks = System.Diagnostics.Stopwatch.GetTimestamp();
    private volatile bool _sendInProgress;
    private int _closed;

    /// <summary>This session's proof requests waiting at the <see cref="ProofDesk"/> (it bounds them).</summary>
    public int ProofsWaiting;

    /// <summary>A session for <paramref name="logon"/>, whose client is <paramref name="client"/>: takes over its socket, its TLS stream and the bytes read after the logon frame.</summary>
    public Session(long id, PendingLogon logon, ClientRegistry.Entry client, Gateway gateway, EngineSettings settings, ArrayPool<byte> pool)
    {
        Id = id;
        _socket = logon.Socket;
        _tls = logon.Tls;
        _gateway = gateway;
        _settings = settings;
        _pool = pool;
        _client = client;
        ClientId = logon.ClientId;
        HeartbeatMs = settings.Gateway.HeartbeatMs > 0 && logon.HeartbeatMs > 0 ? Math.Max(logon.HeartbeatMs, settings.Gateway.HeartbeatMs) : 0;
        _heartbeatTicks = HeartbeatMs * System.Diagnostics.Stopwatch.Frequency / 1000;
        Remote = logon.Remote;
        Address = logon.Address;
        if (logon.TlsTransport is { } transport)
        {
            transport.YieldReads = false; // logged on: decrypt where the bytes arrive
        }
        _outboundBytes = settings.MaxOutboundBytesPerSession;
        // Small at first, grown by doubling up to the limit only for a client that falls behind: a
        // session costs 2 × 4 MiB of fresh memory otherwise, all of it while a takeover opens every
        // client's session at once (the first of them took ~3 ms to open there).
        _pending = pool.Rent(Math.Min(InitialOutboundBytes, _outboundBytes));
        _sending = pool.Rent(Math.Min(InitialOutboundBytes, _outboundBytes));
        _read = pool.Rent(ReadBufferBytes);
        ReadOnlySpan<byte> early = logon.AfterLogon;
        early.CopyTo(_read);
        _readFilled = early.Length;
    }

    public long Id { get; }

    public EndPoint? Remote { get; }

    public IPAddress Address { get; }

    public uint ClientId { get; }

    /// <summary>The heartbeat interval this session gets (its client's ask, at least the gateway's minimum); 0: none.</summary>
    public int HeartbeatMs { get; }

    private readonly long _heartbeatTicks;

    public string? CloseReason { get; private set; }

    public bool IsClosed => Volatile.Read(ref _closed) != 0;

    /// <summary>Runs both loops until the session closes, then gives the buffers back.</summary>
    public async Task Run(CancellationToken stopping)
    {
        try
        {
            await Task.WhenAll(ReadLoop(stopping), WriteLoop()).ConfigureAwait(false);
        }
        finally
        {
            ReturnBuffers();
        }
    }

    /// <summary>What a session's outbound buffers start at (each grows, by doubling, up to <see cref="EngineSettings.MaxOutboundBytesPerSession"/>).</summary>
    public const int InitialOutboundBytes = 64 * 1024;

    /// <summary>Makes room for <paramref name="needed"/> pending bytes (≤ the limit), under the send lock.</summary>
    private void GrowPending(int needed)
    {
        int size = _pending.Length;
        while (size < needed)
        {
            size *= 2;
        }
        byte[] grown = _pool.Rent(Math.Min(size, _outboundBytes));
        _pending.AsSpan(0, _pendingLength).CopyTo(grown);
        _pool.Return(_pending);
        _pending = grown;
    }

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
            if (_pendingLength == 0 && !_sendInProgress && _tls is null)
            {
                int sent = _socket.Send(frame, SocketFlags.None, out SocketError error);
                if (error is SocketError.Success or SocketError.WouldBlock)
                {
                    frame = frame[Math.Max(sent, 0)..];
                    if (frame.IsEmpty)
                    {
                        Volatile.Write(ref _lastSentTicks, System.Diagnostics.Stopwatch.GetTimestamp());
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
                if (_pendingLength + frame.Length > _outboundBytes)
                {
                    Close($"outbound buffer full ({_outboundBytes >> 10} KiB): the client does not read");
                    return false;
                }
                GrowPending(_pendingLength + frame.Length);
            }
            frame.CopyTo(_pending.AsSpan(_pendingLength));
            _pendingLength += frame.Length;
            Volatile.Write(ref _lastSentTicks, System.Diagnostics.Stopwatch.GetTimestamp());
        }
        if (Interlocked.Exchange(ref _sendSignalled, 1) == 0)
        {
            _sendWanted.Release();
        }
        return true;
    }

    /// <summary>Sends a heartbeat if this session gets them and nothing was sent to it for its interval (<paramref name="now"/>: a Stopwatch timestamp).</summary>
    public void HeartbeatIfIdle(long now)
    {
        if (_heartbeatTicks == 0 || IsClosed || now - Volatile.Read(ref _lastSentTicks) < _heartbeatTicks)
        {
            return;
        }
        Span<byte> frame = stackalloc byte[ReplyCodec.HeartbeatFrameBytes];
        Enqueue(frame[..ReplyCodec.EncodeHeartbeat(frame)]);
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
        _client.Detach(this);
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
                if (_tls is null)
                {
                    int sent = 0;
                    while (sent < length)
                    {
                        sent += await _socket.SendAsync(_sending.AsMemory(sent, length - sent), SocketFlags.None).ConfigureAwait(false);
                    }
                }
                else
                {
                    await _tls.WriteAsync(_sending.AsMemory(0, length)).ConfigureAwait(false);
                }
                _sendInProgress = false;
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or IOException or InvalidOperationException)
        {
            Close($"send failed: {e.Message}");
        }
    }

    private async Task ReadLoop(CancellationToken stopping)
    {
        byte[] buffer = _read;
        int filled = _readFilled;
        try
        {
            // What the client sent right behind its logon came in with it.
            if (filled > 0 && !Consume(buffer, ref filled))
            {
                return;
            }
            while (!IsClosed)
            {
                int read = _tls is null
                    ? await _socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, stopping).ConfigureAwait(false)
                    : await _tls.ReadAsync(buffer.AsMemory(filled), stopping).ConfigureAwait(false);
                if (read == 0)
                {
                    Close("the client closed the connection");
                    return;
                }
                filled += read;
                if (!Consume(buffer, ref filled))
                {
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
            // On shutdown only the reading stops: replies to what was already taken still go out.
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or IOException or InvalidOperationException)
        {
            Close($"receive failed: {e.Message}");
        }
    }

    /// <summary>Handles the complete frames in the buffer and keeps the partial rest at its start; false if the session closed.</summary>
    private bool Consume(byte[] buffer, ref int filled)
    {
        int consumed = HandleFrames(buffer.AsSpan(0, filled));
        if (consumed < 0)
        {
            return false; // closed for a protocol violation
        }
        buffer.AsSpan(consumed, filled - consumed).CopyTo(buffer);
        filled -= consumed;
        return true;
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
            if (data[offset + Frame.TypeOffset] == (byte)MessageType.ProofRequest)
            {
                // Not a transaction: answered beside the ring, after the requests before it were published.
                if (frames > 0)
                {
                    Publish(data, starts, lengths, frames);
                    frames = 0;
                }
                if (!RequestProof(data.Slice(offset, length)))
                {
                    return -1;
                }
                offset += length;
                continue;
            }
            starts[frames] = offset;
            lengths[frames] = length;
            if (++frames == MaxFramesPerClaim)
            {
                Publish(data, starts, lengths, frames);
                frames = 0;
            }
            offset += length;
        }
        if (frames > 0)
        {
            Publish(data, starts, lengths, frames);
        }
        return offset;
    }

    /// <summary>Claims slots for the frames in one go and publishes them; answers "busy" for what does not fit.</summary>
    private void Publish(ReadOnlySpan<byte> data, Span<int> starts, Span<int> lengths, int frames)
    {
        ClientRegistry.Entry client = _client;
        int admitted = Math.Min(frames, _settings.MaxInFlightPerClient - Volatile.Read(ref client.InFlight));
        admitted = Math.Max(admitted, 0);
        // A primary without its backup takes nothing new it could not acknowledge. Resends of requests
        // already sealed (the client reconnected while they waited at the ack gate) still go in: the
        // sealer finds them duplicates and the apply stage answers each after its original, with the
        // original's outcome. Refused, the client would take "NoBackup" for an order the ledger accepts
        // once a backup is back, and might send it again as a new one.
        bool noBackup = _gateway.Mirror is { MayAcknowledge: false };
        if (noBackup)
        {
            admitted = LeadingResends(data, starts, lengths, admitted, _gateway.ClientSeqs.Highest(ClientId));
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
            long received = System.Diagnostics.Stopwatch.GetTimestamp();
            for (int i = 0; i < admitted; i++)
            {
                ref TxSlot slot = ref ring[low + i];
                slot.SetFrame(data.Slice(starts[i], lengths[i]));
                slot.SessionClientId = ClientId;
                slot.ReceivedTicks = received;
                slot.Probe = null;
                slot.Admin = null;
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

    /// <summary>Hands a proof request to the gateway's <see cref="ProofDesk"/>, or refuses it at once; false if the session closed.</summary>
    private bool RequestProof(ReadOnlySpan<byte> frame)
    {
        RejectReason wrong = ProofCodec.DecodeRequest(frame, out uint clientId, out ulong requestId, out ulong lsn, out ulong blockNo);
        string? why = wrong != RejectReason.None ? $"not a proof request: {wrong}"
            : clientId != ClientId ? $"the request names client {clientId}; this session is client {ClientId}"
            : _gateway.Proofs is not { } desk ? "this node makes no proofs: it signs no ledger heads (started without a ledger key, or not the primary)"
            : desk.TryTake(this, requestId, lsn, blockNo) ? null
            : "busy: too many proof requests waiting, retry";
        if (why is null)
        {
            return true;
        }
        RejectReason reason = wrong != RejectReason.None ? wrong : clientId != ClientId ? RejectReason.ClientMismatch : RejectReason.ProofUnavailable;
        Span<byte> reply = stackalloc byte[Frame.MaxBytes];
        return Enqueue(reply[..ProofCodec.EncodeRefusal(requestId, reason, why, reply)]);
    }

    /// <summary>How many of the first <paramref name="count"/> frames carry a clientSeq the ledger has sealed already (at most <paramref name="highestSealed"/>): resends.</summary>
    private static int LeadingResends(ReadOnlySpan<byte> data, ReadOnlySpan<int> starts, ReadOnlySpan<int> lengths, int count, ulong highestSealed)
    {
        int resends = 0;
        while (resends < count && lengths[resends] >= Frame.HeaderBytes + 16
            && BinaryPrimitives.ReadUInt64LittleEndian(data[(starts[resends] + Frame.HeaderBytes + 8)..]) is ulong seq && seq != 0 && seq <= highestSealed)
        {
            resends++;
        }
        return resends;
    }

    /// <summary>
    /// Gives the buffers back once both loops have ended: the write loop is done with
    /// <see cref="_sending"/>, and <see cref="Enqueue"/>, which checks <see cref="IsClosed"/> under
    /// the same lock before it touches <see cref="_pending"/>, never writes into a returned buffer.
    /// </summary>
    private void ReturnBuffers()
    {
        lock (_sendLock)
        {
            _pool.Return(_pending);
            _pool.Return(_sending);
            _pending = _sending = [];
            _pendingLength = 0;
        }
        _pool.Return(_read);
        _read = [];
        try
        {
            _tls?.Dispose();
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException)
        {
        }
    }

    // The semaphore is not disposed: the write loop may still be waiting on it, and a SemaphoreSlim
    // whose wait handle was never asked for holds no unmanaged resource.
    public void Dispose() => Close("disposed");
}
