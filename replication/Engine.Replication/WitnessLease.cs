using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Engine.Security;

namespace Engine.Replication;

/// <summary>
/// A lease from <c>engine witness</c>: asked for while <c>wanted</c> says so (no backup in step),
/// renewed every third of its length, and held only until its length minus a margin after the
/// request was sent, so that it lapses here before it lapses at the witness: a cut-off primary stops
/// acknowledging before the witness can grant the lease to the other node.
/// </summary>
/// <remarks>
/// Requests go over a <see cref="SecureChannel"/> to the witness (purpose
/// <see cref="LinkPurpose.Witness"/>): this node proves it is its principal (role node, the name the
/// witness grants under), the witness proves it is the cluster's witness; then a request and its
/// answer (<see cref="WitnessLine"/>) at a time, parsed strictly into a <see cref="WitnessAnswer"/>.
/// The lease's loop keeps its channel between requests (dropped after any failure or
/// <see cref="IdleTimeout"/> unused); <see cref="AcquireAsync"/> and <see cref="ReleaseAsync"/> make one each.
/// </remarks>
public sealed class WitnessLease : ISoloLease, IAsyncDisposable
{
    /// <summary>
    /// Connect, handshake, request and answer, at most; a request not answered by then may still have
    /// been granted (the node then counts itself holder). Half a lease: an answer that comes this late
    /// still grants what is left of the lease (it counts from the send), and a new channel needs three
    /// round trips (the handshake's two, then the request) where the plain line of before needed one:
    /// with 200 ms, on this two-core machine under a load average of 30 to 46, most asks timed out.
    /// </summary>
    public static readonly TimeSpan AskTimeout = TimeSpan.FromMilliseconds(500);

    /// <summary>A channel to the witness unused this long is closed here and a new one made for the next request, before the witness closes it (<see cref="WitnessServer.IdleTimeout"/>).</summary>
    public static readonly TimeSpan IdleTimeout = TimeSpan.FromSeconds(5);

    private readonly IPEndPoint _witness;
    private readonly ClusterCredentials _credentials;
    private readonly int _marginMs;
    private readonly Func<ulong> _epoch;
    private readonly Func<bool> _wanted;
    private readonly Action<PairEvent> _log;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private long _validUntilTicks;
    private readonly Action? _fenced;
    private readonly Action? _granted;
    private readonly SemaphoreSlim _wake = new(0, 1);
    private bool _lastHeld;

    // The loop's channel to the witness, kept between requests (renewals every third of a lease take
    // one round trip, not a handshake); only the loop touches it.
    private SecureChannel? _channel;
    private long _channelUsedTicks;

    // True from a grant until the witness confirms the release: the lease is sticky, so a renewal
    // that failed (the witness unreachable for a moment) does not end it there.
    private bool _holderAtWitness;

    /// <param name="witness">The witness's endpoint.</param>
    /// <param name="credentials">This node's principal (role node): the name the witness grants under.</param>
    /// <param name="settings">The pair's settings: a grant is acted on for its length less <see cref="PairSettings.LeaseMarginMs"/>.</param>
    /// <param name="epoch">The epoch this node seals in.</param>
    /// <param name="wanted">True while the lease is needed (no backup in step); once false again, the lease is released.</param>
    /// <param name="log">Where state changes are told.</param>
    /// <param name="heldUntilTicks">A grant already obtained (<see cref="AcquireAsync"/> before a takeover): held until then.</param>
    /// <param name="fenced">Called when the witness answers that a higher epoch exists: the other node took over.</param>
    /// <param name="granted">Called when the lease is granted after not being held: what waits for it may go.</param>
    public WitnessLease(IPEndPoint witness, ClusterCredentials credentials, PairSettings settings, Func<ulong> epoch, Func<bool> wanted, Action<PairEvent> log, long heldUntilTicks = 0,
        Action? fenced = null, Action? granted = null)
    {
        CheckNode(credentials);
        _fenced = fenced;
        _granted = granted;
        _witness = witness;
        _credentials = credentials;
        _marginMs = settings.LeaseMarginMs;
        _epoch = epoch;
        _wanted = wanted;
        _log = log;
        _validUntilTicks = heldUntilTicks;
        _lastHeld = heldUntilTicks != 0;
        _holderAtWitness = heldUntilTicks != 0;
        _loop = Task.Run(Loop, CancellationToken.None);
    }

    public bool Held => Stopwatch.GetTimestamp() < Interlocked.Read(ref _validUntilTicks);

    /// <summary>The witness still names this node its holder (a renewal may have lapsed here): until it is given back, the other node cannot take over.</summary>
    public bool HolderAtWitness => Volatile.Read(ref _holderAtWitness);

    public void Nudge()
    {
        if (_wake.CurrentCount == 0)
        {
            try
            {
                _wake.Release();
            }
            catch (Exception e) when (e is SemaphoreFullException or ObjectDisposedException)
            {
                // Nudged twice at once (one wake-up is enough), or already stopped.
            }
        }
    }

    private async Task Loop()
    {
        string self = _credentials.Self.Name;
        while (!_stop.IsCancellationRequested)
        {
            int pause = 50;
            if (_wanted())
            {
                long asked = Stopwatch.GetTimestamp();
                WitnessAnswer answer = await AskOnChannelAsync(new WitnessRequest(WitnessVerb.Acquire, _epoch())).ConfigureAwait(false);
                long validUntil = ValidUntil(answer, asked, _marginMs);
                bool granted = false;
                switch (answer)
                {
                    case WitnessAnswer.Granted g:
                        Interlocked.Exchange(ref _validUntilTicks, validUntil);
                        pause = Math.Max(20, g.LeaseMs / 3);
                        _holderAtWitness = true;
                        granted = true;
                        break;
                    case WitnessAnswer.Denied d:
                        // The witness says who holds it: after a refusal (held by the other, fenced, or
                        // a state it could not write) this node is holder only if the witness says so.
                        _holderAtWitness = d.Holder == self;
                        break;
                    default:
                        // No answer: the request may still have reached the witness and been granted
                        // (the lease is sticky), so count ourselves its holder until a release is answered.
                        _holderAtWitness = true;
                        break;
                }
                if (granted != _lastHeld)
                {
                    _log(granted
                        ? new PairEvent(PairEventKind.LeaseGranted, $"solo lease from the witness at {_witness} ({((WitnessAnswer.Granted)answer).LeaseMs} ms, renewed)", _epoch())
                        : new PairEvent(PairEventKind.LeaseRefused, $"the witness refused the solo lease: {Describe(answer)}", _epoch()));
                    _lastHeld = granted;
                    if (granted)
                    {
                        _granted?.Invoke();
                    }
                }
                if (answer is WitnessAnswer.Denied { Reason: WitnessRefusal.Fenced })
                {
                    _fenced?.Invoke();
                }
            }
            else if (_holderAtWitness)
            {
                // A backup is in step again: it holds everything acknowledged alone, so the lease
                // may go to it should this node die. Stop acknowledging alone first, then release.
                Interlocked.Exchange(ref _validUntilTicks, 0);
                WitnessAnswer answer = await AskOnChannelAsync(new WitnessRequest(WitnessVerb.Release, 0)).ConfigureAwait(false);
                if (answer is WitnessAnswer.Released or WitnessAnswer.NotHolder)
                {
                    _log(new PairEvent(PairEventKind.LeaseReleased, $"a backup is in step: solo lease given back to the witness ({Describe(answer)})", _epoch()));
                    _lastHeld = false;
                    _holderAtWitness = false;
                }
            }
            try
            {
                await _wake.WaitAsync(pause, _stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>
    /// Asks <paramref name="witness"/> for the solo lease for this node (<paramref name="credentials"/>)
    /// in <paramref name="epoch"/>. A grant is valid here until its length minus a margin after the
    /// request was sent (<c>ValidUntilTicks</c>, Stopwatch ticks), so it lapses here before it does at the witness.
    /// </summary>
    public static async Task<(WitnessAnswer Answer, long ValidUntilTicks)> AcquireAsync(IPEndPoint witness, ClusterCredentials credentials, ulong epoch, int leaseMarginMs, CancellationToken cancel)
    {
        CheckNode(credentials);
        long asked = Stopwatch.GetTimestamp();
        WitnessAnswer answer = await AskAsync(witness, credentials, new WitnessRequest(WitnessVerb.Acquire, epoch), cancel).ConfigureAwait(false);
        return (answer, ValidUntil(answer, asked, leaseMarginMs));
    }

    /// <summary>Until when (Stopwatch ticks) a grant asked for at <paramref name="askedTicks"/> may be acted on here, its
    /// length less <paramref name="marginMs"/> (travel time and clock drift); 0 if it is none. A grant no longer than the margin is worth nothing.</summary>
    private static long ValidUntil(WitnessAnswer answer, long askedTicks, int marginMs) =>
        answer is WitnessAnswer.Granted g && g.LeaseMs > marginMs ? askedTicks + ((g.LeaseMs - marginMs) * Stopwatch.Frequency / 1000) : 0;

    /// <summary>
    /// One request on the loop's channel (made, or made again, as needed); <see cref="WitnessAnswer.NoAnswer"/>
    /// on any failure, the channel then dropped. A kept channel that fails (the witness restarted, or
    /// closed it) is replaced once at once: asking again is harmless (a renewal grants the same, a
    /// second release finds no lease to give back).
    /// </summary>
    private async Task<WitnessAnswer> AskOnChannelAsync(WitnessRequest request)
    {
        if (_channel is not null && Stopwatch.GetElapsedTime(_channelUsedTicks) > IdleTimeout)
        {
            _channel.Dispose();
            _channel = null;
        }
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        timeout.CancelAfter(AskTimeout);
        for (int attempt = 0; ; attempt++)
        {
            bool kept = _channel is not null;
            WitnessAnswer answer;
            try
            {
                _channel ??= await ConnectAsync(_witness, _credentials, timeout.Token).ConfigureAwait(false);
                answer = await ExchangeAsync(_channel, _witness, request, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException or IOException or OperationCanceledException or InvalidDataException or ObjectDisposedException)
            {
                answer = new WitnessAnswer.NoAnswer(e is LinkRefusedException ? $"witness at {_witness} refused: {e.Message}" : $"witness unreachable ({e.Message})");
            }
            if (answer is not WitnessAnswer.NoAnswer)
            {
                _channelUsedTicks = Stopwatch.GetTimestamp();
                return answer;
            }
            _channel?.Dispose();
            _channel = null;
            if (!kept || attempt > 0 || timeout.IsCancellationRequested)
            {
                return answer;
            }
        }
    }

    /// <summary>
    /// Runs one handshake and one record each way with itself over loopback, so that the first real
    /// request (a backup's at takeover, on the failover's critical path) does not pay for loading and
    /// compiling the cryptography: measured here, a cold first request took ~475 ms (past
    /// <see cref="AskTimeout"/>) and the second ~120 ms, against ~2 ms warm.
    /// </summary>
    /// <remarks>Best effort: a warm-up that fails (a loaded machine, no loopback) changes nothing but the first request's time.</remarks>
    public static async Task WarmUpAsync(ClusterCredentials credentials)
    {
        try
        {
            using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            listener.Listen(1);
            using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            Task connected = client.ConnectAsync(listener.LocalEndPoint!);
            using Socket accepted = await listener.AcceptAsync().ConfigureAwait(false);
            await connected.ConfigureAwait(false);
            TimeSpan patient = TimeSpan.FromSeconds(30); // cold code on a busy machine; nobody waits on this
            Task<AcceptOutcome> server = SecureChannel.AcceptAsync(accepted, credentials, LinkPurpose.Witness, [credentials.Self.Role], timeout: patient);
            using SecureChannel channel = await SecureChannel.ConnectAsync(client, credentials, LinkPurpose.Witness, credentials.Self.Role, timeout: patient).ConfigureAwait(false);
            using SecureChannel? other = (await server.ConfigureAwait(false)).Channel;
            if (other is null)
            {
                return;
            }
            var buffer = new byte[WitnessLine.MaxAnswerBytes + SecureChannel.TagBytes];
            await channel.SendAsync(WitnessLine.Format(new WitnessRequest(WitnessVerb.Acquire, 1))).ConfigureAwait(false);
            int read = await other.ReceiveAsync(buffer).ConfigureAwait(false);
            _ = WitnessLine.TryParseRequest(buffer.AsSpan(0, read), out _, out _);
            await other.SendAsync(WitnessLine.Format(new WitnessAnswer.Granted(1000))).ConfigureAwait(false);
            read = await channel.ReceiveAsync(buffer).ConfigureAwait(false);
            _ = WitnessLine.TryParseAnswer(buffer.AsSpan(0, read), out _, out _);
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or InvalidDataException)
        {
            // Only the first real request's time depends on it.
        }
    }

    /// <summary>Gives the lease back for this node (<paramref name="credentials"/>): <see cref="WitnessAnswer.Released"/> or <see cref="WitnessAnswer.NotHolder"/> when done.</summary>
    public static Task<WitnessAnswer> ReleaseAsync(IPEndPoint witness, ClusterCredentials credentials, CancellationToken cancel)
    {
        CheckNode(credentials);
        return AskAsync(witness, credentials, new WitnessRequest(WitnessVerb.Release, 0), cancel);
    }

    /// <summary>An answer for a person: the line as the witness sent it, or why there was none.</summary>
    public static string Describe(WitnessAnswer answer) => answer switch
    {
        WitnessAnswer.NoAnswer n => n.Why,
        _ => System.Text.Encoding.ASCII.GetString(WitnessLine.Format(answer)),
    };

    /// <summary>One request, one answer over a fresh secure channel; <see cref="WitnessAnswer.NoAnswer"/> when there is none within <see cref="AskTimeout"/>.</summary>
    private static async Task<WitnessAnswer> AskAsync(IPEndPoint witness, ClusterCredentials credentials, WitnessRequest request, CancellationToken cancel)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        timeout.CancelAfter(AskTimeout);
        try
        {
            using SecureChannel channel = await ConnectAsync(witness, credentials, timeout.Token).ConfigureAwait(false);
            return await ExchangeAsync(channel, witness, request, timeout.Token).ConfigureAwait(false);
        }
        catch (LinkRefusedException e)
        {
            return new WitnessAnswer.NoAnswer($"witness at {witness} refused: {e.Message}");
        }
        catch (Exception e) when (e is SocketException or IOException or OperationCanceledException or InvalidDataException or ObjectDisposedException)
        {
            return new WitnessAnswer.NoAnswer($"witness unreachable ({e.Message})");
        }
    }

    /// <summary>A secure channel to the witness: this node proves it is its principal, the witness that it is the cluster's witness.</summary>
    private static async Task<SecureChannel> ConnectAsync(IPEndPoint witness, ClusterCredentials credentials, CancellationToken cancel)
    {
        var socket = new Socket(witness.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(witness, cancel).ConfigureAwait(false);
            return await SecureChannel.ConnectAsync(socket, credentials, LinkPurpose.Witness, PrincipalRole.Witness, timeout: AskTimeout, cancel: cancel).ConfigureAwait(false);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Sends one request and reads its answer, parsed strictly.</summary>
    private static async Task<WitnessAnswer> ExchangeAsync(SecureChannel channel, IPEndPoint witness, WitnessRequest request, CancellationToken cancel)
    {
        await channel.SendAsync(WitnessLine.Format(request), cancel).ConfigureAwait(false);
        byte[] buffer = new byte[WitnessLine.MaxAnswerBytes + SecureChannel.TagBytes];
        int read = await channel.ReceiveAsync(buffer, cancel).ConfigureAwait(false);
        if (read == 0)
        {
            return new WitnessAnswer.NoAnswer($"witness at {witness} closed without an answer");
        }
        return WitnessLine.TryParseAnswer(buffer.AsSpan(0, read), out WitnessAnswer answer, out string error)
            ? answer
            : new WitnessAnswer.NoAnswer($"witness at {witness} answered something that is no answer ({error})");
    }

    private static void CheckNode(ClusterCredentials credentials)
    {
        ArgumentNullException.ThrowIfNull(credentials);
        if (credentials.Self.Role != PrincipalRole.Node)
        {
            throw new ArgumentException($"only a node asks the witness for the solo lease, not {credentials.Self}", nameof(credentials));
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        _channel?.Dispose();
        _stop.Dispose();
        _wake.Dispose();
    }
}
