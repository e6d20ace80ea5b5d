using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Engine.Core.Journaling;
using Engine.Core.Ledger;
using Engine.Replication;
using Engine.Security;
using HdrHistogram;

namespace Engine.Cli.Observer;

/// <summary>What following a primary did, so far.</summary>
internal sealed record PeerObserveReport(ulong FromBlock, ulong LastBlock, long BlocksWritten, long Rows, long RootsChecked, long HeadsChecked, int Connections, TimeSpan Elapsed,
    LongHistogram LiveLagMs)
{
    public string LagSummary => LiveLagMs.TotalCount == 0 ? "no live lag measured (never caught up)"
        : $"live lag behind the seal p50 {LiveLagMs.GetValueAtPercentile(50)} ms, p99 {LiveLagMs.GetValueAtPercentile(99)} ms, max {LiveLagMs.GetMaxValue()} ms over {LiveLagMs.TotalCount:N0} commits";
}

/// <summary>
/// An observer that follows the primary of a running pair over the replication endpoint (as the
/// observer principal: authenticated like a backup, never counted for acknowledgements; see the
/// node's <c>ObserverFeed</c>), and feeds each block to an <see cref="ObserverReplay"/>: verified,
/// replayed, written. The signed heads it is sent are checked with the ledger key against the tree of
/// the blocks it verified (kept in a temporary file: a head may sign fewer blocks than were sent).
/// </summary>
/// <remarks>
/// <para><b>Across takeovers.</b> The nodes are tried in turn; whichever serves (the primary) is
/// asked for the blocks after the last one seen, so the same replay goes on across a takeover, and
/// the chain check proves the new primary continues the history already written (a primary shows
/// only blocks its backup acknowledged, which a takeover keeps).</para>
/// <para><b>Exact.</b> Rows are committed with the position when the link runs dry (or every
/// <see cref="SqliteObserverStore.BlocksPerCommit"/> blocks), so a kill loses nothing the database
/// said it had; a restart replays the held blocks from the node to rebuild the book.</para>
/// <para><b>Loud.</b> A block that does not verify, a head not signed by the ledger key, or a head
/// that is not the root of the blocks seen stops it (<see cref="ObserverFaultException"/>); a node
/// that breaks the protocol, refuses, or falls silent only makes it try the next.</para>
/// </remarks>
internal sealed class PeerObserver
{
    /// <summary>Silence from a node after which it is given up (it heartbeats every second when idle).</summary>
    public static readonly TimeSpan Silence = TimeSpan.FromSeconds(3);

    private readonly IReadOnlyList<IPEndPoint> _peers;
    private readonly ClusterCredentials _self;
    private readonly IObserverStore _store;
    private readonly Func<byte[], byte[], bool> _verifyHead;
    private readonly Action<string> _log;
    private readonly LongHistogram _lag = new(1, 3_600_000, 3);
    private readonly LoadedSnapshot? _snapshot;
    private long _headsChecked;
    private int _connections;
    private bool _caughtUp;

    /// <param name="peers">The pair's replication endpoints (either may be primary).</param>
    /// <param name="self">The observer's credentials (a principal of role observer).</param>
    /// <param name="store">The database.</param>
    /// <param name="verifyHead">Checks a head's signature with the ledger key (signed part, signature → valid).</param>
    /// <param name="log">Progress and the nodes' comings and goings.</param>
    /// <param name="snapshot">Start from this state instead of genesis (the primary's journal is compacted); signed heads are not checked then.</param>
    public PeerObserver(IReadOnlyList<IPEndPoint> peers, ClusterCredentials self, IObserverStore store, Func<byte[], byte[], bool> verifyHead, Action<string> log, LoadedSnapshot? snapshot = null)
    {
        _snapshot = snapshot;
        ArgumentOutOfRangeException.ThrowIfZero(peers.Count);
        _peers = peers;
        _self = self;
        _store = store;
        _verifyHead = verifyHead;
        _log = log;
    }

    /// <summary>Follows until <paramref name="cancel"/>; then commits and returns what it did.</summary>
    /// <exception cref="ObserverFaultException">The ledger does not verify, or the database holds another history.</exception>
    public async Task<PeerObserveReport> RunAsync(CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        var replay = new ObserverReplay(_store, _snapshot);
        _log((replay.Position is { } held ? $"observer: the database holds blocks up to {held.Block:N0}; the node replays them to rebuild the book, then rows are written from block {replay.From:N0}"
            : $"observer: an empty database; writing from {(replay.FromGenesis ? "genesis" : $"block {replay.From:N0} (the book as the snapshot holds it)")}")
            + (_snapshot is not null ? $"; starting from the snapshot after block {_snapshot.Header.BlockNo:N0}: signed heads are not checked (they sign every block from genesis)" : ""));
        DirectoryInfo scratch = Directory.CreateTempSubdirectory("engine-observer-");
        try
        {
            using BlockHashTree tree = BlockHashTree.Open(scratch.FullName);
            int turn = 0, failures = 0;
            string? lastSaid = null;
            long nextReport = Environment.TickCount64 + 10_000;
            while (!cancel.IsCancellationRequested)
            {
                IPEndPoint at = _peers[turn % _peers.Count];
                long before = replay.BlocksSeen;
                string why = await FollowAsync(at, replay, tree, cancel).ConfigureAwait(false);
                replay.Commit();
                if (cancel.IsCancellationRequested)
                {
                    break;
                }
                failures = replay.BlocksSeen > before ? 0 : failures + 1;
                string said = $"{at}: {why}";
                if (said != lastSaid || Environment.TickCount64 > nextReport)
                {
                    _log($"observer: {said}; trying {_peers[(turn + 1) % _peers.Count]}");
                    lastSaid = said;
                    nextReport = Environment.TickCount64 + 10_000;
                }
                turn++;
                try
                {
                    await Task.Delay(Math.Min(1000, 50 * failures), cancel).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }
        finally
        {
            try
            {
                scratch.Delete(recursive: true);
            }
            catch (IOException)
            {
                // Left in the temporary directory: harmless.
            }
        }
        replay.Commit();
        return new PeerObserveReport(replay.From, replay.Last, replay.Written, replay.Rows, replay.RootsChecked, _headsChecked, _connections, clock.Elapsed, _lag);
    }

    /// <summary>Follows the node at <paramref name="at"/> while it serves; why it stopped (or throws on a fault of the ledger).</summary>
    private async Task<string> FollowAsync(IPEndPoint at, ObserverReplay replay, BlockHashTree tree, CancellationToken cancel)
    {
        ReplicationLink link;
        try
        {
            link = await ReplicationLink.ConnectAsync(at, _self, Silence, cancel).ConfigureAwait(false);
        }
        catch (LinkRefusedException e)
        {
            return $"did not authenticate: {e.Message}";
        }
        catch (Exception e) when (e is SocketException or IOException or OperationCanceledException or InvalidDataException)
        {
            return cancel.IsCancellationRequested ? "stopping" : $"no connection ({e.Message})";
        }
        using (link)
        {
            _connections++;
            byte[] ask = new byte[ReplicationFrame.HeaderBytes + sizeof(ulong)];
            BinaryPrimitives.WriteUInt64LittleEndian(ask.AsSpan(ReplicationFrame.HeaderBytes), replay.Next);
            ReplicationFrame.WriteHeader(ask, ReplicationType.ObserveFrom, sizeof(ulong));
            using var silence = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            bool dirty = false, told = false;
            long offset = 0;
            try
            {
                await link.SendAsync(ask, cancel).ConfigureAwait(false);
                // The database's blocking calls never run on the sockets' event thread, where a continuation may
                // resume: a synchronous socket read there (Npgsql's) would wait for that very thread, for ever.
                await Task.Yield();
                while (true)
                {
                    silence.CancelAfter(Silence);
                    ValueTask<(ReplicationType Type, ReadOnlyMemory<byte> Payload)?> reading = link.ReadAsync(silence.Token);
                    (ReplicationType Type, ReadOnlyMemory<byte> Payload)? frame;
                    if (reading.IsCompleted)
                    {
                        frame = reading.Result;
                    }
                    else
                    {
                        if (dirty)
                        {
                            Commit(replay); // the link ran dry: what came is made visible, with its position
                            dirty = false;
                        }
                        frame = await reading.ConfigureAwait(false);
                        if (!Thread.CurrentThread.IsThreadPoolThread)
                        {
                            await Task.Yield(); // resumed on the sockets' event thread: onto a pool thread (see above)
                        }
                    }
                    if (frame is null)
                    {
                        return "the node closed the link";
                    }
                    ReadOnlySpan<byte> payload = frame.Value.Payload.Span;
                    switch (frame.Value.Type)
                    {
                        case ReplicationType.Block:
                            if (!told)
                            {
                                _log($"observer: following {link.Peer.Name} at {at} from block {replay.Next:N0}");
                                told = true;
                            }
                            if (replay.Accept(payload, offset) is { } fault)
                            {
                                throw new ObserverFaultException($"{fault} (sent by {link.Peer.Name} at {at})");
                            }
                            offset += payload.Length;
                            if (replay.FromGenesis)
                            {
                                tree.Append(SignedHead.BlockLeaf(replay.LastHash));
                            }
                            dirty = true;
                            break;
                        case ReplicationType.SignedHead:
                            if (replay.FromGenesis && CheckHead(payload, replay, tree, link.Peer.Name) is { } violation)
                            {
                                return violation;
                            }
                            break;
                        case ReplicationType.Heartbeat:
                            _caughtUp = true; // nothing more to send: from here the lag is live
                            break;
                        case ReplicationType.ObserveRefused:
                            return $"refused: {Encoding.UTF8.GetString(payload[..Math.Min(payload.Length, 1024)])}";
                        default:
                            return $"sent a {frame.Value.Type} frame, which is not for an observer: dropped";
                    }
                }
            }
            catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
            {
                return $"silent for {Silence.TotalSeconds:N0} s";
            }
            catch (OperationCanceledException)
            {
                return "stopping";
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or InvalidDataException)
            {
                return $"the link failed ({e.Message})";
            }
        }
    }

    /// <summary>Checks a signed head the node sent: why it is a protocol violation (null: checked). Throws when it is a ledger fault.</summary>
    private string? CheckHead(ReadOnlySpan<byte> bytes, ObserverReplay replay, BlockHashTree tree, string node)
    {
        if (SignedHead.TryRead(bytes, out string? wrong) is not { } head)
        {
            return $"sent a head that does not read ({wrong}): dropped";
        }
        if (head.TreeSize < 1 || head.TreeSize > tree.Size)
        {
            return $"sent a head of {head.TreeSize:N0} blocks before the blocks ({tree.Size:N0} so far): dropped";
        }
        if (head.ClusterId != replay.Cluster)
        {
            throw new ObserverFaultException($"{node} sent a head of cluster {head.ClusterId.Describe()} for a chain of cluster {replay.Cluster?.Describe()}");
        }
        if (!_verifyHead(head.SignedPart(), head.Signature))
        {
            throw new ObserverFaultException($"{node} sent a {head} that is not signed by the ledger key");
        }
        if (tree.RootOf(head.TreeSize) != head.Root)
        {
            throw new ObserverFaultException($"{node} sent a signed {head} that is not the root of the blocks it sent (0…{head.TreeSize - 1:N0}): the ledger signed another history");
        }
        _headsChecked++;
        return null;
    }

    private void Commit(ObserverReplay replay)
    {
        replay.Commit();
        long lagMs = (Journal.UnixNanos(TimeProvider.System) - replay.LastTimestampNs) / 1_000_000;
        if (!_caughtUp && lagMs < 1000)
        {
            _caughtUp = true;
        }
        if (_caughtUp)
        {
            _lag.RecordValue(Math.Clamp(lagMs, 1, 3_600_000));
        }
    }
}
