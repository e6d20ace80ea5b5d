using System.Net;
using System.Net.Sockets;
using Engine.Core.Book;
using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Core.Ledger;
using Engine.Protocol;
using Engine.Security;

namespace Engine.Replication;

/// <summary>How a backup's time with its primary ended.</summary>
public enum BackupOutcome
{
    /// <summary>The node was stopped.</summary>
    Stopped = 0,

    /// <summary>The primary was in step and is gone (or silent): take over.</summary>
    PrimaryLost = 1,

    /// <summary>Our chain is not on the primary's: our suffix was never acknowledged; start a new journal and catch up.</summary>
    Diverged = 2,

    /// <summary>The same blocks gave a different state here than on the primary: a determinism bug. Stop, loudly.</summary>
    StateMismatch = 3,

    /// <summary>
    /// This node's own journal failed (<see cref="Journal.Fault"/>): it may have acknowledged blocks it
    /// never got to disk, so it is no backup any more and must never take over, whatever happens to
    /// the primary. The link is closed, so the primary follows its solo rule at once.
    /// </summary>
    JournalFailed = 4,
}

/// <summary>
/// The backup's end of the pair: connects to the primary's replication endpoint (retrying until it
/// is there), authenticates as this node and requires the primary to be a node of the same cluster
/// (<see cref="ReplicationLink"/>), sends where its chain ends, receives the catch-up and then the
/// live blocks: verify each (never apply one that does not chain), journal it, apply it to its own
/// order book, ack it. Anything the primary sends that is not a frame of this protocol resets the link.
/// </summary>
public sealed class BackupClient
{
    private readonly IPEndPoint _primary;
    private readonly ClusterCredentials _credentials;
    private readonly Journal _journal;
    private readonly BlockApplier _applier;
    private readonly Action<PairEvent> _log;

    private readonly ulong _checksumEvery;
    private readonly Dictionary<ulong, Hash32> _checksums = [];

    private readonly Func<CancellationToken, Task<bool>> _mayTakeOver;
    private readonly PairSettings _settings;
    private volatile bool _inStep;

    /// <param name="primary">The primary's replication endpoint.</param>
    /// <param name="credentials">This node's principal: what it authenticates as, and the roster the primary must be in.</param>
    /// <param name="settings">The pair's clocks.</param>
    /// <param name="journal">This node's journal, ending at <paramref name="head"/>.</param>
    /// <param name="exchange">This node's order book, replayed up to <paramref name="head"/>.</param>
    /// <param name="head">Where this node's chain ends.</param>
    /// <param name="log">Where the link's events are told.</param>
    /// <param name="checksumEvery">Compare state checksums with the primary every this many blocks.</param>
    /// <param name="mayTakeOver">Asked once the primary is lost while we were in step (and again on every failed
    /// attempt to reach it): true to take over, false to keep trying the primary. Default: always (no witness).</param>
    public BackupClient(IPEndPoint primary, ClusterCredentials credentials, PairSettings settings, Journal journal, Exchange exchange, ChainHead head, Action<PairEvent> log, ulong checksumEvery = 10_000,
        Func<CancellationToken, Task<bool>>? mayTakeOver = null)
    {
        _credentials = credentials;
        _settings = settings;
        _mayTakeOver = mayTakeOver ?? (_ => Task.FromResult(true));
        _checksumEvery = checksumEvery;
        _primary = primary;
        _journal = journal;
        _applier = new BlockApplier(exchange);
        _log = log;
        Head = head;
    }

    /// <summary>Tells a pair event about where this node's chain ends now, or about block <paramref name="blockNo"/>.</summary>
    private void Say(PairEventKind kind, string text, ulong? blockNo = null) => _log(new PairEvent(kind, text, Head.Epoch, blockNo ?? Head.BlockNo));

    /// <summary>Where this node's chain ends now.</summary>
    public ChainHead Head { get; private set; }

    /// <summary>The highest epoch a primary we followed said it seals in (its hello).</summary>
    private ulong _primaryEpoch;

    /// <summary>
    /// The epoch a takeover claims: one above both our last block's and the primary's. A primary
    /// that sealed nothing in its epoch (an idle one, right after its own takeover) left no block of
    /// it, so a takeover from our head's epoch alone would claim that same epoch again: two primaries
    /// in one epoch, neither fenced by the witness (found by the simulator).
    /// </summary>
    public ulong TakeoverEpoch => Math.Max(Head.Epoch, _primaryEpoch) + 1;

    /// <summary>True while this node is caught up and following the primary live (for the status page).</summary>
    public bool InStep => _inStep;

    /// <summary>Blocks received, verified, journaled and applied.</summary>
    public long BlocksApplied { get; private set; }

    /// <summary>
    /// Asks the node at <paramref name="peer"/> whether it is a primary, and of which epoch: a node
    /// that starts as primary first checks that its peer has not taken over meanwhile (an old
    /// primary that comes back must learn the higher epoch and step down). Authenticated both ways
    /// like any replication link: only a node of our cluster is believed. Null if nobody (or nobody
    /// of ours) answers.
    /// </summary>
    public static async Task<ulong?> ProbePrimaryEpochAsync(IPEndPoint peer, ClusterCredentials self, ChainHead ours, TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            using ReplicationLink link = await ReplicationLink.ConnectAsync(peer, self, timeout, cancel.Token).ConfigureAwait(false);
            await link.SendAsync(ReplicationFrame.Hello(ReplicationType.Hello, ReplicationFrame.ProbeOnly, in ours), cancel.Token).ConfigureAwait(false);
            var frame = await link.ReadAsync(cancel.Token).ConfigureAwait(false);
            if (frame is not { Type: ReplicationType.HelloAck })
            {
                return null;
            }
            return ReplicationFrame.ReadHello(frame.Value.Payload.Span, out _).Epoch;
        }
        catch (Exception e) when (e is SocketException or IOException or InvalidDataException or OperationCanceledException)
        {
            return null;
        }
    }

    /// <summary>Follows the primary until it is lost (and <c>mayTakeOver</c> agrees), our chain turns out to have diverged, or <paramref name="stop"/>.</summary>
    public async Task<BackupOutcome> RunAsync(CancellationToken stop)
    {
        // True from losing the primary while in step until we attach to a primary again: only then
        // does this node hold everything that was acknowledged, and only then may it take over.
        bool lostInStep = false;
        string? lastRefusal = null;
        while (!stop.IsCancellationRequested)
        {
            if (_journal.Fault is { } failed)
            {
                // Also when the commit failed in the background while the link was quiet: never take over.
                Say(PairEventKind.JournalFailed, $"this node's journal failed ({failed.Message}): no backup any more, and never a takeover");
                return BackupOutcome.JournalFailed;
            }
            try
            {
                if (lostInStep && await _mayTakeOver(stop).ConfigureAwait(false) && _journal.Fault is null)
                {
                    return BackupOutcome.PrimaryLost;
                }
                using ReplicationLink link = await ReplicationLink.ConnectAsync(_primary, _credentials, TimeSpan.FromMilliseconds(_settings.SilenceMs), stop).ConfigureAwait(false);
                lastRefusal = null;
                bool attached;
                BackupOutcome outcome;
                try
                {
                    (attached, outcome) = await Follow(link, stop).ConfigureAwait(false);
                }
                finally
                {
                    _inStep = false;
                }
                if (outcome is BackupOutcome.Diverged or BackupOutcome.StateMismatch or BackupOutcome.JournalFailed)
                {
                    return outcome;
                }
                if (outcome == BackupOutcome.PrimaryLost)
                {
                    Say(PairEventKind.PrimaryLost, $"lost the primary at {_primary}, in step up to block {Head.BlockNo}");
                }
                lostInStep = outcome == BackupOutcome.PrimaryLost || (lostInStep && !attached);
                if (lostInStep)
                {
                    continue; // ask at once, no pause
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return BackupOutcome.Stopped;
            }
            catch (LinkRefusedException e)
            {
                // Not a node of our cluster there, or it will not have us: said once, then retried
                // quietly (the operator may be fixing the other side's files).
                if (e.Message != lastRefusal)
                {
                    Say(PairEventKind.Refused, $"the replication endpoint at {_primary} did not authenticate: {e.Message}; retrying");
                }
                lastRefusal = e.Message;
            }
            catch (Exception e) when (e is SocketException or IOException or OperationCanceledException)
            {
                // No primary there (yet), no answer to the connect, or the connection failed: try again shortly.
            }
            try
            {
                await Task.Delay(100, stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return BackupOutcome.Stopped;
            }
        }
        return BackupOutcome.Stopped;
    }

    /// <summary>Verifies one block against our chain, journals it and applies it; false if it does not chain (nothing applied).</summary>
    private bool Apply(ReadOnlySpan<byte> entry, ChainVerifier verifier, ref NullSink sink)
    {
        BlockFault? fault = verifier.Check(entry, 0, out BlockHeader header);
        if (fault is not null)
        {
            // Never applied. The link is reset; the next attach resumes from our head.
            Say(PairEventKind.LinkIncident, $"INCIDENT: a block from the primary does not chain and is not applied: {fault}; resetting the link");
            return false;
        }
        long address = _journal.Append(entry);
        _journal.WaitDurable(address);
        // The verifier walked these records with the same reader: none is refused here.
        _applier.ApplyBlock(BlockRecords.Of(entry, in header), ref sink);
        Head = verifier.Head;
        BlocksApplied++;
        if (_checksumEvery != 0 && header.BlockNo % _checksumEvery == 0)
        {
            // Kept until the primary's checksum for this block arrives (a few blocks later).
            _checksums[header.BlockNo] = _applier.Exchange.ComputeChecksum();
            if (_checksums.Count > 64)
            {
                _checksums.Remove(_checksums.Keys.Min());
            }
        }
        return true;
    }

    /// <summary>Unpacks an LZ4 catch-up batch and applies its Block frames in order.</summary>
    /// <exception cref="InvalidDataException">The batch does not unpack, or holds anything but whole, intact Block frames.</exception>
    private bool ApplyBatch(ReadOnlySpan<byte> payload, byte[] unpacked, ChainVerifier verifier, ref NullSink sink)
    {
        CatchUpBatch.Reader blocks = CatchUpBatch.Open(payload, unpacked);
        while (blocks.TryNext(out ReadOnlySpan<byte> block))
        {
            if (!Apply(block, verifier, ref sink))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>Hello, catch-up, live: until the link ends, or our chain turns out to have diverged.</summary>
    private async Task<(bool Attached, BackupOutcome Outcome)> Follow(ReplicationLink primary, CancellationToken stop)
    {
        ChainHead head = Head;
        bool inStep = false;
        bool attached = false;
        try
        {
            await primary.SendAsync(ReplicationFrame.Hello(ReplicationType.Hello, 0, in head), stop).ConfigureAwait(false);
            (ReplicationType Type, ReadOnlyMemory<byte> Payload)? hello;
            using (var answer = CancellationTokenSource.CreateLinkedTokenSource(stop))
            {
                // A primary that accepts but never answers (stopped, or behind a black hole) is no
                // primary. Generous: before it answers, the primary looks for our head in its journal
                // (a scan from genesis, which takes a while on a long journal).
                answer.CancelAfter(_settings.HelloAnswerMs);
                hello = await primary.ReadAsync(answer.Token).ConfigureAwait(false);
            }
            if (hello is null)
            {
                return (false, BackupOutcome.Stopped);
            }
            if (hello.Value.Type != ReplicationType.HelloAck)
            {
                throw new InvalidDataException($"a {hello.Value.Type} frame where the primary's hello belongs");
            }
            ChainHead primaryHead = ReplicationFrame.ReadHello(hello.Value.Payload.Span, out byte status);
            if (status != 0)
            {
                Say(PairEventKind.Diverged, $"our chain (ending at {Head}) is not on the primary's ({primary.Peer.Name}): its suffix was never acknowledged");
                return (false, BackupOutcome.Diverged);
            }
            attached = true;
            _primaryEpoch = Math.Max(_primaryEpoch, primaryHead.Epoch);
            Say(PairEventKind.CatchingUp, $"catching up from the primary {primary.Peer.Name} at {_primary} after block {Head.BlockNo}");
            var verifier = new ChainVerifier(Head);
            var ack = new byte[ReplicationFrame.HeaderBytes + ReplicationFrame.AckBytes];
            var heartbeat = new byte[ReplicationFrame.HeaderBytes];
            ReplicationFrame.Write(heartbeat, ReplicationType.Heartbeat, []);
            var sink = new NullSink();
            var unpacked = new byte[CatchUpBatch.MaxRawBytes];
            while (!stop.IsCancellationRequested)
            {
                // A primary that sends nothing, not even a heartbeat, for this long is gone (or
                // stalled: a SIGSTOP, a long pause); either way this node takes over.
                using var silence = CancellationTokenSource.CreateLinkedTokenSource(stop);
                silence.CancelAfter(_settings.SilenceMs);
                (ReplicationType Type, ReadOnlyMemory<byte> Payload)? frame;
                try
                {
                    frame = await primary.ReadAsync(silence.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!stop.IsCancellationRequested)
                {
                    Say(PairEventKind.PrimarySilent, $"the primary has been silent for {_settings.SilenceMs} ms");
                    return (attached, inStep ? BackupOutcome.PrimaryLost : BackupOutcome.Stopped);
                }
                if (frame is null)
                {
                    return (attached, inStep ? BackupOutcome.PrimaryLost : BackupOutcome.Stopped);
                }
                (ReplicationType type, ReadOnlyMemory<byte> payload) = frame.Value;
                switch (type)
                {
                    case ReplicationType.CaughtUp when payload.IsEmpty && !inStep:
                        inStep = true;
                        _inStep = true;
                        Say(PairEventKind.InStep, $"in step with the primary {primary.Peer.Name} at {_primary}: caught up to block {Head.BlockNo}, following live");
                        continue;
                    case ReplicationType.Heartbeat when payload.IsEmpty:
                        await primary.SendAsync(heartbeat, stop).ConfigureAwait(false);
                        continue;
                    case ReplicationType.StateChecksum:
                        ulong blockNo = ReplicationFrame.ReadAck(payload.Span, out Hash32 theirs);
                        if (_checksums.Remove(blockNo, out Hash32 ours))
                        {
                            if (ours != theirs)
                            {
                                Say(PairEventKind.StateMismatch, $"STATE MISMATCH after block {blockNo}: primary {theirs}, backup {ours}. The same blocks gave different books: stopping.", blockNo);
                                return (false, BackupOutcome.StateMismatch);
                            }
                            Say(PairEventKind.ChecksumMatched, $"state checksum after block {blockNo} matches the primary's ({ours.ToShortString()})", blockNo);
                        }
                        continue;
                    case ReplicationType.Block:
                        if (!Apply(payload.Span, verifier, ref sink))
                        {
                            return (attached, BackupOutcome.Stopped);
                        }
                        break;
                    case ReplicationType.CatchUpBatch when !inStep:
                        if (!ApplyBatch(payload.Span, unpacked, verifier, ref sink))
                        {
                            return (attached, BackupOutcome.Stopped);
                        }
                        break;
                    default:
                        throw new InvalidDataException($"an unexpected {(Enum.IsDefined(type) ? type.ToString() : $"type-{(byte)type}")} frame of {payload.Length} bytes");
                }
                // Acks are cumulative: one for the last block of what was just applied, with its hash
                // (the primary checks that it sent that block on this link).
                Hash32 headHash = Head.Hash;
                ReplicationFrame.WriteAck(ack, ReplicationType.Ack, Head.BlockNo, in headHash);
                await primary.SendAsync(ack, stop).ConfigureAwait(false);
            }
            return (attached, BackupOutcome.Stopped);
        }
        catch (InvalidDataException e)
        {
            // Corrupt or unexpected bytes on the link (a record that fails authentication, a bad
            // frame): nothing of it was applied. The primary is not gone, so this is no takeover:
            // reset the link and attach again, and the catch-up resumes from our head.
            Say(PairEventKind.LinkIncident, $"INCIDENT: corrupt data on the replication link ({e.Message}); nothing applied; resetting the link");
            return (attached, BackupOutcome.Stopped);
        }
        catch (JournalFaultException e)
        {
            // Our own disk, not the link: an IOException too, so caught before the link's failures.
            Say(PairEventKind.JournalFailed, $"this node's journal failed ({e.Message}): closing the link; no backup any more, and never a takeover");
            return (attached, BackupOutcome.JournalFailed);
        }
        catch (IOException e)
        {
            Say(PairEventKind.Note, $"the replication link failed: {e.Message}");
            return (attached, inStep ? BackupOutcome.PrimaryLost : BackupOutcome.Stopped);
        }
    }
}
