using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Core.Ledger;
using Engine.Core.Server;
using Engine.Protocol;

namespace Engine.Replication;

/// <summary>
/// The primary's end of the pair: listens on the node's replication endpoint for a backup, checks
/// where the backup's chain ends, sends it every block it lacks from the journal (catch-up), then
/// streams every sealed block live and collects the acknowledgements. One backup at a time.
/// </summary>
/// <remarks>
/// <para>The catch-up meets the live stream without a gap or an overlap: when a backup attaches,
/// under the hub's lock, the hub notes the last block the sealer handed it (every block up to it is
/// in the journal, since the sealer appends before it mirrors) and from then on queues live blocks
/// for that backup; the catch-up sends the journal's blocks up to that number, then the queue.</para>
/// <para>The ack gate: with a backup in step, <see cref="WaitAcked"/> waits for its ack. Without
/// one, a hub with the solo lease lets everything through (a catch-up never stalls live traffic);
/// without the lease it waits: nothing is acknowledged that only one process holds.</para>
/// </remarks>
public sealed class MirrorHub : IBlockMirror, IAsyncDisposable
{
    /// <summary>Blocks queued for the backup and not yet sent, at most: the sealer waits beyond it.</summary>
    public const int MaxPendingBytes = 16 << 20;

    /// <summary>Uncompressed bytes of Block frames per LZ4 batch of the catch-up (well under a frame's 1 MiB once compressed).</summary>
    public const int CatchUpBatchBytes = 256 << 10;

    private readonly Socket _listener;
    private readonly Journal _journal;
    private readonly Action<string> _log;
    private readonly object _gate = new();
    private readonly CancellationTokenSource _stop = new();
    private BackupLink? _link;
    private ulong _lastSealedBlockNo;
    private ulong _ackedBlockNo;
    private Task? _acceptLoop;
    private bool _stopping;

    // Set once by Halt, under _gate: this node's journal or pipeline failed. _inStepAtHalt: whether a
    // backup was in step at that moment (it decides the lease from then on, see WantsLease).
    private volatile bool _halted;
    private bool _inStepAtHalt;

    public MirrorHub(IPEndPoint listen, Journal journal, ChainHead head, ISoloLease lease, Action<string> log, ulong? epoch = null)
    {
        Epoch = epoch ?? head.Epoch;
        _journal = journal;
        _log = log;
        Lease = lease;
        _lastSealedBlockNo = head.BlockNo;
        _ackedBlockNo = head.BlockNo;
        _listener = Listener.Bind(listen, backlog: 4);
    }

    /// <summary>Whether this primary may acknowledge without a backup in step: the operator's or the witness's solo lease.</summary>
    public ISoloLease Lease { get; set; }

    private bool Solo => Lease.Held;

    public bool IsConnected => Volatile.Read(ref _link)?.InStep == true;

    /// <summary>True once the node is stopping.</summary>
    public bool IsStopping => _stop.IsCancellationRequested;

    /// <summary>The epoch this primary seals in: told to every node that attaches (an old primary learns it and steps down).</summary>
    public ulong Epoch { get; }

    /// <summary>Not connected and not solo, or halted: the gateway answers "no backup".</summary>
    public bool MayAcknowledge => !_halted && (Solo || IsConnected);

    /// <summary>True once <see cref="Halt"/> was called: the link is closed for good.</summary>
    public bool IsHalted => _halted;

    /// <summary>
    /// Whether this node wants the witness's solo lease now: while no backup is in step. Once halted,
    /// what it was at the halt, for good: a primary whose backup was in step must not take the lease
    /// when its link closes (the backup, which holds everything, needs it to take over), and one that
    /// was acknowledging alone must not give it back (the backup lacks what it acknowledged).
    /// </summary>
    public bool WantsLease
    {
        get
        {
            lock (_gate)
            {
                return _halted ? !_inStepAtHalt : _link?.InStep != true;
            }
        }
    }

    /// <summary>
    /// This node's journal or pipeline failed: fall silent on the link for good. The backup's link is
    /// closed at once (it sees the connection end and takes over, without waiting for the silence
    /// timeout), no backup is taken any more (the replication endpoint is closed), nothing more passes
    /// the ack gate, and the lease stays as it was (see <see cref="WantsLease"/>). Idempotent.
    /// </summary>
    public void Halt(string reason)
    {
        BackupLink? link;
        lock (_gate)
        {
            if (_halted)
            {
                return;
            }
            _inStepAtHalt = _link?.InStep == true;
            _halted = true;
            link = _link;
            _link = null; // so the close below is no "lost the backup" (which would nudge the lease)
            Monitor.PulseAll(_gate);
        }
        _listener.Dispose();
        link?.Close($"this node halted: {reason}");
        _log($"halted ({reason}): the backup's link is closed{(link is null ? " (there was none)" : "")} and no backup is taken any more");
    }

    public void Start() => _acceptLoop = Task.Run(AcceptLoop, CancellationToken.None);

    public void Send(ReadOnlySpan<byte> block, ulong blockNo)
    {
        lock (_gate)
        {
            _lastSealedBlockNo = blockNo;
            _link?.Enqueue(ReplicationType.Block, block);
        }
    }

    public void SendStateChecksum(ulong blockNo, Hash32 checksum)
    {
        Span<byte> payload = stackalloc byte[ReplicationFrame.AckBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(payload, blockNo);
        ((ReadOnlySpan<byte>)checksum).CopyTo(payload[8..]);
        lock (_gate)
        {
            _link?.Enqueue(ReplicationType.StateChecksum, payload);
        }
    }

    public void WaitAcked(ulong blockNo)
    {
        lock (_gate)
        {
            while (true)
            {
                BackupLink? link = _link;
                if (_ackedBlockNo >= blockNo || (!_halted && Solo && link?.InStep != true))
                {
                    return;
                }
                if (_halted)
                {
                    throw new OperationCanceledException($"halted: block {blockNo} was never acknowledged by a backup");
                }
                if (_stop.IsCancellationRequested || (_stopping && link?.InStep != true))
                {
                    throw new OperationCanceledException($"stopping: block {blockNo} was never acknowledged by a backup");
                }
                Monitor.Wait(_gate, 100);
            }
        }
    }

    /// <summary>The solo lease was just granted: blocks waiting at the ack gate may go now.</summary>
    public void LeaseGranted()
    {
        lock (_gate)
        {
            Monitor.PulseAll(_gate);
        }
    }

    public void BeginStop()
    {
        lock (_gate)
        {
            _stopping = true;
            Monitor.PulseAll(_gate);
        }
    }

    internal void Acked(ulong blockNo)
    {
        lock (_gate)
        {
            if (blockNo > _ackedBlockNo)
            {
                _ackedBlockNo = blockNo;
            }
            Monitor.PulseAll(_gate);
        }
    }

    internal void Detach(BackupLink link, string why)
    {
        lock (_gate)
        {
            if (_link != link)
            {
                return;
            }
            _link = null;
            Monitor.PulseAll(_gate);
        }
        Lease.Nudge();
        if (!_stop.IsCancellationRequested)
        {
            _log($"lost the backup ({why}): {(Solo ? "acknowledging alone (solo lease)" : "acknowledging nothing until a backup is back in step")}");
        }
    }

    /// <summary>
    /// One connection at a time: the handshake, and for a backup the whole catch-up. Whatever goes
    /// wrong with one connection is logged and the loop goes on (it must never end but at the stop).
    /// </summary>
    private Task AcceptLoop() => Listener.AcceptAllAsync(_listener, async socket =>
    {
        try
        {
            await AttachAsync(socket).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or IOException or InvalidDataException or OperationCanceledException or ObjectDisposedException)
        {
            _log($"a backup's attach failed: {e.Message}");
            socket.Dispose();
        }
    }, _stop.Token);

    /// <summary>Handshake, catch-up from the journal, then live.</summary>
    private async Task AttachAsync(Socket socket)
    {
        var buffer = new byte[ReplicationFrame.HeaderBytes + ReplicationFrame.HelloBytes];
        (ReplicationType Type, int PayloadLength)? hello;
        using (var answer = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token))
        {
            // A node sends its Hello as soon as it connects; one that does not must not hold up the
            // accept loop (connections are served one at a time).
            answer.CancelAfter(4 * PairTimings.SilenceMs);
            hello = await ReplicationFrame.ReadAsync(socket, buffer, answer.Token).ConfigureAwait(false);
        }
        if (hello is not { Type: ReplicationType.Hello })
        {
            socket.Dispose();
            return;
        }
        ChainHead theirs = ReplicationFrame.ReadHello(buffer.AsSpan(ReplicationFrame.HeaderBytes, hello.Value.PayloadLength), out byte intent, out uint nodeId);
        if (intent == ReplicationFrame.ProbeOnly)
        {
            // Someone asking who is primary (an old primary coming back): answer with our epoch, attach nothing.
            ChainHead answer = new(Epoch, _lastSealedBlockNo, 0, default);
            await socket.SendAsync(ReplicationFrame.Hello(ReplicationType.HelloAck, 0, in answer), SocketFlags.None, _stop.Token).ConfigureAwait(false);
            socket.Dispose();
            return;
        }

        // Where does the backup's chain end on ours? Only a backup whose head is one of our blocks
        // can catch up; anything else has a suffix we never acknowledged and must start over.
        _journal.Flush();
        bool onOurChain = false;
        _journal.Scan((entry, _) =>
        {
            BlockFormat.TryReadHeader(entry, out BlockHeader header);
            if (header.BlockNo == theirs.BlockNo)
            {
                onOurChain = BlockFormat.StoredHash(entry, in header) == theirs.Hash;
                return false;
            }
            return true;
        });
        ChainHead ours = new(Epoch, _lastSealedBlockNo, 0, default);
        await socket.SendAsync(ReplicationFrame.Hello(ReplicationType.HelloAck, onOurChain ? (byte)0 : (byte)1, in ours), SocketFlags.None, _stop.Token).ConfigureAwait(false);
        if (!onOurChain)
        {
            _log($"a backup whose chain ends at {theirs} is not on ours: it must discard its journal and catch up from genesis");
            socket.Dispose();
            return;
        }

        var link = new BackupLink(this, socket, _log);
        ulong catchUpTo;
        lock (_gate)
        {
            if (_halted)
            {
                link.Dispose(); // halted meanwhile: no backup any more
                return;
            }
            _link?.Close("replaced by a new backup");
            _link = link;
            catchUpTo = _lastSealedBlockNo; // later blocks queue on the link until the catch-up is sent
        }
        _journal.Flush();
        long sent = 0;
        long rawBytes = 0;
        long wireBytes = 0;
        var batch = new byte[CatchUpBatchBytes];
        int batched = 0;
        var compressed = new byte[ReplicationFrame.HeaderBytes + 4 + K4os.Compression.LZ4.LZ4Codec.MaximumOutputSize(CatchUpBatchBytes)];
        var heartbeat = new byte[ReplicationFrame.HeaderBytes];
        ReplicationFrame.Write(heartbeat, ReplicationType.Heartbeat, []);
        long lastSent = Environment.TickCount64;
        void FlushBatch()
        {
            if (batched == 0)
            {
                return;
            }
            // The catch-up goes compressed: whole Block frames, LZ4 in one go per batch.
            Span<byte> payload = compressed.AsSpan(ReplicationFrame.HeaderBytes);
            BinaryPrimitives.WriteUInt32LittleEndian(payload, (uint)batched);
            int packed = K4os.Compression.LZ4.LZ4Codec.Encode(batch.AsSpan(0, batched), payload[4..], K4os.Compression.LZ4.LZ4Level.L00_FAST);
            int length = ReplicationFrame.Write(compressed, ReplicationType.CatchUpBatch, compressed.AsSpan(ReplicationFrame.HeaderBytes, 4 + packed).ToArray());
            link.SendNow(compressed.AsSpan(0, length));
            rawBytes += batched;
            wireBytes += length;
            batched = 0;
            lastSent = Environment.TickCount64;
        }
        _journal.Scan((entry, _) =>
        {
            BlockFormat.TryReadHeader(entry, out BlockHeader header);
            if (header.BlockNo > catchUpTo)
            {
                return false;
            }
            if (header.BlockNo > theirs.BlockNo)
            {
                if (batched + ReplicationFrame.HeaderBytes + entry.Length > batch.Length)
                {
                    FlushBatch();
                }
                batched += ReplicationFrame.Write(batch.AsSpan(batched), ReplicationType.Block, entry);
                sent++;
            }
            else if (Environment.TickCount64 - lastSent >= PairTimings.HeartbeatMs)
            {
                // Still skipping what the backup has: keep it from taking the silence for a death.
                link.SendNow(heartbeat);
                lastSent = Environment.TickCount64;
            }
            return true;
        });
        FlushBatch();
        var caughtUp = new byte[ReplicationFrame.HeaderBytes];
        ReplicationFrame.Write(caughtUp, ReplicationType.CaughtUp, []);
        link.SendNow(caughtUp);
        link.GoLive();
        Lease.Nudge(); // a backup in step: a solo lease goes back to the witness now, not at the next renewal
        _log($"backup node {nodeId:x8} at {socket.RemoteEndPoint} caught up: {sent:N0} blocks from block {theirs.BlockNo + 1} to {catchUpTo} ({rawBytes:N0} bytes as {wireBytes:N0} with LZ4); mirroring live");
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        lock (_gate)
        {
            Monitor.PulseAll(_gate);
        }
        _listener.Dispose();
        BackupLink? link = _link;
        link?.Close("the node is stopping");
        if (_acceptLoop is not null)
        {
            await _acceptLoop.ConfigureAwait(false);
        }
        if (Lease is IAsyncDisposable lease)
        {
            await lease.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>One attached backup: a queue of frames (held back during catch-up), a writer, an ack reader, heartbeats.</summary>
    internal sealed class BackupLink : IDisposable
    {
        private readonly MirrorHub _hub;
        private readonly Socket _socket;
        private readonly Action<string> _log;
        private readonly object _sendLock = new();
        private readonly SemaphoreSlim _sendWanted = new(0, int.MaxValue);
        private byte[] _pending = new byte[MaxPendingBytes];
        private byte[] _sending = new byte[MaxPendingBytes];
        private int _pendingLength;
        private bool _live;
        private volatile bool _closed;
        private long _lastSentTicks = Environment.TickCount64;
        private long _lastHeardTicks = Environment.TickCount64;

        public BackupLink(MirrorHub hub, Socket socket, Action<string> log)
        {
            _hub = hub;
            _socket = socket;
            _log = log;
            _ = Task.Run(ReadAcks, CancellationToken.None);
            _ = Task.Run(Heartbeats, CancellationToken.None);
        }

        public bool InStep => _live && !_closed;

        /// <summary>Catch-up: a frame straight to the socket (blocking; the attach task runs it).</summary>
        /// <summary>Sends at once (the catch-up); throws once the link is closed, so a catch-up for a link that is gone stops.</summary>
        public void SendNow(ReadOnlySpan<byte> frame)
        {
            int sent = 0;
            try
            {
                while (sent < frame.Length)
                {
                    if (_closed)
                    {
                        throw new IOException("the backup link was closed");
                    }
                    sent += _socket.Send(frame[sent..]);
                }
            }
            catch (ObjectDisposedException)
            {
                throw new IOException("the backup link was closed");
            }
            Volatile.Write(ref _lastSentTicks, Environment.TickCount64);
        }

        public void Enqueue(ReplicationType type, ReadOnlySpan<byte> payload)
        {
            int frameBytes = ReplicationFrame.HeaderBytes + payload.Length;
            lock (_sendLock)
            {
                while (_pendingLength + frameBytes > _pending.Length && !_closed)
                {
                    Monitor.Wait(_sendLock, 10);
                }
                if (_closed)
                {
                    return;
                }
                ReplicationFrame.Write(_pending.AsSpan(_pendingLength), type, payload);
                _pendingLength += frameBytes;
            }
            Signal();
        }

        /// <summary>The catch-up is on the wire: send what queued meanwhile, and everything from now on.</summary>
        public void GoLive()
        {
            lock (_sendLock)
            {
                _live = true;
            }
            _ = Task.Run(WriteLoop, CancellationToken.None);
            Signal();
        }

        private void Signal() => _sendWanted.Release();

        private async Task WriteLoop()
        {
            try
            {
                while (!_closed)
                {
                    await _sendWanted.WaitAsync().ConfigureAwait(false);
                    int length;
                    lock (_sendLock)
                    {
                        if (!_live)
                        {
                            continue;
                        }
                        (_pending, _sending) = (_sending, _pending);
                        length = _pendingLength;
                        _pendingLength = 0;
                        Monitor.PulseAll(_sendLock);
                    }
                    int sent = 0;
                    while (sent < length)
                    {
                        sent += await _socket.SendAsync(_sending.AsMemory(sent, length - sent), SocketFlags.None).ConfigureAwait(false);
                    }
                    if (length > 0)
                    {
                        Volatile.Write(ref _lastSentTicks, Environment.TickCount64);
                    }
                }
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                Close($"send failed: {e.Message}");
            }
        }

        private async Task ReadAcks()
        {
            var buffer = new byte[ReplicationFrame.HeaderBytes + ReplicationFrame.AckBytes];
            try
            {
                while (!_closed)
                {
                    var frame = await ReplicationFrame.ReadAsync(_socket, buffer, CancellationToken.None).ConfigureAwait(false);
                    if (frame is null)
                    {
                        Close("the backup closed the link");
                        return;
                    }
                    Volatile.Write(ref _lastHeardTicks, Environment.TickCount64);
                    if (frame.Value.Type == ReplicationType.Ack)
                    {
                        _hub.Acked(BinaryPrimitives.ReadUInt64LittleEndian(buffer.AsSpan(ReplicationFrame.HeaderBytes)));
                    }
                }
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException or InvalidDataException)
            {
                Close($"receive failed: {e.Message}");
            }
        }

        private async Task Heartbeats()
        {
            while (!_closed)
            {
                await Task.Delay(PairTimings.HeartbeatMs / 2).ConfigureAwait(false);
                long now = Environment.TickCount64;
                if (now - Volatile.Read(ref _lastHeardTicks) > PairTimings.SilenceMs)
                {
                    Close($"the backup has been silent for {PairTimings.SilenceMs} ms");
                    return;
                }
                if (_live && now - Volatile.Read(ref _lastSentTicks) >= PairTimings.HeartbeatMs)
                {
                    Enqueue(ReplicationType.Heartbeat, []);
                }
            }
        }

        public void Dispose() => Close("disposed");

        public void Close(string why)
        {
            if (_closed)
            {
                return;
            }
            _closed = true;
            lock (_sendLock)
            {
                Monitor.PulseAll(_sendLock);
            }
            _socket.Dispose();
            _sendWanted.Release();
            _hub.Detach(this, why);
        }
    }
}
