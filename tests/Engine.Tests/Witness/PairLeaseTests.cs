using System.Net;
using Engine.Replication;
using Engine.Replication.Pair;
using Engine.Security;
using Engine.Tests.Pair;
using Engine.Tests.Support;

namespace Engine.Tests.Witness;

/// <summary>
/// The pair node's solo lease against the real witness over real secure channels: a primary with no
/// backup asks for it, renews it on a kept channel, and gives it back once a backup holds everything,
/// including a lease whose grant or renewal it never heard (the lease is sticky at the witness: a
/// holder that does not know it would keep the other node from ever taking over).
/// </summary>
public class PairLeaseTests
{
    private static readonly IPEndPoint s_any = new(IPAddress.Loopback, 0);
    private static readonly ClusterCredentials s_witness = ClusterCredentials.Development("witness");

    [Test]
    public async Task A_holder_renews_on_the_channel_it_has_not_with_a_handshake_each_time()
    {
        await using var witness = new WitnessServer(s_any, 300, s_witness, _ => { });
        witness.Start();
        await using (var a = new LeaseHarness(witness.Endpoint, "a"))
        {
            Until.True(() => witness.Requests >= 8, "eight requests (renewals every 100 ms)");
            Assert.That(witness.Channels, Is.LessThan(witness.Requests / 2), "most requests on a kept channel");
            a.BackupInStep();
            Until.True(() => witness.State.Holder is null, "the release, on the same channel or a new one");
        }
        Assert.That(witness.State, Is.EqualTo(new WitnessState(null, 1, 1)));
    }

    [Test]
    public async Task A_holder_gives_the_lease_back_even_after_a_renewal_was_lost()
    {
        await using var witness = new WitnessServer(s_any, 300, s_witness, _ => { });
        witness.Start();
        using var link = new Engine.Cli.Drill.FaultProxy(s_any, witness.Endpoint);
        await using var a = new LeaseHarness(new IPEndPoint(IPAddress.Loopback, link.Port), "a");
        Until.True(() => a.Held, "the first grant");

        link.Set(Engine.Cli.Drill.LinkFault.Blackhole); // renewals are lost: the lease lapses here...
        Until.True(() => !a.Held, "the lease to lapse at the holder");
        Assert.That(witness.Decide("b", 2), Is.EqualTo(new WitnessAnswer.Denied("a", 1, WitnessRefusal.Held)), "...but the witness still has a as holder (sticky)");

        link.Set(Engine.Cli.Drill.LinkFault.None);
        a.BackupInStep(); // a backup is in step again: a must give the lease back
        Until.True(() => witness.Decide("b", 2) is WitnessAnswer.Granted, "a to release, so that b can take over");
    }

    /// <summary>
    /// An ACQUIRE whose answer never comes back may still have been granted (here: the witness
    /// decides, then its answer is held back until the requester has given up). The witness then
    /// holds the lease for a node that does not know it; once that node no longer wants it, it must
    /// give it back all the same, or the other node could never take over.
    /// </summary>
    [Test]
    public async Task A_node_gives_back_a_lease_whose_grant_it_never_heard()
    {
        var events = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var answerHeldBack = new ManualResetEventSlim(false);
        // The witness tells its grant (under its lock, before it answers): holding the teller holds the answer.
        void Tell(string line)
        {
            events.Enqueue(line);
            if (line.Contains("granted to a", StringComparison.Ordinal))
            {
                answerHeldBack.Wait(TimeSpan.FromSeconds(60));
            }
        }
        await using var witness = new WitnessServer(s_any, 1000, s_witness, Tell);
        witness.Start();
        await using var a = new LeaseHarness(witness.Endpoint, "a");
        Until.True(() => events.Any(e => e.Contains("granted to a", StringComparison.Ordinal)), "a's request to be granted at the witness");
        Until.True(() => a.HolderAtWitness, "a to give up waiting for the answer (it counts itself holder all the same)");
        Assert.That(a.Held, Is.False, "a never heard the grant");

        a.BackupInStep(); // a backup is in step: a must give back what the witness thinks it holds
        answerHeldBack.Set();
        Until.True(() => witness.Decide("b", 2) is WitnessAnswer.Granted, "a to release, so that b can take over");
    }

    /// <summary>A primary's <see cref="PairNode"/> with no peer, the real <see cref="WitnessClient"/>, and a backup that attaches on demand (in memory), on the real clock.</summary>
    private sealed class LeaseHarness : IAsyncDisposable
    {
        private readonly object _gate = new();
        private readonly PairNode _node;
        private readonly WitnessClient _witness;
        private readonly JournalPairLedger _ledger = SimulatedLedger.Open();
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _ticker;

        public LeaseHarness(IPEndPoint witness, string name)
        {
            var settings = new PairSettings { Role = PairRole.Primary, ReplicationListen = "127.0.0.1:1", Witness = witness.ToString() };
            _witness = new WitnessClient(witness, ClusterCredentials.Development(name), (request, answer) =>
            {
                lock (_gate)
                {
                    _node!.OnWitnessAnswer(request, answer);
                }
            });
            _node = new PairNode(name, settings, TimeProvider.System, new Nowhere(), _witness, _ledger, _ => { });
            lock (_gate)
            {
                _node.Start();
            }
            _ticker = Task.Run(async () =>
            {
                while (!_stop.IsCancellationRequested)
                {
                    lock (_gate)
                    {
                        _node.Tick();
                    }
                    await Task.Delay(10).ConfigureAwait(false);
                }
            });
        }

        public bool Held
        {
            get
            {
                lock (_gate)
                {
                    return _node.SoloLeaseHeld;
                }
            }
        }

        public bool HolderAtWitness
        {
            get
            {
                lock (_gate)
                {
                    return _node.HolderAtWitness;
                }
            }
        }

        /// <summary>A backup that holds everything (its head is ours) attaches: the lease is wanted no more.</summary>
        public void BackupInStep()
        {
            lock (_gate)
            {
                _node.OnAccepted(1);
                byte[] hello = ReplicationFrame.Hello(ReplicationType.Hello, 0, _ledger.Head);
                _node.OnFrame(1, ReplicationType.Hello, hello.AsSpan(ReplicationFrame.HeaderBytes));
                Assert.That(_node.BackupHoldsEverything, Is.True);
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await _ticker;
            await _witness.DisposeAsync();
            _stop.Dispose();
        }

        /// <summary>Carries nothing: the lease is all these tests look at.</summary>
        private sealed class Nowhere : IPairTransport
        {
            public int Connect() => 99;

            public void Send(int connection, ReadOnlySpan<byte> frame)
            {
            }

            public void Send(int connection, ReplicationType type, ReadOnlySpan<byte> payload)
            {
            }

            public string PeerName(int connection) => "backup";

            public void Close(int connection)
            {
            }
        }
    }
}
