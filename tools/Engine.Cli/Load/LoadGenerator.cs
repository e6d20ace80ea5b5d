using System.Diagnostics;
using System.Globalization;
using Engine.Client;
using Engine.Core.Ledger;
using Engine.Protocol;
using HdrHistogram;

namespace Engine.Cli.Load;

/// <summary>What <c>engine load</c> was asked to do.</summary>
internal sealed record LoadOptions(
    string[] Targets,
    double? Rate,
    TimeSpan? Duration,
    long? Count,
    int Connections,
    int Window,
    uint FirstClientId,
    string TokenFormat,
    string? Journal,
    int Seed,
    bool Json,
    ClientTlsOptions? Tls = null,
    TimeSpan? TimelineBucket = null);

/// <summary>What a load run measured; <see cref="Audit"/> is null when the receipts were not checked against a journal.</summary>
internal sealed record LoadResult(
    long Sent,
    long Acked,
    long Rejected,
    Dictionary<string, long> RejectedByReason,
    long Errors,
    AuditResult? Audit,
    long Reports,
    double Seconds,
    double ThroughputPerSecond,
    LongHistogram Latency,
    bool Open,
    long Reconnects,
    IReadOnlyList<AckedOrder> Acks,
    LatencyTimeline? Timeline = null,
    long SilenceFailovers = 0);

/// <summary>One acknowledged order: its receipt and when it arrived (<see cref="Stopwatch"/> ticks).</summary>
internal readonly record struct AckedOrder(uint ClientId, ulong ClientSeq, ulong Lsn, ulong BlockNo, Hash32 BlockHash, long ArrivedTicks);

/// <summary>
/// Drives the engine through <see cref="EngineClient"/> over several connections, open loop at a
/// constant rate (latency measured from each request's intended send time, so a stall counts
/// against every request it delays: coordinated omission corrected) or closed loop at full speed.
/// Keeps every receipt, and can check them against the journal afterwards (<see cref="JournalAudit"/>).
/// </summary>
internal sealed class LoadGenerator(LoadOptions options, TextWriter progress)
{
    private long _sent;
    private long _acked;
    private long _rejected;
    private long _errors;
    private long _reports;
    private long _reconnects;

    private int Window => options.Window;

    private LoadOptions Options => options;

    public async Task<LoadResult> RunAsync(CancellationToken cancel)
    {
        InstrumentTable instruments = InstrumentTable.Development();
        var connections = new List<Connection>();
        for (int i = 0; i < options.Connections; i++)
        {
            uint clientId = options.FirstClientId + (uint)i;
            var client = await EngineClient.ConnectAsync(new ClientOptions
            {
                Endpoints = options.Targets,
                ClientId = clientId,
                Token = options.TokenFormat.Replace("{id}", clientId.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal),
                MaxInFlight = options.Window,
                Tls = options.Tls,
            }, cancel).ConfigureAwait(false);
            connections.Add(new Connection(this, client, new OrderMix(options.Seed + i, instruments.All, (uint)(i % 10) + 1, (client.LastClientSeqAtLogon + 1) * 1_000_000)));
        }

        var clock = Stopwatch.StartNew();
        foreach (Connection c in connections)
        {
            c.Timeline?.OriginTicks = Stopwatch.GetTimestamp();
        }
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        if (options.Duration is { } duration)
        {
            stop.CancelAfter(duration);
        }
        long perConnection = options.Count is { } count ? (count + options.Connections - 1) / options.Connections : long.MaxValue;
        Task reporter = ReportProgress(clock, stop.Token);
        if (options.Rate is { } rate)
        {
            // Open loop: one pacing thread for all connections, sleeping precisely between sends.
            long total = options.Count ?? long.MaxValue;
            await Task.Factory.StartNew(() => SendPaced(connections, total, rate, stop.Token),
                CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).ConfigureAwait(false);
        }
        else
        {
            Task[] senders = [.. connections.Select(c => Task.Factory.StartNew(() => c.Send(perConnection, stop.Token),
                CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default))];
            await Task.WhenAll(senders).ConfigureAwait(false);
        }
        double sendSeconds = clock.Elapsed.TotalSeconds;

        // Wait for every answer (bounded): nothing is left unaccounted for.
        var drain = Stopwatch.StartNew();
        while (connections.Any(c => c.Client.InFlight > 0) && drain.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(10, CancellationToken.None).ConfigureAwait(false);
        }
        await stop.CancelAsync().ConfigureAwait(false);
        await reporter.ConfigureAwait(false);
        double seconds = clock.Elapsed.TotalSeconds;
        _errors += connections.Sum(c => (long)c.Client.InFlight);

        var latency = new LongHistogram(TimeStamp.Minutes(10), 3);
        var byReason = new Dictionary<string, long>();
        foreach (Connection c in connections)
        {
            latency.Add(c.Latency);
            foreach (var (reason, n) in c.RejectedByReason)
            {
                byReason[reason.ToString()] = byReason.GetValueOrDefault(reason.ToString()) + n;
            }
        }
        List<AckedOrder> acks = [.. connections.SelectMany(c => c.Receipts)];
        LatencyTimeline? timeline = connections[0].Timeline;
        foreach (Connection c in connections.Skip(1))
        {
            timeline?.Add(c.Timeline!);
        }
        AuditResult? audit = null;
        if (options.Journal is not null)
        {
            audit = await JournalAudit.CheckAsync(options.Journal, acks).ConfigureAwait(false);
            if (audit.Unreadable is { } where)
            {
                await progress.WriteLineAsync($"journal check stopped reading early: {where}; acked orders after that point count as lost").ConfigureAwait(false);
            }
        }
        long silenceFailovers = connections.Sum(c => c.Client.SilenceFailovers);
        foreach (Connection c in connections)
        {
            await c.Client.DisposeAsync().ConfigureAwait(false);
        }
        long answered = _acked + _rejected;
        return new LoadResult(_sent, _acked, _rejected, byReason, _errors, audit, _reports, seconds,
            answered / Math.Max(sendSeconds, 1e-9), latency, options.Rate is not null, _reconnects, acks, timeline, silenceFailovers);
    }

    /// <summary>
    /// Sends request i at start + i/rate, round-robin over the connections. Between sends the thread
    /// sleeps (precisely, not spinning); when it wakes late it sends everything that is due at once.
    /// Latency is measured from each request's due time, so the lateness counts.
    /// </summary>
    private static void SendPaced(List<Connection> connections, long total, double rate, CancellationToken stop)
    {
        PreciseSleep.TightenTimerSlack();
        double ticksPerRequest = Stopwatch.Frequency / rate;
        long start = Stopwatch.GetTimestamp();
        var touched = new bool[connections.Count];
        for (long i = 0; i < total && !stop.IsCancellationRequested; i++)
        {
            long due = start + (long)(i * ticksPerRequest);
            if (due > Stopwatch.GetTimestamp())
            {
                // Nothing more is due: flush what this wake-up queued (one send per connection for
                // all of it, as a front-end with several orders ready sends them), then sleep.
                FlushTouched(connections, touched);
                PreciseSleep.Until(due);
            }
            int c = (int)(i % connections.Count);
            Connection connection = connections[c];
            Transaction tx = connection.NextOrder();
            while (!connection.TrySend(ref tx, due, flush: false))
            {
                if (stop.IsCancellationRequested)
                {
                    return;
                }
            }
            touched[c] = true;
        }
        FlushTouched(connections, touched);
    }

    private static void FlushTouched(List<Connection> connections, bool[] touched)
    {
        for (int c = 0; c < touched.Length; c++)
        {
            if (touched[c])
            {
                connections[c].Client.Flush();
                touched[c] = false;
            }
        }
    }

    private async Task ReportProgress(Stopwatch clock, CancellationToken stop)
    {
        long lastAnswered = 0;
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(1000, stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            long answered = Interlocked.Read(ref _acked) + Interlocked.Read(ref _rejected);
            await progress.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"  {clock.Elapsed.TotalSeconds,5:F0} s  sent {Interlocked.Read(ref _sent),12:N0}  acked {Interlocked.Read(ref _acked),12:N0}  rejected {Interlocked.Read(ref _rejected),9:N0}  {answered - lastAnswered,10:N0}/s")).ConfigureAwait(false);
            lastAnswered = answered;
        }
    }

    private sealed class Connection
    {
        private readonly LoadGenerator _owner;
        private readonly OrderMix _mix;
        private readonly long[] _intendedTicks;
        private readonly int _mask;

        public Connection(LoadGenerator owner, EngineClient client, OrderMix mix)
        {
            _owner = owner;
            Client = client;
            _mix = mix;
            int capacity = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)owner.Window * 2);
            _intendedTicks = new long[capacity];
            _mask = capacity - 1;
            if (owner.Options.TimelineBucket is { } bucket)
            {
                // Covers the run and the drain after it (answers are bucketed by their send time).
                Timeline = new LatencyTimeline(bucket, (owner.Options.Duration ?? TimeSpan.FromMinutes(10)) + TimeSpan.FromSeconds(1));
            }
            client.Answered += OnAnswer;
            client.Executed += report =>
            {
                Interlocked.Increment(ref _owner._reports);
                if (report.ExecType is ExecType.Fill or ExecType.Cancelled)
                {
                    _mix.Finished(report.ClientOrderId);
                }
            };
            client.Reconnected += (_, _) => Interlocked.Increment(ref _owner._reconnects);
        }

        public EngineClient Client { get; }

        public LongHistogram Latency { get; } = new(TimeStamp.Minutes(10), 3);

        /// <summary>Latency over send time, when the options ask for it.</summary>
        public LatencyTimeline? Timeline { get; }

        public Dictionary<RejectReason, long> RejectedByReason { get; } = [];

        public List<AckedOrder> Receipts { get; } = [];

        public Transaction NextOrder() => _mix.Next();

        /// <summary>
        /// Closed loop: sends as fast as the window allows until the count or the stop, flushing every
        /// 32 requests (and whenever it must wait for answers): bursts, as a busy front-end sends.
        /// </summary>
        public void Send(long count, CancellationToken stop)
        {
            for (long i = 0; i < count && !stop.IsCancellationRequested; i++)
            {
                Transaction tx = _mix.Next();
                // The window is full: block until answers free it. Blocking, not spinning: the
                // engine shares these two cores.
                while (!TrySend(ref tx, 0, flush: i % 32 == 31))
                {
                    if (stop.IsCancellationRequested)
                    {
                        return;
                    }
                }
            }
            Client.Flush();
        }

        /// <summary>Sends if the window has room (waiting up to 100 ms); <paramref name="intended"/> is the due time (0: now).</summary>
        public bool TrySend(ref Transaction tx, long intended, bool flush = true)
        {
            // Record the time under the seq the client will assign before sending: the answer can
            // arrive before TrySend returns. This thread is the connection's only sender.
            ulong seq = Client.NextClientSeq;
            ref long slot = ref _intendedTicks[(int)(seq & (ulong)_mask)];
            long previous = slot;
            Volatile.Write(ref slot, intended == 0 ? Stopwatch.GetTimestamp() : intended);
            if (!Client.TrySend(ref tx, timeoutMs: 100, flush))
            {
                slot = previous;
                return false;
            }
            Interlocked.Increment(ref _owner._sent);
            return true;
        }

        private void OnAnswer(SubmitResult result)
        {
            long sentAt = Volatile.Read(ref _intendedTicks[(int)(result.ClientSeq & (ulong)_mask)]);
            long now = Stopwatch.GetTimestamp();
            if (sentAt != 0 && now > sentAt)
            {
                Latency.RecordValue(now - sentAt);
                Timeline?.Record(sentAt, now - sentAt);
            }
            if (result.Accepted)
            {
                Interlocked.Increment(ref _owner._acked);
                Receipt r = result.Receipt;
                Receipts.Add(new AckedOrder(r.ClientId, r.ClientSeq, r.Lsn, r.BlockNo, r.BlockHash, now));
            }
            else
            {
                Interlocked.Increment(ref _owner._rejected);
                RejectedByReason[result.Rejection.Reason] = RejectedByReason.GetValueOrDefault(result.Rejection.Reason) + 1;
            }
        }
    }
}
