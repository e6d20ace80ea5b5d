using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Engine.Cli;
using Engine.Client;
using Engine.IntegrationTests.Support;
using Engine.Protocol;
using Engine.Replication;

namespace Engine.IntegrationTests;

/// <summary>
/// Issue 10's poison input against a real pair of <c>engine serve</c> processes: one authenticated
/// client sends clientSeq 1 and then 2^63+1 (and 2^64-1). On the code before, the second was
/// journaled, mirrored, answered as accepted, and then threw in apply on both nodes: a permanent
/// outage (a restart replayed the block and halted again). Now it is rejected before the ledger with
/// <see cref="RejectReason.ClientSeqTooFarAhead"/>, and both nodes go on: the same client's next
/// order, another client's order, and the backup still in step, its state compared with the
/// primary's after every block.
/// </summary>
public class PoisonInputTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    [Test]
    public async Task A_poison_clientSeq_is_rejected_and_both_nodes_keep_serving()
    {
        string root = Path.Combine(Path.GetTempPath(), $"poison-{Guid.NewGuid():N}");
        int primaryPort = Ports.Free(), backupPort = Ports.Free(), primaryReplication = Ports.Free(), backupReplication = Ports.Free();
        int primaryAdmin = Ports.Free(), backupAdmin = Ports.Free();
        // The backup compares its state checksum with the primary's after every block.
        var everyBlock = new Dictionary<string, string> { ["ENGINE_CHECKSUMEVERYBLOCKS"] = "1" };
        try
        {
            using var primary = EngineProcess.Start(everyBlock, "serve", "--role", "primary", "--data", Path.Combine(root, "primary"),
                "--listen", $"127.0.0.1:{primaryPort}", "--replication-listen", $"127.0.0.1:{primaryReplication}", "--admin", $"127.0.0.1:{primaryAdmin}");
            using var backup = EngineProcess.Start(everyBlock, "serve", "--role", "backup", "--data", Path.Combine(root, "backup"),
                "--listen", $"127.0.0.1:{backupPort}", "--peer", $"127.0.0.1:{primaryReplication}", "--replication-listen", $"127.0.0.1:{backupReplication}",
                "--admin", $"127.0.0.1:{backupAdmin}");
            primary.WaitForEvent(PairEventKind.BackupInStep, "the pair to be in step", Wait);
            // In step comes first: a new ledger's primary opens its client port once the reference data is acknowledged.
            primary.WaitForLog(o => o.Contains("listening for front-ends", StringComparison.Ordinal), "the primary's client port", Wait);

            using (RawClient attacker = await RawClient.LogOnAsync(primaryPort, clientId: 1))
            {
                Assert.That(await attacker.SubmitAsync(Order(1, 1)), Is.EqualTo((RejectReason.None, true)), "clientSeq 1");
                foreach (ulong poison in new[] { 0x8000_0000_0000_0001UL, ulong.MaxValue })
                {
                    Assert.That(await attacker.SubmitAsync(Order(poison, 2)), Is.EqualTo((RejectReason.ClientSeqTooFarAhead, false)),
                        $"clientSeq {poison} after 1: rejected with its own reason, never in the ledger");
                }
                Assert.That(await attacker.SubmitAsync(Order(2, 3)), Is.EqualTo((RejectReason.None, true)), "the same client's next seq is taken");
            }

            // A normal client, through the client library, on both endpoints: acknowledged by the primary.
            await using (EngineClient normal = await EngineClient.ConnectAsync(new ClientOptions
            {
                Endpoints = [$"127.0.0.1:{primaryPort}", $"127.0.0.1:{backupPort}"],
                ClientId = 2,
                Token = "dev-token-2",
            }))
            {
                SubmitResult result = await normal.SubmitAsync(Order(0, 1)).WaitAsync(Wait);
                Assert.That(result.Accepted, Is.True, result.ToString());
                Assert.That(result.Receipt.Lsn, Is.EqualTo(EngineServer.InitialLsns + 3), "three transactions after the reference data, none of the poison");
            }

            // Both nodes still serve: the primary with its backup in step, the backup following it to the same LSN.
            (NodeStatusReport primaryStatus, NodeStatusReport backupStatus) = await WaitInStepAsync(primaryAdmin, backupAdmin, lsn: EngineServer.InitialLsns + 3);
            Assert.Multiple(() =>
            {
                Assert.That(primaryStatus.Role, Does.StartWith("primary"));
                Assert.That(backupStatus.Role, Is.EqualTo("backup"));
                Assert.That(primary.HasExited || backup.HasExited, Is.False);
                Assert.That(primary.LogText + backup.LogText, Does.Not.Contain("FAULT"), "no pipeline fault on either node");
                Assert.That(primary.HasEvent(PairEventKind.StateMismatch) || backup.HasEvent(PairEventKind.StateMismatch), Is.False);
            });
            backup.WaitForEvent(PairEventKind.ChecksumMatched, "the backup's book to match the primary's after the block that followed the poison", Wait,
                where: e => e.BlockNo == 2);
        }
        finally
        {
            if (Directory.Exists(root))
            {
                Directory.Delete(root, recursive: true);
            }
        }
    }

    private static Transaction Order(ulong seq, ulong id) =>
        Transaction.NewOrder(0, seq, 1, 1, id, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 990, 1);

    /// <summary>Waits until the primary reports its backup in step and both report <paramref name="lsn"/>; returns both statuses.</summary>
    private static async Task<(NodeStatusReport Primary, NodeStatusReport Backup)> WaitInStepAsync(int primaryAdmin, int backupAdmin, ulong lsn)
    {
        var clock = Stopwatch.StartNew();
        string last = "";
        while (clock.Elapsed < Wait)
        {
            try
            {
                NodeStatusReport primary = await AdminStatus.GetAsync($"127.0.0.1:{primaryAdmin}", state: false);
                NodeStatusReport backup = await AdminStatus.GetAsync($"127.0.0.1:{backupAdmin}");
                if (primary.BackupInStep == true && backup.InStep == true && primary.Lsn == lsn && backup.Lsn == lsn)
                {
                    return (primary, backup);
                }
                last = $"primary: {primary}\nbackup: {backup}";
            }
            catch (HttpRequestException e)
            {
                last = e.Message;
            }
            await Task.Delay(20);
        }
        Assert.Fail($"the pair was not in step at lsn {lsn} within {Wait.TotalSeconds} s; last seen:\n{last}");
        throw new InvalidOperationException("unreachable");
    }


    /// <summary>A client that speaks the protocol by hand, so it can send any clientSeq.</summary>
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

        public static async Task<RawClient> LogOnAsync(int port, uint clientId)
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            var client = new RawClient(socket, clientId);
            try
            {
                await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port));
                var frame = new byte[Frame.MaxBytes];
                await socket.SendAsync(frame.AsMemory(0, ReplyCodec.EncodeLogon(clientId, $"dev-token-{clientId}", frame)));
                Assert.That(ReplyCodec.DecodeLogonAck(await client.ReadFrameAsync(), out LogonAck ack), Is.EqualTo(RejectReason.None));
                Assert.That(ack.Status, Is.EqualTo(LogonStatus.Ok));
                return client;
            }
            catch
            {
                client.Dispose();
                throw;
            }
        }

        /// <summary>Sends one request as this client; returns its answer's reason and whether the answer names an LSN.</summary>
        public async Task<(RejectReason Reason, bool InLedger)> SubmitAsync(Transaction tx)
        {
            tx.ClientId = _clientId;
            var frame = new byte[TransactionCodec.MaxFrameBytes];
            await _socket.SendAsync(frame.AsMemory(0, TransactionCodec.Encode(in tx, frame)));
            while (true)
            {
                byte[] reply = await ReadFrameAsync();
                if (ReplyCodec.DecodeAccepted(reply, out Receipt receipt) == RejectReason.None && receipt.ClientSeq == tx.ClientSeq)
                {
                    return (RejectReason.None, receipt.Lsn != 0);
                }
                if (ReplyCodec.DecodeRejected(reply, out Rejection rejection) == RejectReason.None && rejection.ClientSeq == tx.ClientSeq)
                {
                    return (rejection.Reason, rejection.Lsn != 0);
                }
                // An execution report or another answer: read on.
            }
        }

        private async Task<byte[]> ReadFrameAsync()
        {
            using var timeout = new CancellationTokenSource(Wait);
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
                Assert.That(length == 0 || length is >= Frame.HeaderBytes and <= Frame.MaxBytes, Is.True, $"the engine sent a frame of {length} bytes");
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
