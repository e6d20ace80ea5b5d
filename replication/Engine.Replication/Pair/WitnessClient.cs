using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Engine.Security;

namespace Engine.Replication.Pair;

/// <summary>
/// The witness (<c>engine witness</c>) as a node's <see cref="IWitnessPort"/>: each request its
/// <see cref="PairNode"/> makes (the solo lease, its renewal and release, a takeover's epoch) goes out
/// on a task of its own, one at a time, and its answer (or <see cref="WitnessAnswer.NoAnswer"/> after
/// <see cref="AskTimeout"/>) comes back to the host with the request's number.
/// </summary>
/// <remarks>
/// Requests go over a <see cref="SecureChannel"/> to the witness (purpose
/// <see cref="LinkPurpose.Witness"/>): this node proves it is its principal (role node, the name the
/// witness grants under), the witness proves it is the cluster's witness; then a request and its
/// answer (<see cref="WitnessLine"/>) at a time, parsed strictly into a <see cref="WitnessAnswer"/>.
/// The channel is kept between requests (dropped after any failure or <see cref="IdleTimeout"/>
/// unused: a renewal every third of a lease takes one round trip, not a handshake);
/// <see cref="AcquireAsync"/> and <see cref="ReleaseAsync"/> make one each.
/// </remarks>
public sealed class WitnessClient : IWitnessPort, IAsyncDisposable
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
    private readonly Action<int, WitnessAnswer> _answered;
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _one = new(1, 1);

    // The channel to the witness, kept between requests; only the request holding _one touches it.
    private SecureChannel? _channel;
    private long _channelUsedTicks;

    /// <param name="witness">The witness's endpoint.</param>
    /// <param name="credentials">This node's principal (role node): the name the witness grants under.</param>
    /// <param name="answered">Where each answer goes, with its request's number.</param>
    public WitnessClient(IPEndPoint witness, ClusterCredentials credentials, Action<int, WitnessAnswer> answered)
    {
        CheckNode(credentials);
        _witness = witness;
        _credentials = credentials;
        _answered = answered;
    }

    public void Ask(int request, WitnessRequest what) => _ = Task.Run(() => AskAndAnswerAsync(request, what), CancellationToken.None);

    private async Task AskAndAnswerAsync(int request, WitnessRequest what)
    {
        WitnessAnswer answer;
        try
        {
            await _one.WaitAsync(_stop.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return; // stopping: nobody waits for it
        }
        try
        {
            answer = await AskOnChannelAsync(what).ConfigureAwait(false);
        }
        finally
        {
            _one.Release();
        }
        _answered(request, answer);
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
    /// One request on the kept channel (made, or made again, as needed); <see cref="WitnessAnswer.NoAnswer"/>
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
        await _one.WaitAsync(CancellationToken.None).ConfigureAwait(false); // the request under way ends within AskTimeout
        _channel?.Dispose();
        _channel = null;
        _one.Release();
    }
}
