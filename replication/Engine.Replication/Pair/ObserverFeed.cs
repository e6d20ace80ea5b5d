using System.Buffers.Binary;
using System.Text;
using Engine.Core.Journaling;

namespace Engine.Replication.Pair;

/// <summary>
/// Serves observers (<c>engine observe --peer</c>): read-only followers of the ledger that connect to
/// the replication endpoint with an observer's key. Apart from the pair's state machine on purpose:
/// an observer is never counted for acknowledgements, the primary never waits for one (each reads
/// the journal through a cursor of its own, at its own pace, and a slow one only falls behind), and
/// a dead one costs a closed socket.
/// </summary>
/// <remarks>
/// <para><b>Only what the pair keeps.</b> A block is shown once the backup acknowledged it (or the
/// primary acknowledged it alone under the solo lease): a block the primary journaled but a takeover
/// drops is never seen, so an observer that follows the new primary finds its history continued,
/// never contradicted. Signed heads go out once every block they sign was sent.</para>
/// <para><b>The protocol</b>, in <see cref="ReplicationFrame"/>s on the authenticated link: the
/// observer's one <see cref="ReplicationType.ObserveFrom"/>; then blocks (<see cref="ReplicationType.Block"/>,
/// in chain order, each exactly as journaled), signed heads (<see cref="ReplicationType.SignedHead"/>) and,
/// when idle, a heartbeat every <see cref="IdleEvery"/>; or one <see cref="ReplicationType.ObserveRefused"/>
/// with the reason, then the close (a backup, a block it no longer holds, too many observers).</para>
/// <para><b>Bounded.</b> At most <see cref="MaxObservers"/> at once; each a send buffer of
/// <see cref="MaxBatchBytes"/> plus one frame; a link that takes nothing is closed by the send's
/// cancellation when the primary stops serving.</para>
/// <para><b>Threads.</b> Each observer is an async loop; the journal cursor is only used between two
/// awaits and released before each (FasterLog holds an epoch per thread while an entry is out).</para>
/// </remarks>
public sealed class ObserverFeed : IAsyncDisposable
{
    /// <summary>Observers served at once, at most; one more is refused with the reason.</summary>
    public const int MaxObservers = 4;

    /// <summary>Bytes of frames sent at once to an observer, about (one record of the channel).</summary>
    public const int MaxBatchBytes = 256 << 10;

    /// <summary>An idle observer hears a heartbeat this often, so it tells a quiet ledger from a dead primary.</summary>
    public static readonly TimeSpan IdleEvery = TimeSpan.FromSeconds(1);

    /// <summary>How long a new observer has to say where it starts.</summary>
    public static readonly TimeSpan FollowTimeout = TimeSpan.FromSeconds(5);

    /// <summary>How often a caught-up observer's cursor looks for new blocks (the journal commits every 20 ms in memory durability).</summary>
    public static readonly TimeSpan PollEvery = TimeSpan.FromMilliseconds(10);

    /// <summary>Longest reason sent (an observer reads at most 4 bytes a character of it).</summary>
    public const int MaxRefusalChars = 256;

    private readonly object _lock = new();
    private readonly HashSet<Task> _running = [];
    private readonly Action<string> _say;
    private readonly string _notServing;
    private Source? _source;

    /// <param name="say">Where an observer's coming and going is told.</param>
    /// <param name="otherNode">The other node's replication endpoint, named when this node does not serve (the primary may be there).</param>
    public ObserverFeed(Action<string> say, string? otherNode)
    {
        _say = say;
        _notServing = otherNode is null ? "this node is not the primary" : $"this node is not the primary (the other node is at {otherNode})";
    }

    /// <summary>
    /// This node serves from now on (its primary's journal is open): observers read
    /// <paramref name="journal"/>, are shown a block only when <paramref name="mayShow"/> says the pair
    /// keeps it, and get the heads <paramref name="head"/> gives.
    /// </summary>
    public void Open(IJournal journal, Func<ulong, bool> mayShow, Func<SignedHead?> head)
    {
        lock (_lock)
        {
            _source?.End.Cancel();
            _source = new Source(journal, mayShow, head, new CancellationTokenSource());
        }
    }

    /// <summary>This node stops serving: every observer is told so and let go, and this returns once none holds a journal cursor (the journal may close then).</summary>
    public async Task CloseAsync()
    {
        Task[] running;
        lock (_lock)
        {
            _source?.End.Cancel();
            _source = null;
            running = [.. _running];
        }
        await Task.WhenAll(running).ConfigureAwait(false);
    }

    /// <summary>An observer authenticated on the replication endpoint: served (or refused) on a task of its own; the feed owns <paramref name="link"/>.</summary>
    public void Serve(ReplicationLink link)
    {
        lock (_lock)
        {
            Source? source = _source;
            string? refusal = _running.Count >= MaxObservers ? $"busy: {MaxObservers} observers are being served" : source is null ? _notServing : null;
            Task task = Task.Run(() => RunAsync(link, refusal is null ? source : null, refusal));
            _running.Add(task);
            _ = task.ContinueWith(done =>
            {
                lock (_lock)
                {
                    _running.Remove(done);
                }
            }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }

    private async Task RunAsync(ReplicationLink link, Source? source, string? refusal)
    {
        string who = link.Peer.Name;
        try
        {
            if (source is null)
            {
                await RefuseAsync(link, refusal!).ConfigureAwait(false);
                return;
            }
            using var session = CancellationTokenSource.CreateLinkedTokenSource(source.End.Token);
            ulong from;
            using (var wait = CancellationTokenSource.CreateLinkedTokenSource(session.Token))
            {
                wait.CancelAfter(FollowTimeout);
                (ReplicationType Type, ReadOnlyMemory<byte> Payload)? first = await link.ReadAsync(wait.Token).ConfigureAwait(false);
                if (first is not { Type: ReplicationType.ObserveFrom } frame || frame.Payload.Length != sizeof(ulong))
                {
                    await RefuseAsync(link, first is null ? "closed before it said where to start" : $"expected where to start (ObserveFrom, 8 bytes), got {first.Value.Type} of {first.Value.Payload.Length} bytes").ConfigureAwait(false);
                    return;
                }
                from = BinaryPrimitives.ReadUInt64LittleEndian(frame.Payload.Span);
            }
            if (!Thread.CurrentThread.IsThreadPoolThread)
            {
                await Task.Yield(); // off the sockets' event thread, where the read may have resumed (see SendAsync)
            }
            _say($"observer {who} follows the ledger from block {from:N0}");
            // Anything more from the observer ends it: it says one thing only; its close ends the session too.
            Task listening = ListenAsync(link, session);
            string? why = await FollowAsync(link, source, from, session.Token).ConfigureAwait(false);
            if (why is not null)
            {
                _say($"observer {who} refused: {why}");
                await RefuseAsync(link, why).ConfigureAwait(false);
            }
            await session.CancelAsync().ConfigureAwait(false);
            link.Dispose();
            await listening.ConfigureAwait(false);
            _say($"observer {who} left");
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException or InvalidDataException or System.Net.Sockets.SocketException)
        {
            _say($"observer {who} left: {(source?.End.IsCancellationRequested == true ? "this node stopped serving" : e is OperationCanceledException ? "it closed the link" : e.Message)}");
        }
        finally
        {
            link.Dispose();
        }
    }

    /// <summary>Reads until the observer closes (or says anything more, which is not its to say), then ends the session.</summary>
    private static async Task ListenAsync(ReplicationLink link, CancellationTokenSource session)
    {
        try
        {
            await link.ReadAsync(session.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException or InvalidDataException or System.Net.Sockets.SocketException)
        {
            // Closed, corrupt, or the session ended first.
        }
        try
        {
            await session.CancelAsync().ConfigureAwait(false);
        }
        catch (ObjectDisposedException)
        {
            // The session is over already.
        }
    }

    /// <summary>Sends blocks from <paramref name="from"/> on, as the pair keeps them, until cancelled; the reason when the observer cannot be served from there.</summary>
    private async Task<string?> FollowAsync(ReplicationLink link, Source source, ulong from, CancellationToken cancel)
    {
        IJournal journal = source.Journal;
        if (journal.Base is { } journalBase && from < journalBase.BlockNo)
        {
            return $"this node's journal starts at block {journalBase.BlockNo:N0} (compacted); block {from:N0} is in its archive: load the archive with --journal first";
        }
        byte[] buffer = new byte[MaxBatchBytes + ReplicationFrame.MaxBytes];
        byte[] held = [];
        int heldLength = 0;
        ulong next = from;
        long headSent = 0;
        long lastSend = Environment.TickCount64;
        IEntryCursor cursor = journal.OpenFollower(journal.LocateFrom(from));
        try
        {
            while (!cancel.IsCancellationRequested)
            {
                int length = 0;
                if (heldLength > 0 && source.MayShow(next))
                {
                    length += ReplicationFrame.Write(buffer, ReplicationType.Block, held.AsSpan(0, heldLength));
                    heldLength = 0;
                    next++;
                }
                string? wrong = null;
                while (heldLength == 0 && length < MaxBatchBytes && cursor.TryNext(out ReadOnlySpan<byte> entry, out _, out _))
                {
                    if (BlockFormat.TryReadHeader(entry, out BlockHeader header) is { } bad)
                    {
                        wrong = $"this node's journal holds an entry it cannot read ({bad})";
                        break;
                    }
                    if (header.BlockNo < next)
                    {
                        continue; // before where the observer starts: the index seeks near it, not onto it
                    }
                    if (header.BlockNo > next)
                    {
                        wrong = $"this node's journal goes from block {next - 1:N0} to {header.BlockNo:N0} (block {next:N0} is not here)";
                        break;
                    }
                    if (!source.MayShow(header.BlockNo))
                    {
                        // Not yet kept by the pair: held (copied: the cursor lets go of it) until it is.
                        if (held.Length < entry.Length)
                        {
                            held = new byte[Math.Max(entry.Length, 64 << 10)];
                        }
                        entry.CopyTo(held);
                        heldLength = entry.Length;
                        break;
                    }
                    length += ReplicationFrame.Write(buffer.AsSpan(length), ReplicationType.Block, entry);
                    next++;
                }
                cursor.Release();
                if (wrong is not null)
                {
                    return wrong;
                }
                if (source.Head() is { } head && head.TreeSize > headSent && (ulong)head.TreeSize <= next)
                {
                    length += ReplicationFrame.Write(buffer.AsSpan(length), ReplicationType.SignedHead, head.ToBytes());
                    headSent = head.TreeSize;
                }
                if (length > 0)
                {
                    await SendAsync(link, buffer.AsMemory(0, length), cancel).ConfigureAwait(false);
                    lastSend = Environment.TickCount64;
                    continue;
                }
                if (Environment.TickCount64 - lastSend >= (long)IdleEvery.TotalMilliseconds)
                {
                    await SendAsync(link, buffer.AsMemory(0, ReplicationFrame.Write(buffer, ReplicationType.Heartbeat, [])), cancel).ConfigureAwait(false);
                    lastSend = Environment.TickCount64;
                }
                await Task.Delay(PollEvery, cancel).ConfigureAwait(false);
            }
            return null;
        }
        finally
        {
            cursor.Dispose();
        }
    }

    /// <summary>
    /// Sends, and when the send had to wait, goes on on a pool thread: a send completes on the sockets'
    /// event thread, and the loop's journal reads (a block on disk: a wait for FASTER's device) must not
    /// hold that thread up from every other socket of the node.
    /// </summary>
    private static async ValueTask SendAsync(ReplicationLink link, ReadOnlyMemory<byte> frames, CancellationToken cancel)
    {
        await link.SendAsync(frames, cancel).ConfigureAwait(false);
        if (!Thread.CurrentThread.IsThreadPoolThread)
        {
            await Task.Yield();
        }
    }

    private static async Task RefuseAsync(ReplicationLink link, string why)
    {
        byte[] text = Encoding.UTF8.GetBytes(why.Length > MaxRefusalChars ? why[..MaxRefusalChars] : why);
        byte[] frame = new byte[ReplicationFrame.HeaderBytes + text.Length];
        ReplicationFrame.Write(frame, ReplicationType.ObserveRefused, text);
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            await link.SendAsync(frame, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException or System.Net.Sockets.SocketException)
        {
            // It is gone, or does not read: the close says the rest.
        }
        link.Dispose();
    }

    public async ValueTask DisposeAsync() => await CloseAsync().ConfigureAwait(false);

    private sealed record Source(IJournal Journal, Func<ulong, bool> MayShow, Func<SignedHead?> Head, CancellationTokenSource End);
}
