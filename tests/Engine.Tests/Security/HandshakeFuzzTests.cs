using System.Net.Sockets;
using Engine.Security;

namespace Engine.Tests.Security;

/// <summary>
/// Seeded random and mutated handshakes against both ends: every one ends in a refusal (a value on
/// the server, a <see cref="LinkRefusedException"/> on the client), never another exception, never a hang.
/// </summary>
public class HandshakeFuzzTests
{
    private const int Seed = 20261202;
    private const int Cases = 150;

    private static readonly ClusterCredentials s_server = ClusterCredentials.Development("node-a");
    private static readonly ClusterCredentials s_client = ClusterCredentials.Development("node-b");

    [Test]
    public async Task Random_and_mutated_client_bytes_are_refused_by_the_server()
    {
        var random = new Random(Seed);
        byte[][] valid = await CaptureAsync();
        for (int i = 0; i < Cases; i++)
        {
            byte[] bytes = (i % 4) switch
            {
                0 => Random(random, random.Next(0, 600)),
                1 => Mutate(random, valid[0]),
                2 => [.. Mutate(random, valid[0]), .. Mutate(random, valid[2])],
                _ => [.. valid[0], .. Mutate(random, valid[2])], // a stale or altered finish: signed over another session
            };
            (Socket c, Socket s) = ChannelHarness.Pair();
            using (c)
            {
                try
                {
                    c.Send(bytes);
                    c.Shutdown(SocketShutdown.Send);
                }
                catch (SocketException)
                {
                    // The server refused and closed before everything went: fine.
                }
                Task<AcceptOutcome> accepting = SecureChannel.AcceptAsync(s, s_server, LinkPurpose.Replication, ChannelHarness.Nodes);
                AcceptOutcome outcome;
                try
                {
                    outcome = await accepting.WaitAsync(TimeSpan.FromSeconds(30));
                }
                catch (Exception e)
                {
                    Assert.Fail($"seed {Seed}, case {i}: {e.GetType().Name} escaped the server: {e.Message}");
                    throw;
                }
                Assert.That(outcome.Accepted, Is.False, $"seed {Seed}, case {i}: a channel from {bytes.Length} altered bytes");
                Assert.That(outcome.Refusal, Is.Not.Null, $"seed {Seed}, case {i}");
            }
        }
    }

    [Test]
    public async Task Random_and_mutated_server_bytes_are_refused_by_the_client()
    {
        var random = new Random(Seed + 1);
        byte[][] valid = await CaptureAsync();
        for (int i = 0; i < Cases; i++)
        {
            (Socket c, Socket s) = ChannelHarness.Pair();
            using (s)
            {
                Task<SecureChannel> connecting = SecureChannel.ConnectAsync(c, s_client, LinkPurpose.Replication, PrincipalRole.Node);
                Assert.That(await ChannelHarness.ReadMessageAsync(s), Is.Not.Null, "the client's hello");
                byte[] bytes = (i % 4) switch
                {
                    0 => Random(random, random.Next(0, 600)),
                    1 => Mutate(random, valid[1]),
                    2 => [.. valid[1], .. Mutate(random, valid[3])], // the stale hello fails its signature first
                    _ => Mutate(random, valid[3]),
                };
                try
                {
                    s.Send(bytes);
                    s.Shutdown(SocketShutdown.Send);
                }
                catch (SocketException)
                {
                    // The client refused and closed first.
                }
                try
                {
                    using SecureChannel channel = await connecting.WaitAsync(TimeSpan.FromSeconds(30));
                    Assert.Fail($"seed {Seed + 1}, case {i}: the client accepted {bytes.Length} altered bytes as a server");
                }
                catch (LinkRefusedException)
                {
                    // Expected: a refusal, with its reason.
                }
                catch (Exception e) when (e is not AssertionException)
                {
                    Assert.Fail($"seed {Seed + 1}, case {i}: {e.GetType().Name} escaped the client: {e.Message}");
                }
            }
        }
    }

    /// <summary>The four messages of one real handshake (hello, answer, finish, done).</summary>
    private static async Task<byte[][]> CaptureAsync()
    {
        var messages = new byte[4][];
        using ChannelHarness.Middle middle = await ChannelHarness.ThroughMiddleAsync(s_client, s_server, (i, bytes) => messages[i] = (byte[])bytes.Clone());
        Assert.That(middle.Server.Accepted && middle.Client is not null, Is.True, "the captured handshake succeeded");
        return messages;
    }

    private static byte[] Random(Random random, int length)
    {
        var bytes = new byte[length];
        random.NextBytes(bytes);
        return bytes;
    }

    /// <summary>One of: flip 1-3 bits, set a byte, truncate, extend, or change the length prefix.</summary>
    private static byte[] Mutate(Random random, byte[] valid)
    {
        byte[] bytes = (byte[])valid.Clone();
        switch (random.Next(5))
        {
            case 0:
                for (int k = random.Next(1, 4); k > 0; k--)
                {
                    bytes[random.Next(bytes.Length)] ^= (byte)(1 << random.Next(8));
                }
                return bytes;
            case 1:
                bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
                return bytes;
            case 2:
                return bytes[..random.Next(bytes.Length)];
            case 3:
                return [.. bytes, .. Random(random, random.Next(1, 300))];
            default:
                bytes[0] = (byte)random.Next(256);
                bytes[1] = (byte)random.Next(2);
                return bytes;
        }
    }
}
