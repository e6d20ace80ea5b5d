using System.Net.Sockets;
using Engine.Core.Book;
using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Core.Server;
using Engine.Protocol;
using Engine.Tests.Support;

namespace Engine.Tests.Fuzz;

/// <summary>
/// Issue 10's poison through a whole node in this process: gateway, validate, seal, journal, apply.
/// One logged-on client sends clientSeq 1 and then 2^63+1. On the code before, the second was
/// journaled and then threw in apply: the pipeline halted (and a restart replayed the block and
/// halted again). Now the sealer refuses it before it gets an LSN, and the node keeps serving.
/// </summary>
public class PoisonClientSeqTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private static EngineSettings Settings(string data, bool dispatchOnApplyThread = true) => new()
    {
        Data = data,
        Listen = "127.0.0.1:0",
        RingSize = 1024,
        OutboundRingSize = 2048,
        DispatchOnApplyThread = dispatchOnApplyThread,
    };

    /// <summary>Both ways the answers leave: from the apply thread, and through the outbound ring's dispatch thread.</summary>
    [TestCase(true)]
    [TestCase(false)]
    public async Task A_clientSeq_far_ahead_is_rejected_before_the_ledger_and_the_node_keeps_serving(bool dispatchOnApplyThread)
    {
        using var directory = new TempDirectory("poison-seq");
        EngineSettings settings = Settings(directory.Path, dispatchOnApplyThread);
        ReferenceData reference = ReferenceData.Development();
        // The attack, the end of the seq space, and a jump far ahead after both moved the window.
        var poison = new ulong[] { 0x8000_0000_0000_0001UL, ulong.MaxValue, 1UL << 62 };
        await using (EngineNode node = EngineNode.Start(settings, reference))
        {
            using var client = await RawClient.LogOnAsync(node, clientId: 1);
            Assert.That(await client.SubmitAsync(Order(1, 1)), Is.EqualTo((RejectReason.None, true)), "the first order");
            foreach (ulong seq in poison)
            {
                Assert.That(await client.SubmitAsync(Order(seq, 2)), Is.EqualTo((RejectReason.ClientSeqTooFarAhead, false)),
                    $"clientSeq {seq} after 1: rejected, and never in the ledger (lsn 0)");
            }
            Assert.That(await client.SubmitAsync(Order(2, 3)), Is.EqualTo((RejectReason.None, true)), "the same client goes on with its next seq");

            using var other = await RawClient.LogOnAsync(node, clientId: 2);
            Assert.That(await other.SubmitAsync(Order(1, 1)), Is.EqualTo((RejectReason.None, true)), "another client is served");
        }

        // The journal holds nothing that stops a replay: a restart serves again.
        (Journal journal, Exchange exchange, _) = EngineNode.OpenAndRecover(settings, _ => { });
        using (journal)
        {
            exchange.AssertInvariants();
            Assert.That(exchange.LastClientSeq(1), Is.EqualTo(2UL));
            ulong initial = (ulong)reference.AdminTransactions().Count();
            Assert.That(exchange.LastLsn, Is.EqualTo(initial + 3), "the new ledger's reference data, then three transactions, none of the poison");
        }
    }

    /// <summary>
    /// A journal that already holds poison (written by an older version, or by hand, bypassing the
    /// sealer's rule and validation) replays into a state, twice into the same one, and the node
    /// starts on it and serves: apply is total. On the code before, the replay threw.
    /// </summary>
    [Test]
    public async Task A_journal_holding_poison_replays_and_the_node_serves_on_it()
    {
        using var directory = new TempDirectory("poison-journal");
        EngineSettings settings = Settings(directory.Path);
        ReferenceData reference = ReferenceData.Development();
        Transaction order = Order(1, 1) with { ClientId = 1 };
        Transaction[] block =
        [
            order,
            order with { ClientSeq = 0x8000_0000_0000_0001UL, ClientOrderId = 2 },
            order with { ClientSeq = ulong.MaxValue, ClientOrderId = 3 },
            order with { ClientId = 2, ClientSeq = 0 },
            order with { ClientId = 70_000 },
            order with { ClientId = 3, Quantity = -5 },
            order with { ClientId = 3, ClientSeq = 2, Side = (Side)99 },
            // A record of an unknown kind (MessageType 200) cannot be journaled at all since block format
            // v2: the record kind is verified when the journal opens (ChainTests covers that refusal).
            order with { ClientId = 3, ClientSeq = 4, Price = long.MinValue },
        ];
        using (Journal journal = Journal.Open(settings.JournalSettings()))
        {
            var builder = new BlockBuilder(journal.Head, journal.Settings.MaxTransactionsPerBlock);
            foreach (Transaction tx in block)
            {
                builder.Add(in tx);
            }
            journal.Append(builder.Seal(1, out _));
            journal.Flush();
        }

        Hash32 first;
        using (Journal journal = Journal.Open(settings.JournalSettings()))
        {
            var exchange = new Exchange(reference);
            Assert.That(NodeRecovery.Replay(journal, exchange, journal.Opening.ReplayFrom).Transactions, Is.EqualTo(block.Length));
            exchange.AssertInvariants();
            Assert.That(exchange.LastClientSeq(1), Is.EqualTo(ulong.MaxValue), "the ledger's word: client 1 used up its seqs");
            Assert.That(exchange.OpenOrders, Is.EqualTo(3), "client 1's three orders rest; the rest were rejected");
            first = exchange.ComputeChecksum();
        }
        Assert.That(Replayed(settings, reference), Is.EqualTo(first), "the same journal, the same state");
        await using (EngineNode node = EngineNode.Start(settings, reference))
        {
            using var client = await RawClient.LogOnAsync(node, clientId: 2);
            Assert.That(await client.SubmitAsync(Order(1, 7)), Is.EqualTo((RejectReason.None, true)), "a node on that journal serves");
            using var spent = await RawClient.LogOnAsync(node, clientId: 1);
            Assert.That((await spent.SubmitAsync(Order(5, 8))).Reason, Is.EqualTo(RejectReason.StaleClientSeq), "client 1 is answered, not a halt");
        }
        Assert.That(Replayed(settings, reference), Is.Not.EqualTo(first), "the later order is in the state");
    }

    private static Hash32 Replayed(EngineSettings settings, ReferenceData reference)
    {
        using Journal journal = Journal.Open(settings.JournalSettings());
        var exchange = new Exchange(reference);
        NodeRecovery.Replay(journal, exchange, journal.Opening.ReplayFrom);
        exchange.AssertInvariants();
        return exchange.ComputeChecksum();
    }

    private static Transaction Order(ulong seq, ulong id) =>
        Transaction.NewOrder(0, seq, 1, 1, id, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 990, 1);

    /// <summary>A client that speaks the protocol by hand: any clientSeq, no numbering of its own.</summary>
    private sealed class RawClient : IDisposable
    {
        private readonly Socket _socket;
        private readonly uint _clientId;
        private readonly byte[] _buffer = new byte[64 * 1024];
        private int _filled;

        private RawClient(Socket socket, uint clientId)
        {
            _socket = socket;
            _clientId = clientId;
        }

        public static async Task<RawClient> LogOnAsync(EngineNode node, uint clientId)
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            await socket.ConnectAsync(node.ListenEndPoint);
            var client = new RawClient(socket, clientId);
            var frame = new byte[Frame.MaxBytes];
            await socket.SendAsync(frame.AsMemory(0, ReplyCodec.EncodeLogon(clientId, $"dev-token-{clientId}", frame)));
            byte[] ack = await client.ReadFrameAsync();
            Assert.That(ReplyCodec.DecodeLogonAck(ack, out LogonAck decoded), Is.EqualTo(RejectReason.None));
            Assert.That(decoded.Status, Is.EqualTo(LogonStatus.Ok));
            return client;
        }

        /// <summary>Sends one request with the session's client id; returns the answer's reason and whether it is in the ledger.</summary>
        public async Task<(RejectReason Reason, bool InLedger)> SubmitAsync(Transaction tx)
        {
            tx.ClientId = _clientId;
            var frame = new byte[TransactionCodec.MaxFrameBytes];
            await _socket.SendAsync(frame.AsMemory(0, TransactionCodec.Encode(in tx, frame)));
            using var timeout = new CancellationTokenSource(Wait);
            while (true)
            {
                byte[] reply = await ReadFrameAsync(timeout.Token);
                if (ReplyCodec.DecodeAccepted(reply, out Receipt receipt) == RejectReason.None && receipt.ClientSeq == tx.ClientSeq)
                {
                    return (RejectReason.None, receipt.Lsn != 0);
                }
                if (ReplyCodec.DecodeRejected(reply, out Rejection rejection) == RejectReason.None && rejection.ClientSeq == tx.ClientSeq)
                {
                    return (rejection.Reason, rejection.Lsn != 0);
                }
                // An execution report, or an answer to something else: read on.
            }
        }

        private async Task<byte[]> ReadFrameAsync(CancellationToken cancel = default)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            timeout.CancelAfter(Wait);
            while (true)
            {
                int length = Frame.PeekLength(_buffer.AsSpan(0, _filled));
                if (length >= Frame.HeaderBytes && _filled >= length)
                {
                    byte[] frame = _buffer[..length];
                    _buffer.AsSpan(length, _filled - length).CopyTo(_buffer);
                    _filled -= length;
                    return frame;
                }
                Assert.That(length == 0 || (length >= Frame.HeaderBytes && length <= Frame.MaxBytes), Is.True, $"the engine sent a frame of {length} bytes");
                int read;
                try
                {
                    read = await _socket.ReceiveAsync(_buffer.AsMemory(_filled), SocketFlags.None, timeout.Token);
                }
                catch (OperationCanceledException)
                {
                    Assert.Fail($"no answer within {Wait.TotalSeconds} s: the node stopped answering");
                    throw;
                }
                Assert.That(read, Is.Positive, "the engine closed the connection");
                _filled += read;
            }
        }

        public void Dispose() => _socket.Dispose();
    }
}
