using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Engine.Protocol;

namespace Engine.Client;

/// <summary>
/// A front-end's connection to the engine: logs on, numbers requests (clientSeq), pipelines them
/// (up to <see cref="ClientOptions.MaxInFlight"/> unanswered), matches answers, and fails over.
/// </summary>
/// <remarks>
/// <para>Two ways to submit. <see cref="SubmitAsync"/> awaits the answer. <see cref="TrySend(ref Transaction, int, bool)"/> does
/// not wait and allocates nothing: answers come to <see cref="Answered"/> (load generators).
/// Execution reports (fills, cancels, replaces; also for orders resting from earlier) come to
/// <see cref="Executed"/>. Callbacks run on the client's read loop: keep them short.</para>
/// <para>Failover: when the connection drops, the client connects to the next endpoint, logs on,
/// and resends every unanswered request with its original clientSeq. The engine applies a
/// (clientId, clientSeq) at most once and answers a repeat with the original outcome, so nothing is
/// lost or done twice. A node that answers the logon "not primary" and names the other node sends
/// the client there next, if that endpoint is one of <see cref="ClientOptions.Endpoints"/> (a client
/// never takes its token to an endpoint it was not given).</para>
/// <para>TLS (<see cref="ClientOptions.Tls"/>): the same protocol inside a TLS 1.2/1.3 session,
/// the engine's certificate checked against the system's trust store or the given certificates.</para>
/// </remarks>
public sealed class EngineClient : IAsyncDisposable
{
    private readonly ClientOptions _options;
    private readonly IPEndPoint[] _endpoints;
    private readonly string[] _hosts;
    private readonly X509Certificate2Collection? _trusted;
    private readonly object _lock = new();
    private readonly PendingWindow _unanswered;
    private readonly SemaphoreSlim _window;

    // Released when an answer frees a slot while a sender waits for the next seq's slot (see TryEnqueue).
    private readonly SemaphoreSlim _slotFreed = new(0, int.MaxValue);
    private int _slotWaiters;
    private readonly CancellationTokenSource _disposed = new();
    private byte[] _sendBuffer = new byte[64 * 1024];
    private byte[] _flushBuffer = new byte[64 * 1024];
    private int _sendLength;
    private bool _flushing;
    private EngineLink? _link;
    private int _endpointIndex;
    private int _answeredSinceRelease;
    private Task? _readLoop;

    // The engine sends one text per reason: decoded once, not once per rejection.
    private readonly Dictionary<RejectReason, string> _rejectTexts = [];

    private Timer? _watchdog;

    // Proof requests waiting for their chunks, by request id (under _lock).
    private readonly Dictionary<ulong, ProofWait> _proofs = [];
    private ulong _lastProofId;

    // Silence: when the link last delivered bytes (Environment.TickCount64), and whether the engine
    // has sent a heartbeat on it (only then does silence mean anything). The endpoint left for
    // silence is avoided until _avoidUntil.
    private long _lastHeardAt;
    private volatile bool _heartbeats;
    private int _avoid = -1;
    private long _avoidUntil;
    private long _silenceFailovers;

    private EngineClient(ClientOptions options)
    {
        _options = options;
        _endpoints = options.Parse();
        _hosts = options.Hosts();
        _trusted = options.Tls?.LoadTrusted();
        _unanswered = new PendingWindow(options.MaxInFlight);
        _window = new SemaphoreSlim(options.MaxInFlight, options.MaxInFlight);
    }

    /// <summary>Answers to requests sent with <see cref="TrySend(ref Transaction, int, bool)"/> (and <see cref="SubmitAsync"/>), on the read loop.</summary>
    public event Action<SubmitResult>? Answered;

    /// <summary>Execution reports, on the read loop.</summary>
    public event Action<ExecutionReport>? Executed;

    /// <summary>A connection was lost and another made: which endpoint now, and the engine's last clientSeq for us.</summary>
    public event Action<IPEndPoint, ulong>? Reconnected;

    public uint ClientId => _options.ClientId;

    /// <summary>The endpoint connected to now.</summary>
    public IPEndPoint Endpoint => _endpoints[_endpointIndex];

    /// <summary>The clientSeq the next request will get (one thread sending at a time can rely on it).</summary>
    public ulong NextClientSeq
    {
        get
        {
            lock (_lock)
            {
                return _unanswered.LastSeq + 1;
            }
        }
    }

    /// <summary>Requests sent and not yet answered.</summary>
    public int InFlight
    {
        get
        {
            lock (_lock)
            {
                return _unanswered.InFlight;
            }
        }
    }

    /// <summary>Connections given up because the engine said nothing for <see cref="ClientOptions.SilenceTimeout"/>.</summary>
    public long SilenceFailovers => Interlocked.Read(ref _silenceFailovers);

    /// <summary>The highest clientSeq the engine had taken for this client when we last logged on.</summary>
    public ulong LastClientSeqAtLogon { get; private set; }

    /// <summary>Connects to the first endpoint that accepts the logon.</summary>
    /// <exception cref="EngineUnavailableException">No endpoint accepted within <see cref="ClientOptions.ReconnectFor"/>.</exception>
    /// <exception cref="UnauthorizedAccessException">The engine refused the client id and token.</exception>
    public static async Task<EngineClient> ConnectAsync(ClientOptions options, CancellationToken cancel = default)
    {
        var client = new EngineClient(options);
        client._link = await client.ConnectAnyAsync(cancel).ConfigureAwait(false);
        client._unanswered.StartAfter(client.LastClientSeqAtLogon);
        client._readLoop = Task.Run(client.ReadLoop, CancellationToken.None);
        // Checks the answer timeout and the silence; often enough that silence is seen within a fifth of its timeout.
        int period = options.SilenceTimeout > TimeSpan.Zero ? (int)Math.Clamp(options.SilenceTimeout.TotalMilliseconds / 5, 5, 100) : 100;
        client._watchdog = new Timer(_ => client.CheckAnswerTimeout(), null, period, period);
        return client;
    }

    /// <summary>Submits a request and waits for its answer. Sets the client id and the next clientSeq on it.</summary>
    public async Task<SubmitResult> SubmitAsync(Transaction tx, CancellationToken cancel = default)
    {
        await _window.WaitAsync(cancel).ConfigureAwait(false);
        var answer = new TaskCompletionSource<SubmitResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            while (!TryEnqueue(ref tx, answer))
            {
                await _slotFreed.WaitAsync(cancel).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            StopWaitingForSlot();
            _window.Release();
            throw;
        }
        return await answer.Task.ConfigureAwait(false);
    }

    /// <summary>
    /// Sends a request without waiting: false if <see cref="ClientOptions.MaxInFlight"/> are already
    /// unanswered. The answer comes to <see cref="Answered"/>. Sets the client id and clientSeq on it.
    /// </summary>
    public bool TrySend(ref Transaction tx) => TrySend(ref tx, 0);

    /// <summary>
    /// As <see cref="TrySend(ref Transaction)"/>, waiting up to <paramref name="timeoutMs"/> for room
    /// in the window (the thread blocks; it does not spin). With <paramref name="flush"/> false the
    /// frame waits in the send buffer for the next flush: a sender of a burst flushes once, with
    /// one system call for many requests, and calls <see cref="Flush"/> before it waits.
    /// </summary>
    public bool TrySend(ref Transaction tx, int timeoutMs, bool flush = true)
    {
        long deadline = Environment.TickCount64 + timeoutMs;
        if (!_window.Wait(0))
        {
            // About to wait for answers: make sure what is buffered is on its way first.
            Flush();
            if (timeoutMs == 0 || !_window.Wait(timeoutMs))
            {
                return false;
            }
        }
        while (!TryEnqueue(ref tx, null, flush))
        {
            Flush();
            int left = (int)Math.Max(0, deadline - Environment.TickCount64);
            if (left == 0 || !_slotFreed.Wait(left))
            {
                StopWaitingForSlot();
                _window.Release();
                return false;
            }
        }
        return true;
    }

    /// <summary>
    /// Fetches the inclusion proof of one of this client's transactions, by its receipt: the record,
    /// its path to a records root, the block that carries the root, and that block's path to the
    /// newest signed head of the ledger. Check it with <see cref="ReceiptProof.Verify"/> and the
    /// cluster's ledger public key; nothing here trusts it. A request is resent after a failover.
    /// The engine makes a proof once a signed head covers the transaction (about a second after its
    /// receipt): until then it refuses with <see cref="RejectReason.ProofUnavailable"/>.
    /// </summary>
    /// <exception cref="ProofRefusedException">The engine made no proof: the reason and its text.</exception>
    /// <exception cref="InvalidDataException">The engine sent bytes that are not a proof.</exception>
    public async Task<InclusionProof> GetProofAsync(Receipt receipt, CancellationToken cancel = default)
    {
        var wait = new ProofWait(receipt.Lsn, receipt.BlockNo);
        ulong id;
        lock (_lock)
        {
            if (_proofs.Count >= MaxProofsWaiting)
            {
                throw new InvalidOperationException($"{MaxProofsWaiting} proof requests are already waiting");
            }
            id = ++_lastProofId;
            _proofs.Add(id, wait);
            if (_link is not null)
            {
                AppendProofRequest(id, wait);
            }
        }
        FlushSoon();
        try
        {
            return await wait.Answer.Task.WaitAsync(cancel).ConfigureAwait(false);
        }
        finally
        {
            lock (_lock)
            {
                _proofs.Remove(id);
            }
        }
    }

    /// <summary>Proof requests one client keeps waiting at a time.</summary>
    public const int MaxProofsWaiting = 16;

    private sealed class ProofWait(ulong lsn, ulong blockNo)
    {
        public ulong Lsn { get; } = lsn;
        public ulong BlockNo { get; } = blockNo;
        public TaskCompletionSource<InclusionProof> Answer { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public byte[]? Bytes;
        public int Filled;
    }

    private void AppendProofRequest(ulong id, ProofWait wait)
    {
        wait.Bytes = null;
        wait.Filled = 0;
        if (_sendLength + ProofCodec.RequestFrameBytes > _sendBuffer.Length)
        {
            Array.Resize(ref _sendBuffer, _sendBuffer.Length * 2);
        }
        _sendLength += ProofCodec.EncodeRequest(_options.ClientId, id, wait.Lsn, wait.BlockNo, _sendBuffer.AsSpan(_sendLength));
    }

    /// <summary>One chunk of a proof (or its refusal): put in place; the proof completes with its last byte.</summary>
    private void HandleProofChunk(ReadOnlySpan<byte> frame)
    {
        if (ProofCodec.DecodeChunk(frame, out ulong id, out int total, out int offset, out RejectReason refusal, out ReadOnlySpan<byte> data) != RejectReason.None)
        {
            return;
        }
        ProofWait? wait;
        byte[]? complete = null;
        lock (_lock)
        {
            if (!_proofs.TryGetValue(id, out wait))
            {
                return; // given up on, or answered already
            }
            if (refusal == RejectReason.None)
            {
                // Chunks come in order, back to back: anything else is a broken answer.
                wait.Bytes ??= offset == 0 ? new byte[total] : null;
                if (wait.Bytes is null || wait.Bytes.Length != total || offset != wait.Filled)
                {
                    wait.Answer.TrySetException(new InvalidDataException($"the engine's proof {id} came out of order (chunk at {offset} of {total})"));
                    return;
                }
                data.CopyTo(wait.Bytes.AsSpan(offset));
                wait.Filled += data.Length;
                if (wait.Filled < total)
                {
                    return;
                }
                complete = wait.Bytes;
            }
        }
        if (complete is null)
        {
            wait.Answer.TrySetException(new ProofRefusedException(refusal, System.Text.Encoding.UTF8.GetString(data)));
            return;
        }
        if (InclusionProof.TryRead(complete, out string? wrong) is { } proof)
        {
            wait.Answer.TrySetResult(proof);
        }
        else
        {
            wait.Answer.TrySetException(new InvalidDataException($"the engine's answer is not a proof: {wrong}"));
        }
    }

    /// <summary>Sends whatever <see cref="TrySend(ref Transaction, int, bool)"/> left buffered.</summary>
    public void Flush() => FlushSoon();

    /// <summary>
    /// Numbers and queues the request, unless the slot its seq maps to still holds an older request
    /// that is unanswered: answers can come out of order (a request waits at the ack gate of a
    /// primary that lost its backup while later ones are rejected at once), so a window of
    /// <see cref="ClientOptions.MaxInFlight"/> requests can span more seqs than there are slots.
    /// Then nothing new is sent until that old request is answered (or resent after a failover):
    /// false, and the caller waits on <see cref="_slotFreed"/>, counted as a waiter.
    /// </summary>
    private bool TryEnqueue(ref Transaction tx, TaskCompletionSource<SubmitResult>? answer, bool flush = true)
    {
        lock (_lock)
        {
            tx.ClientId = _options.ClientId;
            if (!_unanswered.TryAdd(ref tx, answer, Environment.TickCount64))
            {
                _slotWaiters++;
                return false;
            }
            if (_link is not null)
            {
                AppendFrame(in tx);
            }
        }
        if (flush)
        {
            FlushSoon();
        }
        return true;
    }

    /// <summary>A sender that waited for a slot and gives up.</summary>
    private void StopWaitingForSlot()
    {
        lock (_lock)
        {
            _slotWaiters = Math.Max(0, _slotWaiters - 1);
        }
    }

    private void AppendFrame(in Transaction tx)
    {
        if (_sendLength + TransactionCodec.MaxFrameBytes > _sendBuffer.Length)
        {
            Array.Resize(ref _sendBuffer, _sendBuffer.Length * 2);
        }
        _sendLength += TransactionCodec.Encode(in tx, _sendBuffer.AsSpan(_sendLength));
    }

    /// <summary>Starts a flush unless one is running; a running flush picks up what was appended meanwhile.</summary>
    private void FlushSoon()
    {
        lock (_lock)
        {
            if (_flushing || _sendLength == 0 || _link is null)
            {
                return;
            }
            _flushing = true;
        }
        _ = FlushLoop();
    }

    private async Task FlushLoop()
    {
        while (true)
        {
            EngineLink? link;
            int length;
            lock (_lock)
            {
                link = _link;
                if (_sendLength == 0 || link is null)
                {
                    _flushing = false;
                    return;
                }
                (_sendBuffer, _flushBuffer) = (_flushBuffer, _sendBuffer);
                length = _sendLength;
                _sendLength = 0;
            }
            try
            {
                await link.SendAsync(_flushBuffer.AsMemory(0, length)).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException or IOException or InvalidOperationException)
            {
                // The read loop sees the broken connection and fails over; what was not sent is resent then.
                lock (_lock)
                {
                    _flushing = false;
                }
                return;
            }
        }
    }

    private async Task ReadLoop()
    {
        var buffer = new byte[64 * 1024];
        while (!_disposed.IsCancellationRequested)
        {
            EngineLink link = _link!;
            int filled = 0;
            try
            {
                while (true)
                {
                    int read = await link.ReceiveAsync(buffer.AsMemory(filled), _disposed.Token).ConfigureAwait(false);
                    if (read == 0)
                    {
                        break;
                    }
                    Volatile.Write(ref _lastHeardAt, Environment.TickCount64);
                    filled += read;
                    int offset = 0;
                    while (filled - offset >= 4)
                    {
                        int length = Frame.PeekLength(buffer.AsSpan(offset));
                        if (length < Frame.HeaderBytes || length > Frame.MaxBytes)
                        {
                            throw new InvalidDataException($"the engine sent a frame of {length} bytes");
                        }
                        if (filled - offset < length)
                        {
                            break;
                        }
                        HandleReply(buffer.AsSpan(offset, length));
                        offset += length;
                    }
                    buffer.AsSpan(offset, filled - offset).CopyTo(buffer);
                    filled -= offset;
                    ReleaseAnswered();
                }
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException or InvalidDataException or IOException or InvalidOperationException)
            {
                // Fall through to failover.
            }
            if (_disposed.IsCancellationRequested)
            {
                return;
            }
            await FailOverAsync().ConfigureAwait(false);
        }
    }

    private void HandleReply(ReadOnlySpan<byte> frame)
    {
        if (Frame.Check(frame, out MessageType type, out _) != RejectReason.None)
        {
            return;
        }
        switch (type)
        {
            case MessageType.Accepted when ReplyCodec.DecodeAccepted(frame, out Receipt receipt) == RejectReason.None:
                Complete(receipt.ClientSeq, new SubmitResult(true, receipt, default));
                break;
            case MessageType.Rejected when ReplyCodec.DecodeRejected(frame, out Rejection rejection, _rejectTexts) == RejectReason.None:
                Complete(rejection.ClientSeq, new SubmitResult(false, default, rejection));
                break;
            case MessageType.ExecutionReport when ReplyCodec.DecodeExecutionReport(frame, out ExecutionReport report) == RejectReason.None:
                Executed?.Invoke(report);
                break;
            case MessageType.Heartbeat:
                _heartbeats = true;
                break;
            case MessageType.ProofChunk:
                HandleProofChunk(frame);
                break;
        }
    }

    private void Complete(ulong clientSeq, SubmitResult result)
    {
        TaskCompletionSource<SubmitResult>? answer;
        lock (_lock)
        {
            // A second answer for the same request (the original and a resend's) is dropped here.
            if (!_unanswered.TryComplete(clientSeq, out answer))
            {
                return;
            }
            if (_slotWaiters > 0)
            {
                _slotWaiters--;
                _slotFreed.Release();
            }
            _answeredSinceRelease++;
        }
        Answered?.Invoke(result);
        answer?.TrySetResult(result);
    }

    /// <summary>Frees the window for everything answered in one read: one wake-up of a blocked sender per read, not per answer.</summary>
    private void ReleaseAnswered()
    {
        int released;
        lock (_lock)
        {
            released = _answeredSinceRelease;
            _answeredSinceRelease = 0;
        }
        if (released > 0)
        {
            _window.Release(released);
        }
    }

    private async Task FailOverAsync()
    {
        lock (_lock)
        {
            _link?.Dispose();
            _link = null;
            _sendLength = 0;
        }
        EngineLink link;
        try
        {
            _endpointIndex = (_endpointIndex + 1) % _endpoints.Length;
            link = await ConnectAnyAsync(_disposed.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is EngineUnavailableException or OperationCanceledException or UnauthorizedAccessException)
        {
            FailAll(e.Message);
            await _disposed.CancelAsync().ConfigureAwait(false);
            return;
        }
        lock (_lock)
        {
            // The link becomes usable and the resends are queued under one lock, so no new
            // request can overtake an older one: the engine sees each client's seqs in order.
            // Silence is judged afresh on it (after its first heartbeat).
            _heartbeats = false;
            Volatile.Write(ref _lastHeardAt, Environment.TickCount64);
            _link = link;
            // Resend everything unanswered, oldest first, with its original clientSeq.
            long now = Environment.TickCount64;
            for (ulong seq = _unanswered.OldestUnanswered; seq <= _unanswered.LastSeq; seq++)
            {
                if (_unanswered.TryResend(seq, now, out Transaction tx))
                {
                    AppendFrame(in tx);
                }
            }
            // And every proof still waiting, from its first byte (the new primary makes its own).
            foreach ((ulong id, ProofWait wait) in _proofs)
            {
                AppendProofRequest(id, wait);
            }
        }
        Reconnected?.Invoke(Endpoint, LastClientSeqAtLogon);
        FlushSoon();
    }

    private async Task<EngineLink> ConnectAnyAsync(CancellationToken cancel)
    {
        var deadline = DateTime.UtcNow + _options.ReconnectFor;
        // Short and capped: during a takeover the new primary opens within tens of milliseconds,
        // and a refused connect on loopback costs microseconds.
        var backoff = TimeSpan.FromMilliseconds(5);
        string lastError = "no endpoint";
        while (DateTime.UtcNow < deadline)
        {
            // One round: every endpoint once, in order from the current one, except that a node
            // answering "not primary" may name the one to try next, and one just left for silence
            // (frozen: its port still takes a connection, and the logon would wait out the timeout).
            var round = new EndpointRound(_endpoints.Length, _endpointIndex, Environment.TickCount64 < _avoidUntil ? _avoid : -1);
            while (true)
            {
                int index = round.Current;
                int named = -1;
                try
                {
                    EngineLink link = await LogonAsync(index, cancel).ConfigureAwait(false);
                    _endpointIndex = index;
                    return link;
                }
                catch (NotPrimaryException e)
                {
                    lastError = $"{_endpoints[index]}: {e.Message}";
                    named = e.OtherNode is { } other ? Array.IndexOf(_endpoints, other) : -1;
                }
                catch (Exception e) when (e is SocketException or TimeoutException or IOException or InvalidDataException or AuthenticationException or RetryLaterException)
                {
                    lastError = $"{_endpoints[index]}: {e.Message}";
                }
                if (!round.MoveNext(named))
                {
                    break;
                }
            }
            await Task.Delay(backoff, cancel).ConfigureAwait(false);
            // While a node is avoided the other is about to take over: ask it often.
            backoff = TimeSpan.FromMilliseconds(Math.Min(backoff.TotalMilliseconds * 2, Environment.TickCount64 < _avoidUntil ? 20 : 100));
        }
        throw new EngineUnavailableException($"no engine endpoint took a logon within {_options.ReconnectFor.TotalSeconds} s (last: {lastError})");
    }

    private async Task<EngineLink> LogonAsync(int index, CancellationToken cancel)
    {
        IPEndPoint endpoint = _endpoints[index];
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        EngineLink? link = null;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            timeout.CancelAfter(_options.ConnectTimeout);
            await socket.ConnectAsync(endpoint, timeout.Token).ConfigureAwait(false);
            SslStream? tls = null;
            if (_options.Tls is { } tlsOptions)
            {
                tls = new SslStream(new NetworkStream(socket, ownsSocket: false), leaveInnerStreamOpen: false);
                link = new EngineLink(socket, tls);
                await tls.AuthenticateAsClientAsync(tlsOptions.ForHost(_hosts[index], _trusted), timeout.Token).ConfigureAwait(false);
            }
            link ??= new EngineLink(socket, null);
            var frame = new byte[ReplyCodec.MaxFrameBytes];
            int length = ReplyCodec.EncodeLogon(_options.ClientId, _options.Token, frame, _options.HeartbeatMs);
            await link.SendAsync(frame.AsMemory(0, length), timeout.Token).ConfigureAwait(false);
            int expected = Frame.HeaderBytes + ReplyCodec.LogonAckBodyBytes;
            int got = 0;
            while (got < expected)
            {
                int read = await link.ReceiveAsync(frame.AsMemory(got, expected - got), timeout.Token).ConfigureAwait(false);
                if (read == 0)
                {
                    throw new IOException("the engine closed the connection during logon");
                }
                got += read;
            }
            if (ReplyCodec.DecodeLogonAck(frame.AsSpan(0, expected), out LogonAck ack) != RejectReason.None)
            {
                throw new InvalidDataException("the engine's logon answer is malformed");
            }
            switch (ack.Status)
            {
                case LogonStatus.Ok:
                    LastClientSeqAtLogon = ack.LastClientSeq;
                    return link;
                case LogonStatus.NotPrimary:
                    throw new NotPrimaryException(ack.OtherNode);
                case LogonStatus.Throttled:
                    throw new RetryLaterException("the engine refuses this address for a while (too many failed logons from it)");
                case LogonStatus.Unavailable:
                    throw new RetryLaterException("the engine has no room for another session now");
                case LogonStatus.ClientDisabled:
                    throw new UnauthorizedAccessException($"client {_options.ClientId} is not enabled in the engine's ledger (disabled, or never added): an operator's `engine admin client-add` enables it");
                case LogonStatus.TlsRequired:
                    throw new UnauthorizedAccessException($"the engine at {endpoint} requires TLS: set ClientOptions.Tls");
                default:
                    throw new UnauthorizedAccessException($"the engine refused client {_options.ClientId}: {ack.Status}");
            }
        }
        catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
        {
            Dispose();
            throw new TimeoutException($"no logon answer within {_options.ConnectTimeout.TotalMilliseconds} ms");
        }
        catch
        {
            Dispose();
            throw;
        }

        void Dispose()
        {
            if (link is not null)
            {
                link.Dispose();
            }
            else
            {
                socket.Dispose();
            }
        }
    }

    private void FailAll(string why)
    {
        List<TaskCompletionSource<SubmitResult>> failed;
        lock (_lock)
        {
            failed = _unanswered.Clear();
            if (_slotWaiters > 0)
            {
                _slotFreed.Release(_slotWaiters);
                _slotWaiters = 0;
            }
        }
        foreach (var answer in failed)
        {
            answer.TrySetException(new EngineUnavailableException(why));
        }
        List<ProofWait> proofs;
        lock (_lock)
        {
            proofs = [.. _proofs.Values];
        }
        foreach (ProofWait wait in proofs)
        {
            wait.Answer.TrySetException(new EngineUnavailableException(why));
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_watchdog is not null)
        {
            await _watchdog.DisposeAsync().ConfigureAwait(false);
        }
        await _disposed.CancelAsync().ConfigureAwait(false);
        lock (_lock)
        {
            _link?.Dispose();
            _link = null;
        }
        if (_readLoop is not null)
        {
            await _readLoop.ConfigureAwait(false);
        }
        FailAll("the client was disposed");
        _disposed.Dispose();
    }

    /// <summary>
    /// A stalled engine (a long pause, SIGSTOP) or a cut link never closes the socket: when a
    /// heartbeating engine has said nothing for <see cref="ClientOptions.SilenceTimeout"/>, or the oldest
    /// request has waited longer than <see cref="ClientOptions.AnswerTimeout"/>, drop the connection
    /// so that the read loop fails over.
    /// </summary>
    private void CheckAnswerTimeout()
    {
        EngineLink? stale = null;
        long now = Environment.TickCount64;
        lock (_lock)
        {
            if (_link is null)
            {
                return;
            }
            long silence = (long)_options.SilenceTimeout.TotalMilliseconds;
            if (silence > 0 && _heartbeats && now - Volatile.Read(ref _lastHeardAt) > silence)
            {
                // A heartbeating engine said nothing for the silence timeout: gone or frozen.
                stale = _link;
                _avoid = _endpointIndex;
                _avoidUntil = now + (2 * silence);
                Interlocked.Increment(ref _silenceFailovers);
            }
            else if (_unanswered.InFlight > 0 && _unanswered.OldestOverdue(now, (long)_options.AnswerTimeout.TotalMilliseconds))
            {
                stale = _link;
            }
        }
        stale?.Abort();
    }

    private sealed class NotPrimaryException(IPEndPoint? otherNode)
        : Exception(otherNode is null ? "the node is not the primary" : $"the node is not the primary (it names {otherNode})")
    {
        public IPEndPoint? OtherNode { get; } = otherNode;
    }

    /// <summary>A refusal that may pass: throttled, no room. The client goes on to the next endpoint and retries.</summary>
    private sealed class RetryLaterException(string message) : Exception(message);
}
