using System.Net.Sockets;
using Engine.Client;
using Engine.IntegrationTests.Support;
using Engine.Protocol;
using Engine.Security;

namespace Engine.IntegrationTests;

/// <summary>
/// A client proves its own order is in the ledger, against a real node: it asks for the proof of a
/// receipt over the client protocol and checks it offline with only the cluster's ledger public key;
/// the node never hands one client a proof of another's order, and a malformed or foreign proof
/// request is answered with a refusal that leaves the session working.
/// </summary>
public class ClientProofTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    // Heads every 100 ms, so a receipt is under one soon.
    private static EngineServer Server() => new(environment: new Dictionary<string, string> { ["ENGINE_SIGNEDHEADINTERVALMS"] = "100" });

    [Test]
    public async Task A_client_proves_its_own_order_with_the_public_key_alone_and_no_one_elses()
    {
        using var server = Server();
        await using EngineClient alice = await server.ConnectAsync(1);
        await using EngineClient bob = await server.ConnectAsync(2);
        SubmitResult placed = await alice.SubmitAsync(Order(1));
        Assert.That(placed.Accepted, Is.True, placed.ToString());
        Receipt receipt = placed.Receipt;

        InclusionProof proof;
        try
        {
            proof = await ProofOf(alice, receipt);
        }
        catch (AssertionException)
        {
            TestContext.Out.WriteLine(server.Process.LogText);
            throw;
        }
        using LedgerKey development = LedgerKey.Development();
        Assert.That(ReceiptProof.Verify(proof, in receipt, development.PublicKey), Is.Null, "the order's proof, under the cluster's key");

        // Checked offline: another cluster's key, another receipt, a changed record all fail.
        using var other = LedgerKey.Load(ClusterInit(out string dir, out string ledgerKey), ledgerKey);
        Assert.That(ReceiptProof.Verify(proof, in receipt, other.PublicKey), Does.Contain("signature"));
        Receipt later = receipt with { Lsn = receipt.Lsn + 1 };
        Assert.That(ReceiptProof.Verify(proof, in later, development.PublicKey), Does.Contain("receipt says"));
        byte[] record = [.. proof.Record];
        record[40] ^= 1;
        Assert.That(ReceiptProof.Verify(proof with { Record = record }, in receipt, development.PublicKey), Is.Not.Null, "a changed record");
        Directory.Delete(dir, recursive: true);

        // Need to know: Bob asking for Alice's order hears what he would for an order that does not exist.
        var refused = Assert.ThrowsAsync<ProofRefusedException>(() => bob.GetProofAsync(receipt with { ClientId = 2 }));
        Assert.That(refused!.Reason, Is.EqualTo(RejectReason.NoSuchTransaction));
        var missing = Assert.ThrowsAsync<ProofRefusedException>(() => alice.GetProofAsync(receipt with { Lsn = receipt.Lsn + 1_000_000 }));
        Assert.That(missing!.Reason, Is.EqualTo(RejectReason.NoSuchTransaction));

        // The session still trades after all that.
        Assert.That((await alice.SubmitAsync(Order(2))).Accepted, Is.True);
    }

    /// <summary>Proof requests on a raw socket: one naming another client, one of the wrong size; each gets a refusal frame and the session goes on.</summary>
    [Test]
    public async Task Malformed_and_foreign_proof_requests_are_refused_and_the_session_goes_on()
    {
        using var server = Server();
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync("127.0.0.1", server.Port);
        var logon = new byte[Frame.HeaderBytes + ReplyCodec.LogonBodyBytes];
        ReplyCodec.EncodeLogon(3, "dev-token-3", logon);
        await socket.SendAsync(logon);
        var frame = new byte[Frame.MaxBytes];
        await ReadFrame(socket, frame, Frame.HeaderBytes + ReplyCodec.LogonAckBodyBytes);

        var request = new byte[ProofCodec.RequestFrameBytes];
        ProofCodec.EncodeRequest(4, 7, 1, 1, request); // client 4's, on client 3's session
        await socket.SendAsync(request);
        Assert.That(await ReadRefusal(socket, frame), Is.EqualTo((7UL, RejectReason.ClientMismatch)));

        // A body 8 bytes short, in a well-formed frame.
        var shortRequest = new byte[ProofCodec.RequestFrameBytes - 8];
        BitConverter.TryWriteBytes(shortRequest.AsSpan(Frame.HeaderBytes), 3u);
        Frame.WriteHeader(shortRequest, MessageType.ProofRequest, ProofCodec.RequestBodyBytes - 8);
        await socket.SendAsync(shortRequest);
        Assert.That((await ReadRefusal(socket, frame)).Reason, Is.EqualTo(RejectReason.BadBodyLength));

        Transaction order = Order(1);
        order.ClientId = 3;
        order.ClientSeq = 1;
        var orderFrame = new byte[TransactionCodec.MaxFrameBytes];
        await socket.SendAsync(orderFrame.AsMemory(0, TransactionCodec.Encode(in order, orderFrame)));
        await ReadFrame(socket, frame, Frame.HeaderBytes + ReplyCodec.AcceptedBodyBytes);
        Assert.That(ReplyCodec.DecodeAccepted(frame.AsSpan(0, Frame.HeaderBytes + ReplyCodec.AcceptedBodyBytes), out Receipt receipt), Is.EqualTo(RejectReason.None));
        Assert.That(receipt.ClientSeq, Is.EqualTo(1UL));
    }

    /// <summary>Asks until a signed head covers the receipt (the node refuses with ProofUnavailable until then).</summary>
    private static async Task<InclusionProof> ProofOf(EngineClient client, Receipt receipt)
    {
        var deadline = DateTime.UtcNow + Wait;
        string last = "no answer";
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                return await client.GetProofAsync(receipt, timeout.Token);
            }
            catch (ProofRefusedException e) when (e.Reason == RejectReason.ProofUnavailable)
            {
                last = e.Message;
                await Task.Delay(50); // the next head comes within 100 ms
            }
            catch (TimeoutException)
            {
                last = "no answer in 5 s";
            }
        }
        throw new AssertionException($"no proof of {receipt} in {Wait.TotalSeconds} s: {last}");
    }

    private static async Task<(ulong RequestId, RejectReason Reason)> ReadRefusal(Socket socket, byte[] frame)
    {
        await ReadFrame(socket, frame, 4);
        int length = Frame.PeekLength(frame);
        Assert.That(length, Is.InRange(Frame.HeaderBytes + ProofCodec.ChunkHeaderBytes, Frame.MaxBytes));
        await ReadFrame(socket, frame, length - 4, 4);
        Assert.That(ProofCodec.DecodeChunk(frame.AsSpan(0, length), out ulong id, out int total, out _, out RejectReason refusal, out _), Is.EqualTo(RejectReason.None));
        Assert.That(total, Is.Zero, "a refusal carries no proof");
        return (id, refusal);
    }

    private static Transaction Order(ulong id) => Transaction.NewOrder(0, 0, 1, 1, id, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 990, 1);

    private static string ClusterInit(out string dir, out string ledgerKey)
    {
        dir = Path.Combine(Path.GetTempPath(), $"proof-cluster-{Guid.NewGuid():N}");
        ClusterSetup.Init(dir);
        ledgerKey = Path.Combine(dir, ClusterSetup.LedgerKeyFileName);
        return Path.Combine(dir, "cluster.json");
    }

    private static async Task ReadFrame(Socket socket, byte[] buffer, int bytes, int at = 0)
    {
        int got = 0;
        using var timeout = new CancellationTokenSource(Wait);
        while (got < bytes)
        {
            int read = await socket.ReceiveAsync(buffer.AsMemory(at + got, bytes - got), SocketFlags.None, timeout.Token);
            Assert.That(read, Is.GreaterThan(0), "the engine closed the connection");
            got += read;
        }
    }
}
