using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Engine.Core.Chain;
using Engine.Core.Ledger;

namespace Engine.Replication;

/// <summary>
/// The primary's end of the pair: connects to the backup, checks that both chains end at the same
/// block, then streams every sealed block and collects the acknowledgements. Several blocks are in
/// flight (bounded by <see cref="MaxPendingBytes"/>); <see cref="WaitAcked"/> is the ack gate.
/// </summary>
/// <remarks>
/// This first cut has no catch-up: a backup that is behind (or a link that dropped and came back)
/// stays disconnected, and the primary, by the pair's rule, acknowledges nothing more.
/// </remarks>
public sealed class MirrorLink : IBlockMirror, IAsyncDisposable
{
    /// <summary>Blocks queued for the backup and not yet sent, at most: the sealer waits beyond it.</summary>
    public const int MaxPendingBytes = 16 << 20;

    private readonly Socket _socket;
    private readonly Action<string> _log;
    private readonly object _sendLock = new();
    private readonly object _ackGate = new();
    private readonly SemaphoreSlim _sendWanted = new(0, int.MaxValue);
    private readonly CancellationTokenSource _stop = new();
    private byte[] _pending = new byte[MaxPendingBytes];
    private byte[] _sending = new byte[MaxPendingBytes];
    private int _pendingLength;
    private int _sendSignalled;
    private long _ackedBlockNo;
    private volatile bool _connected;
    private Task? _reader;
    private Task? _writer;
    private Task? _heartbeat;
    private long _lastSentTicks = Environment.TickCount64;
    private long _lastHeardTicks = Environment.TickCount64;

    private MirrorLink(Socket socket, ChainHead head, Action<string> log)
    {
        _socket = socket;
        _log = log;
        _ackedBlockNo = (long)head.BlockNo;
        _connected = true;
    }

    public bool IsConnected => _connected;

    /// <summary>The highest block the backup has acknowledged.</summary>
    public ulong AckedBlockNo => (ulong)Interlocked.Read(ref _ackedBlockNo);

    /// <summary>
    /// Connects to the backup at <paramref name="peer"/> and exchanges heads; retries until
    /// <paramref name="timeout"/>. Throws if the backup's chain does not end where ours does.
    /// </summary>
    public static async Task<MirrorLink> ConnectAsync(IPEndPoint peer, ChainHead head, TimeSpan timeout, Action<string> log, CancellationToken cancel = default)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var socket = new Socket(peer.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(peer, cancel).ConfigureAwait(false);
                await socket.SendAsync(ReplicationFrame.Hello(ReplicationType.Hello, 0, in head), SocketFlags.None, cancel).ConfigureAwait(false);
                var buffer = new byte[ReplicationFrame.HeaderBytes + ReplicationFrame.HelloBytes];
                var frame = await ReplicationFrame.ReadAsync(socket, buffer, cancel).ConfigureAwait(false)
                    ?? throw new IOException("the backup closed the link during the handshake");
                if (frame.Type != ReplicationType.HelloAck)
                {
                    throw new InvalidDataException($"expected HelloAck, got {frame.Type}");
                }
                ChainHead theirs = ReplicationFrame.ReadHello(buffer.AsSpan(ReplicationFrame.HeaderBytes, frame.PayloadLength), out byte status);
                if (status != 0)
                {
                    socket.Dispose();
                    throw new InvalidOperationException($"the backup's chain ends at {theirs}, ours at {head}: it must rejoin (catch-up is not built yet)");
                }
                var link = new MirrorLink(socket, head, log);
                link._reader = Task.Run(link.ReadAcks, CancellationToken.None);
                link._writer = Task.Run(link.WriteLoop, CancellationToken.None);
                link._heartbeat = Task.Run(link.HeartbeatLoop, CancellationToken.None);
                log($"mirroring to the backup at {peer}: both chains end at block {head.BlockNo} ({head.Hash.ToShortString()})");
                return link;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline)
            {
                socket.Dispose();
                await Task.Delay(100, cancel).ConfigureAwait(false);
            }
        }
    }

    public void Send(ReadOnlySpan<byte> block, ulong blockNo) => Enqueue(ReplicationType.Block, block);

    private void Enqueue(ReplicationType type, ReadOnlySpan<byte> block)
    {
        int frameBytes = ReplicationFrame.HeaderBytes + block.Length;
        lock (_sendLock)
        {
            // Bounded: when the backup falls this far behind, the sealer waits for the writer.
            while (_pendingLength + frameBytes > _pending.Length && _connected)
            {
                Monitor.Wait(_sendLock, 10);
            }
            if (!_connected)
            {
                return; // the gate will hold everything from here on
            }
            ReplicationFrame.Write(_pending.AsSpan(_pendingLength), type, block);
            _pendingLength += frameBytes;
            Volatile.Write(ref _lastSentTicks, Environment.TickCount64);
        }
        if (Interlocked.Exchange(ref _sendSignalled, 1) == 0)
        {
            _sendWanted.Release();
        }
    }

    public void WaitAcked(ulong blockNo)
    {
        if (AckedBlockNo >= blockNo)
        {
            return;
        }
        lock (_ackGate)
        {
            // No backup, no acknowledgement: this waits for as long as the backup is gone.
            while (AckedBlockNo < blockNo && !_stop.IsCancellationRequested)
            {
                Monitor.Wait(_ackGate);
            }
        }
        if (AckedBlockNo < blockNo)
        {
            throw new OperationCanceledException("the node is stopping: block " + blockNo + " was never acknowledged by the backup");
        }
    }

    private async Task WriteLoop()
    {
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                await _sendWanted.WaitAsync(_stop.Token).ConfigureAwait(false);
                Volatile.Write(ref _sendSignalled, 0);
                int length;
                lock (_sendLock)
                {
                    (_pending, _sending) = (_sending, _pending);
                    length = _pendingLength;
                    _pendingLength = 0;
                    Monitor.PulseAll(_sendLock);
                }
                int sent = 0;
                while (sent < length)
                {
                    sent += await _socket.SendAsync(_sending.AsMemory(sent, length - sent), SocketFlags.None, _stop.Token).ConfigureAwait(false);
                }
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
        {
            Lost($"send failed: {e.Message}");
        }
    }

    /// <summary>Sends a heartbeat when idle, and drops the link when the backup has been silent too long.</summary>
    private async Task HeartbeatLoop()
    {
        try
        {
            while (!_stop.IsCancellationRequested && _connected)
            {
                await Task.Delay(PairTimings.HeartbeatMs / 2, _stop.Token).ConfigureAwait(false);
                long now = Environment.TickCount64;
                if (now - Volatile.Read(ref _lastHeardTicks) > PairTimings.SilenceMs)
                {
                    Lost($"the backup has been silent for {PairTimings.SilenceMs} ms");
                    _socket.Dispose();
                    return;
                }
                if (now - Volatile.Read(ref _lastSentTicks) >= PairTimings.HeartbeatMs)
                {
                    Enqueue(ReplicationType.Heartbeat, []);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task ReadAcks()
    {
        var buffer = new byte[ReplicationFrame.HeaderBytes + ReplicationFrame.AckBytes];
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var frame = await ReplicationFrame.ReadAsync(_socket, buffer, _stop.Token).ConfigureAwait(false);
                if (frame is null)
                {
                    Lost("the backup closed the link");
                    return;
                }
                Volatile.Write(ref _lastHeardTicks, Environment.TickCount64);
                if (frame.Value.Type == ReplicationType.Ack)
                {
                    long blockNo = (long)BinaryPrimitives.ReadUInt64LittleEndian(buffer.AsSpan(ReplicationFrame.HeaderBytes));
                    lock (_ackGate)
                    {
                        Interlocked.Exchange(ref _ackedBlockNo, blockNo);
                        Monitor.PulseAll(_ackGate);
                    }
                }
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or InvalidDataException or OperationCanceledException)
        {
            Lost($"receive failed: {e.Message}");
        }
    }

    private void Lost(string why)
    {
        if (!_connected)
        {
            return;
        }
        _connected = false;
        lock (_sendLock)
        {
            Monitor.PulseAll(_sendLock);
        }
        if (!_stop.IsCancellationRequested)
        {
            _log($"lost the backup ({why}): acknowledging nothing until a backup is back in step");
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        lock (_ackGate)
        {
            Monitor.PulseAll(_ackGate);
        }
        _socket.Dispose();
        foreach (Task? task in new[] { _reader, _writer, _heartbeat })
        {
            if (task is not null)
            {
                await task.ConfigureAwait(false);
            }
        }
        _stop.Dispose();
    }
}
