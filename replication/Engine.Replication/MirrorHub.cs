using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Core.Ledger;
using Engine.Core.Server;
using Engine.Protocol;
using Engine.Security;

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
/// <para>Trust: every connection is a <see cref="SecureChannel"/> handshake first (up to
/// <see cref="MaxHandshakes"/> at once, each within <see cref="SecureChannel.DefaultHandshakeTimeout"/>,
/// beside the accept loop, which never waits for one), and only a principal of a role in
/// <see cref="BackupRoles"/> gets further: to the serialized attach, where the hub scans its journal
/// for the joiner's head. Nothing a connection sends ends the accept loop: every failure is that
/// connection's, logged (rate-limited per source) and closed. An acknowledgement counts only if it
/// names a block sent on that same link, with that block's hash (<see cref="SentBlocks"/>); ack state
/// is the link's, so a new link starts with none, and anything else resets the link.</para>
/// </remarks>
public sealed class MirrorHub : IBlockMirror, IAsyncDisposable
{
    /// <summary>Blocks queued for the backup and not yet sent, at most: the sealer waits beyond it.</summary>
    public const int MaxPendingBytes = 16 << 20;


    /// <summary>Handshakes under way at once, at most; a connection past it is closed at once (strangers cannot queue up the real backup).</summary>
    public const int MaxHandshakes = 8;

    /// <summary>Blocks sent on one link and not yet acknowledged, at most; past it the link is reset (its backup has stopped acknowledging).</summary>
    public const int MaxUnackedBlocks = 1 << 18;

    /// <summary>
    /// The roles that may attach as a backup: nodes. An observer (a later issue: a read-only follower,
    /// never counted for acknowledgements) is refused at the handshake for now; when it comes, it is
    /// accepted here and served by its own kind of link in <see cref="AttachAsync"/>, never a
    /// <see cref="BackupLink"/>.
    /// </summary>
    public static readonly IReadOnlyCollection<PrincipalRole> BackupRoles = [PrincipalRole.Node];

    private readonly Socket _listener;
    private readonly Journal _journal;
    private readonly ClusterCredentials _credentials;
    private readonly PairSettings _settings;
    private readonly Action<PairEvent> _log;
    private readonly RefusalLog _refusals;
    private readonly object _gate = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _attach = new(1, 1);
    private int _handshakes;
    private BackupLink? _link;
    private ulong _lastSealedBlockNo;
    private ulong _ackedBlockNo;
    private Task? _acceptLoop;
    private bool _stopping;

    // Set once by Halt, under _gate: this node's journal or pipeline failed. _inStepAtHalt: whether a
    // backup was in step at that moment (it decides the lease from then on, see WantsLease).
    private volatile bool _halted;
    private bool _inStepAtHalt;

    /// <param name="listen">The replication endpoint.</param>
    /// <param name="journal">This node's journal.</param>
    /// <param name="head">Where the journal ends.</param>
    /// <param name="credentials">This node's principal: it proves it to every joiner and checks theirs.</param>
    /// <param name="settings">The pair's clocks.</param>
    /// <param name="lease">The solo lease.</param>
    /// <param name="log">Where the link's events are told.</param>
    /// <param name="epoch">The epoch this primary seals in (default: the head's).</param>
    public MirrorHub(IPEndPoint listen, Journal journal, ChainHead head, ClusterCredentials credentials, PairSettings settings, ISoloLease lease, Action<PairEvent> log, ulong? epoch = null)
    {
        _settings = settings;
        Epoch = epoch ?? head.Epoch;
        _journal = journal;
        _credentials = credentials;
        _log = log;
        _refusals = new RefusalLog(line => log(new PairEvent(PairEventKind.Refused, line)), "replication endpoint");
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
    /// Whether this node wants the witness's solo lease now: until a backup holds everything this node
    /// acknowledged alone, that is until it has acknowledged the end of its catch-up (a catch-up sent is
    /// not a catch-up received: given back on sending, the lease would let a backup that never got it
    /// take over without the blocks acknowledged alone; found by the simulator). Once halted, what it
    /// was at the halt, for good: a primary whose backup was in step must not take the lease when its
    /// link closes (the backup, which holds everything, needs it to take over), and one that was
    /// acknowledging alone must not give it back (the backup lacks what it acknowledged).
    /// </summary>
    public bool WantsLease
    {
        get
        {
            lock (_gate)
            {
                return _halted ? !_inStepAtHalt : _link is not { InStep: true, HoldsEverything: true };
            }
        }
    }

    /// <summary>
    /// Set by the host: a joining backup's chain ends in a later epoch than ours, so another node took
    /// over since and this one is an old primary (cut off until now). It must step down; the backup is
    /// refused, never told to discard what the new primary acknowledged.
    /// </summary>
    public Action<ulong>? HigherEpochSeen { get; set; }

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
            _inStepAtHalt = _link is { InStep: true, HoldsEverything: true };
            _halted = true;
            link = _link;
            _link = null; // so the close below is no "lost the backup" (which would nudge the lease)
            Monitor.PulseAll(_gate);
        }
        _listener.Dispose();
        link?.Close($"this node halted: {reason}");
        _log(new PairEvent(PairEventKind.Halted, $"halted ({reason}): the backup's link is closed{(link is null ? " (there was none)" : "")} and no backup is taken any more", Epoch, _lastSealedBlockNo));
    }

    public void Start() => _acceptLoop = Task.Run(AcceptLoop, CancellationToken.None);

    /// <summary>Connections refused or closed for what they sent, so far (strangers, protocol violations).</summary>
    public long Refusals => _refusals.Count;

    public void Send(ReadOnlySpan<byte> block, ulong blockNo)
    {
        lock (_gate)
        {
            _lastSealedBlockNo = blockNo;
            _link?.EnqueueBlock(block, blockNo);
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

    /// <summary>
    /// <paramref name="link"/> verified an ack for <paramref name="blockNo"/> (a block it carried, with
    /// its hash). Only the current link moves the gate; the position only rises.
    /// </summary>
    internal void Acked(BackupLink link, ulong blockNo)
    {
        bool nowHoldsEverything = false;
        lock (_gate)
        {
            if (_link == link && blockNo > _ackedBlockNo)
            {
                _ackedBlockNo = blockNo;
            }
            if (_link == link && !link.HoldsEverything && blockNo >= link.CatchUpTo)
            {
                link.HoldsEverything = true;
                nowHoldsEverything = true;
            }
            Monitor.PulseAll(_gate);
        }
        if (nowHoldsEverything)
        {
            Lease.Nudge(); // the backup holds everything acknowledged alone: the lease goes back now
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
            _log(new PairEvent(PairEventKind.BackupLost, $"lost the backup ({why}): {(Solo ? "acknowledging alone (solo lease)" : "acknowledging nothing until a backup is back in step")}", Epoch, Volatile.Read(ref _ackedBlockNo)));
        }
    }

    /// <summary>
    /// Accepts connections and hands each to its own handshake (at most <see cref="MaxHandshakes"/> at
    /// once), so a stranger never holds the loop; authenticated peers then attach one at a time.
    /// </summary>
    private Task AcceptLoop() => Listener.AcceptAllAsync(_listener, socket =>
    {
        if (Interlocked.Increment(ref _handshakes) > MaxHandshakes)
        {
            Interlocked.Decrement(ref _handshakes);
            _refusals.Refused(RemoteOf(socket), $"busy: {MaxHandshakes} handshakes under way");
            socket.Dispose();
            return Task.CompletedTask;
        }
        _ = Task.Run(() => ServeAsync(socket), CancellationToken.None);
        return Task.CompletedTask;
    }, _stop.Token);

    /// <summary>One connection: the handshake, then (authenticated) the attach, one at a time. Whatever goes wrong stays with this connection.</summary>
    private async Task ServeAsync(Socket socket)
    {
        EndPoint? remote = RemoteOf(socket);
        ReplicationLink? link = null;
        bool attached = false;
        try
        {
            AcceptOutcome outcome;
            try
            {
                outcome = await SecureChannel.AcceptAsync(socket, _credentials, LinkPurpose.Replication, BackupRoles, cancel: _stop.Token).ConfigureAwait(false);
            }
            finally
            {
                Interlocked.Decrement(ref _handshakes);
            }
            if (!outcome.Accepted)
            {
                _refusals.Refused(remote, outcome.Refusal!.Detail);
                return;
            }
            // The backup sends acks and heartbeats, in records of one frame each: small buffers suffice,
            // and a bigger record from it is a violation that closes the link.
            link = new ReplicationLink(outcome.Channel!, ReplicationFrame.HeaderBytes + ReplicationFrame.HelloBytes, 4096);
            await _attach.WaitAsync(_stop.Token).ConfigureAwait(false);
            try
            {
                attached = await AttachAsync(link, remote).ConfigureAwait(false); // then the backup link owns it
            }
            finally
            {
                _attach.Release();
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            // Stopping.
        }
#pragma warning disable CA1031 // One connection's failure, whatever it is, must never stop the endpoint or reach another connection.
        catch (Exception e)
#pragma warning restore CA1031
        {
            _refusals.Refused(remote, $"closed{(link is null ? "" : $" {link.Peer.Name}")}: {e.GetType().Name}: {e.Message}");
        }
        finally
        {
            if (!attached)
            {
                link?.Dispose();
                socket.Dispose();
            }
        }
    }

    private static EndPoint? RemoteOf(Socket socket)
    {
        try
        {
            return socket.RemoteEndPoint;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return null;
        }
    }

    /// <summary>Hello (or a probe), catch-up from the journal, then live. True if a backup link now owns <paramref name="link"/>.</summary>
    private async Task<bool> AttachAsync(ReplicationLink link, EndPoint? remote)
    {
        (ReplicationType Type, ReadOnlyMemory<byte> Payload)? hello;
        using (var answer = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token))
        {
            // A node sends its Hello as soon as it is authenticated; one that does not must not hold up
            // the attach of others (they are served one at a time).
            answer.CancelAfter(_settings.HelloWaitMs);
            try
            {
                hello = await link.ReadAsync(answer.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!_stop.IsCancellationRequested)
            {
                _refusals.Refused(remote, $"closed {link.Peer.Name}: no hello within {_settings.HelloWaitMs} ms");
                return false;
            }
        }
        if (hello is null)
        {
            return false;
        }
        if (hello.Value.Type != ReplicationType.Hello)
        {
            _refusals.Refused(remote, $"closed {link.Peer.Name}: a {Describe(hello.Value.Type)} frame where a hello belongs");
            return false;
        }
        ChainHead theirs = ReplicationFrame.ReadHello(hello.Value.Payload.Span, out byte intent); // a wrong length throws: closed, logged
        if (intent == ReplicationFrame.ProbeOnly)
        {
            // Someone asking who is primary (an old primary coming back): answer with our epoch, attach nothing.
            ChainHead answer = new(Epoch, _lastSealedBlockNo, 0, default);
            await link.SendAsync(ReplicationFrame.Hello(ReplicationType.HelloAck, 0, in answer), _stop.Token).ConfigureAwait(false);
            return false;
        }
        if (intent != 0)
        {
            _refusals.Refused(remote, $"closed {link.Peer.Name}: a hello with status {intent}");
            return false;
        }
        if (theirs.Epoch > Epoch)
        {
            // Its chain has blocks of a later epoch: another node took over since, and this one is an old
            // primary cut off until now. Telling it its chain is not on ours would make it discard what
            // the new primary acknowledged (found by the simulator). Refuse it and step down instead.
            _log(new PairEvent(PairEventKind.SteppingDown, $"backup {link.Peer.Name}: its chain ends in epoch {theirs.Epoch}, above ours ({Epoch}): another node took over; refusing it and stepping down", theirs.Epoch, theirs.BlockNo));
            HigherEpochSeen?.Invoke(theirs.Epoch);
            return false;
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
        await link.SendAsync(ReplicationFrame.Hello(ReplicationType.HelloAck, onOurChain ? (byte)0 : (byte)1, in ours), _stop.Token).ConfigureAwait(false);
        if (!onOurChain)
        {
            _log(new PairEvent(PairEventKind.BackupDiverged, $"backup {link.Peer.Name}: its chain ends at {theirs}, which is not on ours: it must discard its journal and catch up from genesis", Epoch, theirs.BlockNo));
            return false;
        }

        ulong catchUpTo;
        BackupLink backup;
        lock (_gate)
        {
            if (_halted)
            {
                link.Dispose(); // halted meanwhile: no backup any more
                return false;
            }
            catchUpTo = _lastSealedBlockNo; // later blocks queue on the link until the catch-up is sent
            backup = new BackupLink(this, link, _log, catchUpTo) { HoldsEverything = catchUpTo <= theirs.BlockNo };
            _link?.Close($"replaced by a new backup ({link.Peer.Name})");
            _link = backup;
        }
        try
        {
            CatchUp(backup, theirs.BlockNo, catchUpTo, out long sent, out long rawBytes, out long wireBytes);
            backup.GoLive();
            Lease.Nudge(); // a backup in step: a solo lease goes back to the witness now, not at the next renewal
            _log(new PairEvent(PairEventKind.BackupInStep, $"backup {link.Peer.Name} at {remote} caught up: {sent:N0} blocks from block {theirs.BlockNo + 1} to {catchUpTo} ({rawBytes:N0} bytes as {wireBytes:N0} with LZ4); mirroring live", Epoch, catchUpTo));
        }
        catch (IOException e)
        {
            // The link was closed (replaced, silent, stopping) or failed: the catch-up stops where it is.
            backup.Close($"the catch-up stopped: {e.Message}");
        }
        return true;
    }

    /// <summary>Sends the journal's blocks after <paramref name="theirs"/> up to <paramref name="catchUpTo"/> as LZ4 batches, then CaughtUp (blocking: the attach task runs it).</summary>
    private void CatchUp(BackupLink link, ulong theirs, ulong catchUpTo, out long sent, out long rawBytes, out long wireBytes)
    {
        _journal.Flush();
        long blocks = 0;
        long raw = 0;
        long wire = 0;
        var batch = new byte[CatchUpBatch.MaxRawBytes];
        int batched = 0;
        ulong batchLastNo = 0;
        Hash32 batchLastHash = default;
        var compressed = new byte[CatchUpBatch.MaxFrameBytes];
        var heartbeat = new byte[ReplicationFrame.HeaderBytes];
        ReplicationFrame.Write(heartbeat, ReplicationType.Heartbeat, []);
        long lastSent = Environment.TickCount64;
        void FlushBatch()
        {
            if (batched == 0)
            {
                return;
            }
            // The catch-up goes compressed: whole Block frames, LZ4 in one go per batch. The backup
            // acks its head after each batch: the batch's last block, noted before it goes.
            int length = CatchUpBatch.Pack(batch.AsSpan(0, batched), compressed);
            link.ExpectCatchUpAck(batchLastNo, in batchLastHash);
            link.SendNow(compressed.AsSpan(0, length));
            raw += batched;
            wire += length;
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
            if (header.BlockNo > theirs)
            {
                if (batched + ReplicationFrame.HeaderBytes + entry.Length > batch.Length)
                {
                    FlushBatch();
                }
                batched += ReplicationFrame.Write(batch.AsSpan(batched), ReplicationType.Block, entry);
                batchLastNo = header.BlockNo;
                batchLastHash = BlockFormat.StoredHash(entry, in header);
                blocks++;
            }
            else if (Environment.TickCount64 - lastSent >= _settings.HeartbeatMs)
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
        sent = blocks;
        rawBytes = raw;
        wireBytes = wire;
    }

    private static string Describe(ReplicationType type) => Enum.IsDefined(type) ? type.ToString() : $"type-{(byte)type}";

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

    /// <summary>
    /// One attached backup: a queue of frames (held back during catch-up), a writer, an ack reader,
    /// heartbeats and the send watchdog, and the blocks it was sent and has not acknowledged.
    /// </summary>
    internal sealed class BackupLink : IDisposable
    {
        private readonly MirrorHub _hub;
        private readonly ReplicationLink _link;
        private readonly Action<PairEvent> _log;
        private readonly object _sendLock = new();
        private readonly SemaphoreSlim _sendWanted = new(0, int.MaxValue);
        private readonly ulong _catchUpTo;

        /// <summary>The last block of the catch-up: once the backup acknowledges it (or a later one), it holds everything this node acknowledged alone.</summary>
        public ulong CatchUpTo => _catchUpTo;

        /// <summary>The backup has acknowledged the end of its catch-up (or needed none). Under the hub's lock.</summary>
        public bool HoldsEverything { get; set; }
        private readonly SentBlocks _catchUpSent = new();
        private readonly SentBlocks _liveSent = new();
        private byte[] _pending = new byte[MaxPendingBytes];
        private byte[] _sending = new byte[MaxPendingBytes];
        private int _pendingLength;
        private bool _live;
        private volatile bool _closed;
        private long _lastSentTicks = Environment.TickCount64;
        private long _lastHeardTicks = Environment.TickCount64;

        /// <summary>
        /// When the send under way started (0: none): a send that makes no progress for
        /// <see cref="PairSettings.MaxSendBlockedMs"/> closes the link: a peer that authenticated and
        /// then never reads must not hold the one backup slot, nor make the sealer wait on a full queue,
        /// for ever. Longer than the silence rule (an honest backup that stops reading for that long has
        /// stopped acking and answering heartbeats too, and was dropped already).
        /// </summary>
        private long _sendingSinceTicks;

        /// <param name="hub">The hub whose backup this is.</param>
        /// <param name="link">The authenticated link; this owns it from now on.</param>
        /// <param name="log">Where the link's events are told.</param>
        /// <param name="catchUpTo">The last block the catch-up sends; acks up to it are checked against the catch-up's batches, later ones against the live blocks.</param>
        public BackupLink(MirrorHub hub, ReplicationLink link, Action<PairEvent> log, ulong catchUpTo)
        {
            _hub = hub;
            _link = link;
            _log = log;
            _catchUpTo = catchUpTo;
            _ = Task.Run(ReadAcks, CancellationToken.None);
            _ = Task.Run(Heartbeats, CancellationToken.None);
        }

        public bool InStep => _live && !_closed;

        /// <summary>The catch-up will send a batch ending at <paramref name="blockNo"/>: the backup acks it after applying it.</summary>
        public void ExpectCatchUpAck(ulong blockNo, in Hash32 hash)
        {
            if (!_catchUpSent.TryAdd(blockNo, in hash))
            {
                Close($"the backup has not acknowledged {MaxUnackedBlocks:N0} batches");
            }
        }

        /// <summary>Sends at once (the catch-up, blocking; the attach task runs it); throws once the link is closed, so a catch-up for a link that is gone stops.</summary>
        public void SendNow(ReadOnlySpan<byte> frame)
        {
            if (_closed)
            {
                throw new IOException("the backup link was closed");
            }
            Volatile.Write(ref _sendingSinceTicks, Environment.TickCount64);
            try
            {
                _link.Send(frame);
            }
            finally
            {
                Volatile.Write(ref _sendingSinceTicks, 0);
            }
            Volatile.Write(ref _lastSentTicks, Environment.TickCount64);
        }

        /// <summary>Queues a live block (the sealer, under the hub's lock) and notes it as sent and not acknowledged.</summary>
        public void EnqueueBlock(ReadOnlySpan<byte> block, ulong blockNo)
        {
            BlockFormat.TryReadHeader(block, out BlockHeader header);
            if (!_liveSent.TryAdd(blockNo, BlockFormat.StoredHash(block, in header)))
            {
                Close($"the backup has not acknowledged {MaxUnackedBlocks:N0} blocks");
                return;
            }
            Enqueue(ReplicationType.Block, block);
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

        /// <summary>
        /// The catch-up is on the wire: send what queued meanwhile, and everything from now on. The
        /// silence rule counts from here, and a heartbeat goes first: a backup that had nothing to catch
        /// up has sent nothing yet (it speaks when spoken to), and the time the attach took (the
        /// journal scan, the catch-up) is the primary's, not the backup's silence.
        /// </summary>
        public void GoLive()
        {
            Volatile.Write(ref _lastHeardTicks, Environment.TickCount64);
            lock (_sendLock)
            {
                _live = true;
            }
            Enqueue(ReplicationType.Heartbeat, []);
            _ = Task.Run(WriteLoop, CancellationToken.None);
        }

        private void Signal() => _sendWanted.Release();

        /// <summary>Sends the whole pending buffer at a time: one record (one AEAD operation) per batch of frames, up to 1 MiB.</summary>
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
                    if (length == 0)
                    {
                        continue;
                    }
                    Volatile.Write(ref _sendingSinceTicks, Environment.TickCount64);
                    await _link.SendAsync(_sending.AsMemory(0, length), CancellationToken.None).ConfigureAwait(false);
                    Volatile.Write(ref _sendingSinceTicks, 0);
                    Volatile.Write(ref _lastSentTicks, Environment.TickCount64);
                }
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException)
            {
                Close($"send failed: {e.Message}");
            }
        }

        /// <summary>Reads what the backup sends: verified acks and heartbeats. Anything else closes the link.</summary>
        private async Task ReadAcks()
        {
            try
            {
                while (!_closed)
                {
                    var frame = await _link.ReadAsync(CancellationToken.None).ConfigureAwait(false);
                    if (frame is null)
                    {
                        Close("the backup closed the link");
                        return;
                    }
                    Volatile.Write(ref _lastHeardTicks, Environment.TickCount64);
                    (ReplicationType type, ReadOnlyMemory<byte> payload) = frame.Value;
                    if (type == ReplicationType.Ack)
                    {
                        ulong blockNo = ReplicationFrame.ReadAck(payload.Span, out Hash32 hash);
                        string? wrong = Verify(blockNo, in hash);
                        if (wrong is not null)
                        {
                            _log(new PairEvent(PairEventKind.LinkIncident, $"INCIDENT: backup {_link.Peer.Name} acknowledged {wrong}: resetting the link", _hub.Epoch, blockNo));
                            Close($"a false acknowledgement ({wrong})");
                            return;
                        }
                        _hub.Acked(this, blockNo);
                    }
                    else if (type != ReplicationType.Heartbeat || payload.Length != 0)
                    {
                        Close($"the backup sent a {Describe(type)} frame of {payload.Length} bytes, which a backup never sends");
                        return;
                    }
                }
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidDataException)
            {
                Close($"receive failed: {e.Message}");
            }
        }

        /// <summary>Null if the ack names a block sent on this link with its hash (and every block before it counts as acknowledged); else what is wrong with it.</summary>
        private string? Verify(ulong blockNo, in Hash32 hash)
        {
            if (blockNo <= _catchUpTo)
            {
                return _catchUpSent.Acknowledge(blockNo, in hash);
            }
            _catchUpSent.Clear(); // cumulative: a live block's ack covers the whole catch-up
            return _liveSent.Acknowledge(blockNo, in hash);
        }

        private async Task Heartbeats()
        {
            PairSettings settings = _hub._settings;
            while (!_closed)
            {
                await Task.Delay(settings.HeartbeatMs / 2).ConfigureAwait(false);
                long now = Environment.TickCount64;
                if (now - Volatile.Read(ref _lastHeardTicks) > settings.SilenceMs)
                {
                    Close($"the backup has been silent for {settings.SilenceMs} ms");
                    return;
                }
                long sendingSince = Volatile.Read(ref _sendingSinceTicks);
                if (sendingSince != 0 && now - sendingSince > settings.MaxSendBlockedMs)
                {
                    Close($"the backup has taken nothing for {settings.MaxSendBlockedMs} ms (it does not read)");
                    return;
                }
                if (_live && now - Volatile.Read(ref _lastSentTicks) >= settings.HeartbeatMs)
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
            _link.Dispose();
            _sendWanted.Release();
            _hub.Detach(this, why);
        }
    }

    /// <summary>
    /// The blocks sent on one link and not yet acknowledged, oldest first: number and hash, in a ring
    /// that grows (doubling, allocating only then) up to <see cref="MaxUnackedBlocks"/>. An ack must
    /// name one of them with its hash; it then acknowledges it and every older one (acks are
    /// cumulative). Thread-safe (the sealer or the catch-up adds, the ack reader removes).
    /// </summary>
    internal sealed class SentBlocks
    {
        private readonly object _lock = new();
        private ulong[] _numbers = new ulong[1024];
        private Hash32[] _hashes = new Hash32[1024];
        private int _first;
        private int _count;

        /// <summary>Notes a block as sent; false when <see cref="MaxUnackedBlocks"/> are waiting already.</summary>
        public bool TryAdd(ulong blockNo, in Hash32 hash)
        {
            lock (_lock)
            {
                if (_count == _numbers.Length)
                {
                    if (_count == MaxUnackedBlocks)
                    {
                        return false;
                    }
                    Grow();
                }
                int at = (_first + _count) % _numbers.Length;
                _numbers[at] = blockNo;
                _hashes[at] = hash;
                _count++;
                return true;
            }
        }

        /// <summary>Null if (<paramref name="blockNo"/>, <paramref name="hash"/>) is a block waiting here (it and all older are then removed); else why not.</summary>
        public string? Acknowledge(ulong blockNo, in Hash32 hash)
        {
            lock (_lock)
            {
                while (_count > 0 && _numbers[_first] < blockNo)
                {
                    Pop();
                }
                if (_count == 0 || _numbers[_first] != blockNo)
                {
                    return $"block {blockNo}, which this link did not send or which was acknowledged already";
                }
                if (_hashes[_first] != hash)
                {
                    return $"block {blockNo} with hash {hash.ToShortString()}, but that block's hash is {_hashes[_first].ToShortString()}";
                }
                Pop();
                return null;
            }
        }

        public void Clear()
        {
            lock (_lock)
            {
                _first = 0;
                _count = 0;
            }
        }

        private void Pop()
        {
            _first = (_first + 1) % _numbers.Length;
            _count--;
        }

        private void Grow()
        {
            int size = Math.Min(2 * _numbers.Length, MaxUnackedBlocks);
            var numbers = new ulong[size];
            var hashes = new Hash32[size];
            for (int i = 0; i < _count; i++)
            {
                numbers[i] = _numbers[(_first + i) % _numbers.Length];
                hashes[i] = _hashes[(_first + i) % _numbers.Length];
            }
            (_numbers, _hashes, _first) = (numbers, hashes, 0);
        }
    }
}
