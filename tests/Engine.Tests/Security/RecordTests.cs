using System.Buffers.Binary;
using System.Net.Sockets;
using Engine.Security;

namespace Engine.Tests.Security;

/// <summary>Records arrive intact and in order, or not at all: any change on the wire fails and closes the channel.</summary>
public class RecordTests
{
    private static readonly ClusterCredentials s_server = ClusterCredentials.Development("node-a");
    private static readonly ClusterCredentials s_client = ClusterCredentials.Development("node-b");

    [Test]
    public async Task Records_of_every_size_round_trip_and_long_sends_are_split()
    {
        (SecureChannel client, SecureChannel server) = await ChannelHarness.ConnectedAsync(s_client, s_server);
        using (client)
        using (server)
        {
            var random = new Random(1);
            var buffer = new byte[SecureChannel.MaxRecordBytes + SecureChannel.TagBytes];
            foreach (int size in new[] { 1, 64, 65_536, SecureChannel.MaxRecordBytes, SecureChannel.MaxRecordBytes + 5 })
            {
                var payload = new byte[size];
                random.NextBytes(payload);
                Task sending = Task.Run(() => client.Send(payload));
                var received = new List<byte>();
                while (received.Count < size)
                {
                    int n = await server.ReceiveAsync(buffer);
                    Assert.That(n, Is.GreaterThan(0).And.LessThanOrEqualTo(SecureChannel.MaxRecordBytes));
                    received.AddRange(buffer.AsSpan(0, n).ToArray());
                }
                await sending;
                Assert.That(received.ToArray(), Is.EqualTo(payload), $"{size} bytes");
            }
            Assert.That(client.RecordsSent, Is.EqualTo(6UL), "the last send took two records");
            Assert.That(server.RecordsReceived, Is.EqualTo(6UL));
            client.Dispose();
            Assert.That(await server.ReceiveAsync(buffer), Is.Zero, "a close between records is the end, not an error");
        }
    }

    /// <summary>
    /// Every bit of the header and 48 seeded bits of ciphertext and tag. A flipped length bit too fails
    /// at once (the header's check), without waiting for bytes that never come: the stream stays open
    /// here, so a receiver that waited would hang and time out.
    /// </summary>
    [Test]
    public async Task Any_flipped_bit_fails_the_record_at_once_and_closes_the_channel()
    {
        var random = new Random(20261202);
        int headerBits = 8 * SecureChannel.RecordHeaderBytes;
        var bits = Enumerable.Range(0, headerBits).Concat(Enumerable.Range(0, 48).Select(_ => headerBits + random.Next(8 * (64 + SecureChannel.TagBytes)))).ToList();
        foreach (int bit in bits)
        {
            using ChannelHarness.Middle middle = await ChannelHarness.ThroughMiddleAsync(s_client, s_server);
            SecureChannel server = middle.Server.Channel!;
            middle.Client!.Send(new byte[64]);
            byte[] record = await ChannelHarness.ReadRecordAsync(middle.FromClient);
            record[bit / 8] ^= (byte)(1 << (bit % 8));
            middle.ToServer.Send(record);
            Exception? failure = await FailureOf(server);
            Assert.That(failure, Is.InstanceOf<InvalidDataException>(), $"bit {bit} flipped (seed 20261202): {failure}");
            Assert.That(await FailureOf(server), Is.Not.Null, "the channel stays closed");
        }
    }

    [TestCase("replayed")]
    [TestCase("reordered")]
    [TestCase("dropped")]
    public async Task A_replayed_reordered_or_dropped_record_fails(string how)
    {
        using ChannelHarness.Middle middle = await ChannelHarness.ThroughMiddleAsync(s_client, s_server);
        SecureChannel server = middle.Server.Channel!;
        middle.Client!.Send("first"u8);
        middle.Client.Send("second"u8);
        byte[] first = await ChannelHarness.ReadRecordAsync(middle.FromClient);
        byte[] second = await ChannelHarness.ReadRecordAsync(middle.FromClient);
        var buffer = new byte[256];
        switch (how)
        {
            case "replayed":
                middle.ToServer.Send(first);
                Assert.That(await server.ReceiveAsync(buffer), Is.EqualTo(5), "the first arrives");
                middle.ToServer.Send(first);
                break;
            case "reordered":
                middle.ToServer.Send(second);
                middle.ToServer.Send(first);
                break;
            default:
                middle.ToServer.Send(second);
                break;
        }
        Assert.That(await FailureOf(server), Is.InstanceOf<InvalidDataException>());
    }

    [Test]
    public async Task A_record_cut_short_ends_the_channel()
    {
        using ChannelHarness.Middle middle = await ChannelHarness.ThroughMiddleAsync(s_client, s_server);
        middle.Client!.Send(new byte[100]);
        byte[] record = await ChannelHarness.ReadRecordAsync(middle.FromClient);
        middle.ToServer.Send(record.AsSpan(0, 50));
        middle.ToServer.Shutdown(SocketShutdown.Send);
        Assert.That(await FailureOf(middle.Server.Channel!), Is.InstanceOf<IOException>().And.Message.Contains("inside a record"));
    }

    [TestCase(0u, "an empty record")]
    [TestCase((uint)SecureChannel.MaxRecordBytes + 1, "at most")]
    [TestCase(uint.MaxValue, "at most")]
    [TestCase(1000u, "at most 512")]
    public async Task A_length_out_of_bounds_is_refused_before_anything_is_read(uint length, string message)
    {
        using ChannelHarness.Middle middle = await ChannelHarness.ThroughMiddleAsync(s_client, s_server);
        var header = new byte[SecureChannel.RecordHeaderBytes];
        BinaryPrimitives.WriteUInt32LittleEndian(header, length);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(4), RecordCipher.HeaderCheck(length, 0)); // an intact header: only the length is wrong
        middle.ToServer.Send(header); // nothing follows, and nothing needs to: the length alone is refused
        Exception? failure = await FailureOf(middle.Server.Channel!, bufferBytes: 512);
        Assert.That(failure, Is.InstanceOf<InvalidDataException>().And.Message.Contains(message));
    }

    [Test]
    public async Task Concurrent_blocking_and_async_senders_keep_counter_order_equal_to_wire_order()
    {
        (SecureChannel client, SecureChannel server) = await ChannelHarness.ConnectedAsync(s_client, s_server);
        using (client)
        using (server)
        {
            const int Senders = 4, Each = 300;
            Task[] senders = [.. Enumerable.Range(0, Senders).Select(t => Task.Run(async () =>
            {
                var payload = new byte[8];
                for (int i = 0; i < Each; i++)
                {
                    BinaryPrimitives.WriteInt32LittleEndian(payload, t);
                    BinaryPrimitives.WriteInt32LittleEndian(payload.AsSpan(4), i);
                    if (i % 2 == 0)
                    {
                        client.Send(payload);
                    }
                    else
                    {
                        await client.SendAsync(payload.ToArray());
                    }
                }
            }))];
            var next = new int[Senders];
            var buffer = new byte[64];
            for (int k = 0; k < Senders * Each; k++)
            {
                Assert.That(await server.ReceiveAsync(buffer), Is.EqualTo(8));
                int t = BinaryPrimitives.ReadInt32LittleEndian(buffer);
                Assert.That(BinaryPrimitives.ReadInt32LittleEndian(buffer.AsSpan(4)), Is.EqualTo(next[t]++), $"sender {t}'s records in its order");
            }
            await Task.WhenAll(senders);
        }
    }

    /// <summary>
    /// A send on the caller's thread never waits for a peer that does not read: once the socket is full
    /// it reports the record taken in part (or nothing, if the previous one still has a tail) at once, and
    /// what it kept goes out first, whole and in order, when the peer reads again.
    /// </summary>
    [Test]
    public async Task A_send_now_never_waits_and_what_it_kept_goes_out_first_in_order()
    {
        (SecureChannel client, SecureChannel server) = await ChannelHarness.ConnectedAsync(s_client, s_server);
        using (client)
        using (server)
        {
            var payload = new byte[16 * 1024];
            int sent = 0;
            SendNow last = SendNow.Sent;
            var watch = System.Diagnostics.Stopwatch.StartNew();
            while (last == SendNow.Sent && watch.Elapsed < TimeSpan.FromSeconds(30))
            {
                BinaryPrimitives.WriteInt32LittleEndian(payload, sent);
                last = client.TrySendNow(payload);
                if (last != SendNow.NotNow)
                {
                    sent++;
                }
            }
            Assert.That(last, Is.EqualTo(SendNow.Partly), "the socket filled (nobody reads) and the send returned instead of waiting");
            BinaryPrimitives.WriteInt32LittleEndian(payload, -1);
            Assert.That(client.TrySendNow(payload), Is.EqualTo(SendNow.NotNow), "nothing more is taken now while a record's tail waits");

            Task reading = Task.Run(async () =>
            {
                var buffer = new byte[payload.Length + SecureChannel.TagBytes];
                for (int i = 0; i <= sent; i++)
                {
                    Assert.That(await server.ReceiveAsync(buffer), Is.EqualTo(payload.Length));
                    Assert.That(BinaryPrimitives.ReadInt32LittleEndian(buffer), Is.EqualTo(i), "records in the order they were taken");
                }
            });
            await client.FlushAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30));
            BinaryPrimitives.WriteInt32LittleEndian(payload, sent);
            await client.SendAsync(payload).AsTask().WaitAsync(TimeSpan.FromSeconds(30));
            await reading.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.That(server.RecordsReceived, Is.EqualTo((ulong)sent + 1));
        }
    }

    [Test]
    public async Task Sending_and_receiving_a_record_allocates_nothing_once_warm()
    {
        (SecureChannel client, SecureChannel server) = await ChannelHarness.ConnectedAsync(s_client, s_server);
        using (client)
        using (server)
        {
            var payload = new byte[1024];
            var buffer = new byte[1024 + SecureChannel.TagBytes];
            for (int i = 0; i < 10; i++)
            {
                client.Send(payload);
                await server.ReceiveAsync(buffer);
            }
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 100; i++)
            {
                client.Send(payload);
            }
            long afterSends = GC.GetAllocatedBytesForCurrentThread();
            int completedAtOnce = 0, bytes = 0;
            for (int i = 0; i < 100; i++)
            {
                ValueTask<int> receive = server.ReceiveAsync(buffer); // the bytes are there: completes at once, on this thread
                completedAtOnce += receive.IsCompletedSuccessfully ? 1 : 0;
                bytes += await receive;
            }
            long afterReceives = GC.GetAllocatedBytesForCurrentThread();
            Assert.That((completedAtOnce, bytes), Is.EqualTo((100, 100 * 1024)));
            Assert.That(afterSends - before, Is.Zero, "bytes allocated by 100 blocking sends");
            Assert.That(afterReceives - afterSends, Is.Zero, "bytes allocated by 100 receives");
        }
    }

    /// <summary>What the next receive throws (null if it returned a record or the end).</summary>
    private static async Task<Exception?> FailureOf(SecureChannel channel, int bufferBytes = 4096)
    {
        try
        {
            int n = await channel.ReceiveAsync(new byte[bufferBytes]).AsTask().WaitAsync(TimeSpan.FromSeconds(30));
            return n == 0 ? new EndOfStreamException("closed cleanly") : null;
        }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            return e;
        }
    }
}
