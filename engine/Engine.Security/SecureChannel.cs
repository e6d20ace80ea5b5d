using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace Engine.Security;

/// <summary>
/// A mutually authenticated, encrypted link between two principals of one cluster over a connected
/// TCP socket: a handshake (<see cref="ConnectAsync"/> on the client, <see cref="AcceptAsync"/> on
/// the server), then records. What the records carry is the caller's business (the replication
/// link puts its own frames in them, several per record), so authentication sits at the transport
/// seam and the protocol above does not see it.
/// </summary>
/// <remarks>
/// <para><b>Why not TLS.</b> TLS 1.3 with mutual certificates (<c>SslStream</c>) would also do, but
/// it needs certificates and a CA to sign them (.NET cannot make Ed25519 certificates, so ECDSA and
/// expiry dates to manage), checking a role means parsing certificate fields, and its records are
/// at most 16 KiB, with the stream in charge of buffering. Here a cluster is one JSON roster of
/// Ed25519 keys with roles, the handshake binds cluster id, names, roles and purpose directly, and
/// the record layer is ours: one AEAD operation per write batch (up to 1 MiB), nothing allocated
/// per record, a blocking and an async send under one lock. The construction is the standard one,
/// not an invention: ephemeral X25519 (forward secrecy), each side signs the transcript hash with
/// its long-term Ed25519 key (SIGMA, as TLS 1.3's CertificateVerify), HKDF-SHA256 to one AES-256-GCM
/// key per direction, counter nonces. No resumption, no renegotiation, no 0-RTT, one version.</para>
/// <para><b>Handshake</b> (each message <c>u16 length | body</c>, body at most 255 bytes, the whole
/// handshake within <see cref="DefaultHandshakeTimeout"/>):
/// <code>
///  C→S ClientHello  0 u8 1 | 1 "ENGL" | 5 u8 version 1 | 6 u8 purpose | 7 u8 name length n
///                   8 u8[16] cluster id | 24 u8[32] ephemeral X25519 | 56 u8[32] nonce | 88 name
///  S→C ServerHello  0 u8 2 | 1 u8 version | 2 u8 name length n | 3 u8 0 | 4 u8[16] cluster id
///                   20 u8[32] ephemeral X25519 | 52 u8[32] nonce | 84 name | 84+n u8[64] signature
///                   = Ed25519(server key, "engine/link/v1/server signature\0" ‖ SHA-256(m1 ‖ m2 without signature))
///  C→S ClientFinish 0 u8 3 | 1 u8[64] Ed25519(client key, "engine/link/v1/client signature\0" ‖ SHA-256(m1 ‖ m2))
///  S→C Done         0 u8 4 | 1 u8 status: 0 accepted, else a RefusalReason (also sent instead of
///                   ServerHello when the ClientHello is refused)
///  keys: HKDF-SHA256(X25519 shared secret, salt SHA-256(m1 ‖ m2 ‖ m3), "engine/link/v1/client to server" | "… server to client")
/// </code>
/// m1, m2, m3 are the messages as sent (length prefix included). Each side checks the cluster id,
/// that the peer's name is in its roster, that the peer's role is the one allowed (the server passes
/// the roles it accepts, the client the role it expects of the server) and the peer's signature. Both
/// names, both ephemeral keys, both nonces, the cluster id and the purpose are inside both signed
/// hashes, so a signature cannot be replayed into another session, relayed to a third party under
/// another name (identity misbinding), or carried to a listener of another purpose; the two labels
/// keep a server's signature from passing as a client's. The server refuses a stranger (wrong
/// cluster, unknown name, disallowed role) before it does any public-key work, and allocates nothing
/// larger than a few hundred bytes before the client is authenticated. Done is not authenticated
/// (a man in the middle can turn "accepted" into a refusal, which is only the denial of service he
/// can do anyway); everything after it is.</para>
/// <para><b>Records</b>:
/// <code>
///  0 u32 length n (1 ≤ n ≤ MaxRecordBytes) | 4 u32 ~CRC-32C(length, counter) | 8 AES-256-GCM ciphertext (n bytes) | 8+n u8[16] tag
///  nonce = 4 zero bytes ‖ u64 big-endian record counter of that direction (from 0); associated data = the 8-byte header
/// </code>
/// The header's check is tested before the body is awaited, so a length corrupted on the way is a
/// reset at once, not a wait for bytes that never come (which a receiver would take for silence).
/// The receiver expects the next counter, so a record replayed, reordered, dropped or altered (or a
/// length changed) fails the tag: the receive throws and the channel is closed. The sender encrypts
/// under the send lock at the moment it sends, so counter order is wire order whatever threads send.
/// A channel that failed is not used again.</para>
/// </remarks>
public sealed class SecureChannel : IDisposable
{
    /// <summary>Plaintext bytes in one record, at most; longer sends are split into several records.</summary>
    public const int MaxRecordBytes = 1 << 20;

    /// <summary>Bytes of the header before each record: the length and its check.</summary>
    public const int RecordHeaderBytes = RecordCipher.HeaderBytes;

    /// <summary>Bytes of the AES-GCM tag after each record.</summary>
    public const int TagBytes = 16;

    /// <summary>Wire bytes a record adds to its plaintext.</summary>
    public const int RecordOverheadBytes = RecordHeaderBytes + TagBytes;

    /// <summary>How long a whole handshake may take, unless the caller says otherwise: a stranger holds a listener's slot at most this long.</summary>
    public static readonly TimeSpan DefaultHandshakeTimeout = TimeSpan.FromSeconds(2);

    private readonly Socket _socket;
    private readonly RecordCipher _seal;
    private readonly RecordCipher _open;
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private readonly byte[] _receiveHeader = new byte[RecordHeaderBytes];
    private readonly byte[] _receiveTag = new byte[TagBytes];
    private byte[] _sendBuffer = new byte[4096];
    private int _tailFrom; // under the send lock: a record's bytes the socket has not taken yet (_sendBuffer[_tailFrom.._tailTo]), sent before anything else
    private int _tailTo;
    private int _disposed;

    internal SecureChannel(Socket socket, Principal peer, LinkPurpose purpose, byte[] sealKey, byte[] openKey)
    {
        _socket = socket;
        Peer = peer;
        Purpose = purpose;
        RemoteEndPoint = socket.RemoteEndPoint;
        _seal = new RecordCipher(sealKey);
        _open = new RecordCipher(openKey);
        // Sends on the caller's thread (TrySendNow) must never wait for the peer: the synchronous calls see
        // WouldBlock instead. The asynchronous ones are not affected.
        socket.Blocking = false;
    }

    /// <summary>The authenticated principal at the other end.</summary>
    public Principal Peer { get; }

    /// <summary>What this channel was opened for.</summary>
    public LinkPurpose Purpose { get; }

    /// <summary>The other end's address (for logs).</summary>
    public EndPoint? RemoteEndPoint { get; }

    /// <summary>Records sent so far (the next send counter).</summary>
    public ulong RecordsSent => _seal.Counter;

    /// <summary>Records received and authenticated so far.</summary>
    public ulong RecordsReceived => _open.Counter;

    /// <summary>
    /// Client side: authenticates as <paramref name="self"/> to the server at the other end of
    /// <paramref name="socket"/> (connected) for <paramref name="purpose"/>, and requires the server
    /// to be a principal of role <paramref name="serverRole"/>. On success the channel owns the socket;
    /// on failure the socket is closed.
    /// </summary>
    /// <exception cref="LinkRefusedException">Either side refused, or the handshake timed out or was cut; <see cref="LinkRefusedException.Reason"/> says why.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancel"/> was cancelled.</exception>
    public static Task<SecureChannel> ConnectAsync(Socket socket, ClusterCredentials self, LinkPurpose purpose, PrincipalRole serverRole,
        TimeSpan? timeout = null, CancellationToken cancel = default) =>
        Handshake.ClientAsync(socket, self, purpose, serverRole, timeout ?? DefaultHandshakeTimeout, cancel);

    /// <summary>
    /// Server side: authenticates the client at the other end of <paramref name="socket"/> (just
    /// accepted) for <paramref name="purpose"/>, accepting only principals whose role is in
    /// <paramref name="clientRoles"/>, and proves to it that this process is <paramref name="self"/>.
    /// Never throws for anything the client does: a refusal (the socket then closed, the reason sent
    /// to the client) is a value to log. On success the channel owns the socket.
    /// </summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancel"/> was cancelled (the socket is closed).</exception>
    public static Task<AcceptOutcome> AcceptAsync(Socket socket, ClusterCredentials self, LinkPurpose purpose, IReadOnlyCollection<PrincipalRole> clientRoles,
        TimeSpan? timeout = null, CancellationToken cancel = default) =>
        Handshake.ServerAsync(socket, self, purpose, clientRoles, timeout ?? DefaultHandshakeTimeout, cancel);

    /// <summary>
    /// Sends <paramref name="plaintext"/> (not empty) in as few records as fit, blocking until the
    /// socket took it all. Thread-safe with every other send.
    /// </summary>
    /// <exception cref="IOException">The channel is closed or the connection failed.</exception>
    public void Send(ReadOnlySpan<byte> plaintext)
    {
        CheckSendable(plaintext.Length);
        _sendLock.Wait();
        try
        {
            SendBlocking(_sendBuffer.AsSpan(_tailFrom, _tailTo - _tailFrom));
            _tailFrom = _tailTo = 0;
            while (!plaintext.IsEmpty)
            {
                int take = Math.Min(plaintext.Length, MaxRecordBytes);
                int length = Seal(plaintext[..take]);
                SendBlocking(_sendBuffer.AsSpan(0, length));
                plaintext = plaintext[take..];
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            Dispose();
            throw new IOException($"the secure channel to {Peer.Name} failed: {e.Message}", e);
        }
        finally
        {
            _sendLock.Release();
        }
    }

    /// <summary>
    /// Sends <paramref name="plaintext"/> as one record on the caller's thread if that costs no wait:
    /// no other send under way, nothing left of an earlier record, and room in the socket. A send on
    /// the thread that has the bytes saves the wake-up of a writer thread (on each side of a link, per
    /// block). Never waits for the peer: what the socket does not take of the record at once stays in
    /// the channel (<see cref="SendNow.Partly"/>) and goes out first with the next
    /// <see cref="SendAsync"/> or <see cref="FlushAsync"/>, which the caller must then make.
    /// </summary>
    /// <returns><see cref="SendNow.NotNow"/>: nothing was sent (the caller sends it the usual way).</returns>
    public SendNow TrySendNow(ReadOnlySpan<byte> plaintext)
    {
        if (plaintext.IsEmpty || plaintext.Length > MaxRecordBytes || Volatile.Read(ref _disposed) != 0 || !_sendLock.Wait(0))
        {
            return SendNow.NotNow;
        }
        try
        {
            if (_tailFrom < _tailTo)
            {
                return SendNow.NotNow;
            }
            int length = Seal(plaintext);
            int sent = _socket.Send(_sendBuffer.AsSpan(0, length), SocketFlags.None, out SocketError error);
            if (error is not (SocketError.Success or SocketError.WouldBlock))
            {
                // The record is sealed (its counter spent) but lost: the channel is done; the next send says so.
                Dispose();
                return SendNow.Partly;
            }
            sent = Math.Max(sent, 0);
            if (sent == length)
            {
                return SendNow.Sent;
            }
            (_tailFrom, _tailTo) = (sent, length);
            return SendNow.Partly;
        }
        catch (ObjectDisposedException)
        {
            return SendNow.Partly; // closed meanwhile: the next send says so
        }
        finally
        {
            _sendLock.Release();
        }
    }

    /// <summary>Sends what is left of a record <see cref="TrySendNow"/> began (nothing if none), without blocking a thread.</summary>
    /// <exception cref="IOException">The channel is closed or the connection failed.</exception>
    public async ValueTask FlushAsync(CancellationToken cancel = default)
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            throw new IOException($"the secure channel to {Peer.Name} is closed");
        }
        await _sendLock.WaitAsync(cancel).ConfigureAwait(false);
        try
        {
            await SendTailAsync(cancel).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
        {
            Dispose();
            throw e is OperationCanceledException ? e : new IOException($"the secure channel to {Peer.Name} failed: {e.Message}", e);
        }
        finally
        {
            _sendLock.Release();
        }
    }

    /// <summary>
    /// As <see cref="Send"/>, without blocking a thread. Thread-safe with every other send; a cancelled
    /// send may have sent part of a record, so it closes the channel.
    /// </summary>
    /// <exception cref="IOException">The channel is closed or the connection failed.</exception>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask SendAsync(ReadOnlyMemory<byte> plaintext, CancellationToken cancel = default)
    {
        CheckSendable(plaintext.Length);
        await _sendLock.WaitAsync(cancel).ConfigureAwait(false);
        try
        {
            await SendTailAsync(cancel).ConfigureAwait(false);
            int offset = 0;
            while (offset < plaintext.Length)
            {
                int take = Math.Min(plaintext.Length - offset, MaxRecordBytes);
                int length = Seal(plaintext.Span.Slice(offset, take));
                int sent = 0;
                while (sent < length)
                {
                    sent += await _socket.SendAsync(_sendBuffer.AsMemory(sent, length - sent), SocketFlags.None, cancel).ConfigureAwait(false);
                }
                offset += take;
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
        {
            Dispose();
            throw e is OperationCanceledException ? e : new IOException($"the secure channel to {Peer.Name} failed: {e.Message}", e);
        }
        finally
        {
            _sendLock.Release();
        }
    }

    /// <summary>Under the send lock: sends what is left of a record begun by <see cref="TrySendNow"/>.</summary>
    private async ValueTask SendTailAsync(CancellationToken cancel)
    {
        while (_tailFrom < _tailTo)
        {
            _tailFrom += await _socket.SendAsync(_sendBuffer.AsMemory(_tailFrom, _tailTo - _tailFrom), SocketFlags.None, cancel).ConfigureAwait(false);
        }
        _tailFrom = _tailTo = 0;
    }

    /// <summary>Under the send lock: all of <paramref name="bytes"/> into the (non-blocking) socket, waiting for room as needed.</summary>
    private void SendBlocking(ReadOnlySpan<byte> bytes)
    {
        while (!bytes.IsEmpty)
        {
            int sent = _socket.Send(bytes, SocketFlags.None, out SocketError error);
            if (error == SocketError.WouldBlock)
            {
                _socket.Poll(100_000, SelectMode.SelectWrite);
                continue;
            }
            if (error != SocketError.Success)
            {
                throw new SocketException((int)error);
            }
            bytes = bytes[sent..];
        }
    }

    /// <summary>
    /// Receives the next record into <paramref name="destination"/> and returns its plaintext length,
    /// or 0 when the peer closed the connection between records. One receiver at a time. Give at
    /// least <see cref="TagBytes"/> more room than the longest record expected and the record arrives
    /// in one read less.
    /// </summary>
    /// <exception cref="InvalidDataException">The record fails authentication (altered, replayed, reordered, dropped), its length is 0, above <see cref="MaxRecordBytes"/> or above <paramref name="destination"/>'s: the channel is closed.</exception>
    /// <exception cref="IOException">The connection ended inside a record or failed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancel"/> was cancelled (the channel is closed: part of a record may have been read).</exception>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<int> ReceiveAsync(Memory<byte> destination, CancellationToken cancel = default)
    {
        try
        {
            int got = await ReadAsync(_receiveHeader, cancel).ConfigureAwait(false);
            if (got == 0)
            {
                return 0;
            }
            if (got < RecordHeaderBytes)
            {
                throw Ended();
            }
            if (!_open.TryReadHeader(_receiveHeader, out uint length))
            {
                throw Fail($"record {_open.Counter} has a corrupt header");
            }
            if (length == 0 || length > MaxRecordBytes || length > destination.Length)
            {
                throw Fail(length == 0 ? "an empty record" : $"a record of {length:N0} bytes (at most {Math.Min(MaxRecordBytes, destination.Length):N0} here)");
            }
            int n = (int)length;
            Memory<byte> tag = _receiveTag;
            if (destination.Length >= n + TagBytes)
            {
                tag = destination.Slice(n, TagBytes); // ciphertext and tag in one read
                if (await ReadAsync(destination[..(n + TagBytes)], cancel).ConfigureAwait(false) < n + TagBytes)
                {
                    throw Ended();
                }
            }
            else if (await ReadAsync(destination[..n], cancel).ConfigureAwait(false) < n || await ReadAsync(_receiveTag, cancel).ConfigureAwait(false) < TagBytes)
            {
                throw Ended();
            }
            if (!_open.TryOpen(_receiveHeader, destination.Span[..n], tag.Span))
            {
                throw Fail($"record {_open.Counter} fails authentication (altered, replayed, reordered or dropped)");
            }
            return n;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            Dispose();
            throw new IOException($"the secure channel to {Peer.Name} failed: {e.Message}", e);
        }
        catch (OperationCanceledException)
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Closes the connection; pending sends and receives fail.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        _socket.Dispose();
        // The AES contexts are released by their safe handles once no call uses them any more.
        _seal.Dispose();
        _open.Dispose();
    }

    private void CheckSendable(int length)
    {
        if (length == 0)
        {
            throw new ArgumentException("a record is never empty: nothing to send");
        }
        if (Volatile.Read(ref _disposed) != 0)
        {
            throw new IOException($"the secure channel to {Peer.Name} is closed");
        }
    }

    /// <summary>Encrypts one record into the send buffer (grown once to the largest record sent); returns its wire length. Under the send lock.</summary>
    private int Seal(ReadOnlySpan<byte> plaintext)
    {
        int length = RecordOverheadBytes + plaintext.Length;
        if (_sendBuffer.Length < length)
        {
            _sendBuffer = new byte[Math.Max(length, Math.Min(2 * _sendBuffer.Length, MaxRecordBytes + RecordOverheadBytes))];
        }
        return _seal.Seal(plaintext, _sendBuffer);
    }

    private InvalidDataException Fail(string what)
    {
        Dispose();
        return new InvalidDataException($"secure channel to {Peer.Name}: {what}");
    }

    private IOException Ended()
    {
        Dispose();
        return new IOException($"the secure channel to {Peer.Name} ended inside a record");
    }

    /// <summary>Reads until <paramref name="target"/> is full or the peer closes; returns the bytes read.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> ReadAsync(Memory<byte> target, CancellationToken cancel)
    {
        int got = 0;
        while (got < target.Length)
        {
            int read = await _socket.ReceiveAsync(target[got..], SocketFlags.None, cancel).ConfigureAwait(false);
            if (read == 0)
            {
                break;
            }
            got += read;
        }
        return got;
    }
}

/// <summary>What <see cref="SecureChannel.TrySendNow"/> did.</summary>
public enum SendNow
{
    /// <summary>Nothing sent: another send is under way or something is left of an earlier record; send it the usual way.</summary>
    NotNow,

    /// <summary>The whole record is in the socket.</summary>
    Sent,

    /// <summary>The record is the channel's now, but part of it is still to go: call <see cref="SecureChannel.FlushAsync"/> (or send again) so that it goes.</summary>
    Partly,
}
