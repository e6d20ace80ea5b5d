using System.Net;
using System.Net.Sockets;
using Engine.Core.Book;
using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Protocol;

namespace Engine.Replication;

/// <summary>
/// The backup's end of the pair: takes the primary's connection, checks the heads, then for every
/// block: verify it chains (never apply one that does not), journal it, apply it to the backup's
/// own order book, acknowledge it. When the connection drops (a killed primary's socket is reset by
/// the kernel at once), it reports a takeover.
/// </summary>
public sealed class BackupReceiver : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly Journal _journal;
    private readonly Exchange _exchange;
    private readonly Action<string> _log;
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource<ChainHead> _takeover = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ChainHead _head;
    private Task? _loop;

    public BackupReceiver(IPEndPoint listen, Journal journal, Exchange exchange, Action<string> log)
    {
        _journal = journal;
        _exchange = exchange;
        _log = log;
        _head = journal.Head;
        _listener = new Socket(listen.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        _listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        _listener.Bind(listen);
        _listener.Listen(4);
    }

    /// <summary>Completes with the chain's head when the primary is gone and this node should take over.</summary>
    public Task<ChainHead> Takeover => _takeover.Task;

    /// <summary>Blocks received, verified, journaled and applied.</summary>
    public long BlocksApplied { get; private set; }

    public void Start() => _loop = Task.Run(AcceptLoop, CancellationToken.None);

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket primary;
            try
            {
                primary = await _listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            primary.NoDelay = true;
            bool wasInStep = await Serve(primary).ConfigureAwait(false);
            primary.Dispose();
            if (wasInStep && !_stop.IsCancellationRequested)
            {
                _log($"the primary is gone: taking over at {_head}");
                _takeover.TrySetResult(_head);
                return;
            }
        }
    }

    /// <summary>Serves one primary connection; true if it was in step (so its loss means a takeover).</summary>
    private async Task<bool> Serve(Socket primary)
    {
        var buffer = new byte[ReplicationFrame.MaxBytes];
        bool inStep = false;
        try
        {
            var hello = await ReplicationFrame.ReadAsync(primary, buffer, _stop.Token).ConfigureAwait(false);
            if (hello is not { Type: ReplicationType.Hello })
            {
                return false;
            }
            ChainHead theirs = ReplicationFrame.ReadHello(buffer.AsSpan(ReplicationFrame.HeaderBytes, hello.Value.PayloadLength), out _);
            bool same = theirs.BlockNo == _head.BlockNo && theirs.Hash == _head.Hash;
            await primary.SendAsync(ReplicationFrame.Hello(ReplicationType.HelloAck, same ? (byte)0 : (byte)1, in _head), SocketFlags.None, _stop.Token).ConfigureAwait(false);
            if (!same)
            {
                _log($"refused a primary whose chain ends at {theirs}: ours ends at {_head}");
                return false;
            }
            inStep = true;
            _log($"in step with the primary at {primary.RemoteEndPoint}: block {_head.BlockNo}");
            var verifier = new ChainVerifier(_head);
            var ack = new byte[ReplicationFrame.HeaderBytes + ReplicationFrame.AckBytes];
            var sink = new NullSink();
            var heartbeat = new byte[ReplicationFrame.HeaderBytes];
            ReplicationFrame.Write(heartbeat, ReplicationType.Heartbeat, []);
            while (!_stop.IsCancellationRequested)
            {
                // A primary that sends nothing, not even a heartbeat, for this long is gone (or
                // stalled: a SIGSTOP, a long pause); either way this node takes over.
                using var silence = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                silence.CancelAfter(PairTimings.SilenceMs);
                (ReplicationType Type, int PayloadLength)? frame;
                try
                {
                    frame = await ReplicationFrame.ReadAsync(primary, buffer, silence.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!_stop.IsCancellationRequested)
                {
                    _log($"the primary has been silent for {PairTimings.SilenceMs} ms");
                    return true;
                }
                if (frame is null)
                {
                    return true;
                }
                if (frame.Value.Type == ReplicationType.Heartbeat)
                {
                    await primary.SendAsync(heartbeat, SocketFlags.None, _stop.Token).ConfigureAwait(false);
                    continue;
                }
                if (frame.Value.Type != ReplicationType.Block)
                {
                    continue;
                }
                ReadOnlyMemory<byte> entry = buffer.AsMemory(ReplicationFrame.HeaderBytes, frame.Value.PayloadLength);
                BlockFault? fault = verifier.Check(entry.Span, 0, out BlockHeader header);
                if (fault is not null)
                {
                    // Never applied. The link is reset; this first cut has no catch-up to resume from.
                    _log($"INCIDENT: a block from the primary does not chain and is not applied: {fault}; resetting the link");
                    return false;
                }
                long address = _journal.Append(entry.Span);
                _journal.WaitDurable(address);
                Hash32 hash = BlockFormat.StoredHash(entry.Span, in header);
                ReadOnlySpan<byte> body = BlockFormat.Body(entry.Span, in header);
                for (int i = 0; i < header.Count; i++)
                {
                    ulong lsn = LedgerRecord.Read(body.Slice(i * LedgerRecord.Bytes, LedgerRecord.Bytes), out Transaction tx);
                    _exchange.Apply(in tx, lsn, header.BlockNo, in hash, ref sink);
                }
                _head = verifier.Head;
                BlocksApplied++;
                System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(ack.AsSpan(ReplicationFrame.HeaderBytes), header.BlockNo);
                ((ReadOnlySpan<byte>)hash).CopyTo(ack.AsSpan(ReplicationFrame.HeaderBytes + 8));
                ReplicationFrame.Write(ack, ReplicationType.Ack, ack.AsSpan(ReplicationFrame.HeaderBytes, ReplicationFrame.AckBytes).ToArray());
                await primary.SendAsync(ack, SocketFlags.None, _stop.Token).ConfigureAwait(false);
            }
            return false;
        }
        catch (Exception e) when (e is SocketException or IOException or InvalidDataException)
        {
            _log($"the replication link failed: {e.Message}");
            return inStep;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
        if (_loop is not null)
        {
            await _loop.ConfigureAwait(false);
        }
        _stop.Dispose();
    }
}
