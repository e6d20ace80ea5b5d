using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Engine.Client;
using Engine.Core.Server;
using Engine.IntegrationTests.Support;
using Engine.Protocol;
using Engine.Replication;

namespace Engine.IntegrationTests;

/// <summary>
/// The client port against hostile and careless clients, with a real <c>engine serve</c>: a flood
/// of unauthenticated connections while a real client trades, failed logons from one address,
/// the development configuration on a network address, hashed tokens, TLS, and a backup that
/// answers "not primary" instead of leaving a logon in its backlog. Flood sources use other
/// loopback addresses (127.0.0.0/8 is all local on Linux) than the real clients (127.0.0.1).
/// </summary>
public class GatewaySecurityTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);
    private static readonly int[] s_accountOne = [1];

    private static Transaction Order(ulong id, Side side = Side.Buy, long price = 990) =>
        Transaction.NewOrder(0, 0, 1, 1, id, side, OrderType.Limit, TimeInForce.Gtc, price, 1);

    [Test]
    public async Task A_flood_of_unauthenticated_connections_keeps_memory_and_log_bounded_while_a_real_client_trades()
    {
        const int Connections = 4000;
        const int Workers = 32;
        const int Seed = 20261210;
        TestContext.Out.WriteLine($"seed {Seed}");
        // A heap limit far above what the engine needs, far below what 2 × 4 MiB per connection would
        // take: the code before the fix runs out of memory here instead of taking the machine's.
        using var server = new EngineServer(environment: new Dictionary<string, string> { ["DOTNET_GCHeapHardLimit"] = "0x20000000" });
        await using EngineClient trader = await server.ConnectAsync(1);
        Assert.That((await trader.SubmitAsync(Order(1))).Accepted, Is.True);

        NodeStatus before = (await server.StatusAsync(state: false)).Status!;
        int linesBefore = Lines(server.Process.LogText);
        long peakRssBefore = PeakRssBytes(server.Process.Id);

        // The real client trades all through the flood; every order must be accepted.
        using var flooding = new CancellationTokenSource();
        long traded = 0;
        Task trading = Task.Run(async () =>
        {
            for (ulong id = 2; !flooding.IsCancellationRequested; id++)
            {
                SubmitResult result = await trader.SubmitAsync(Order(id, id % 2 == 0 ? Side.Buy : Side.Sell, id % 2 == 0 ? 990 : 1010)).WaitAsync(Wait);
                Assert.That(result.Accepted, Is.True, $"order {id} during the flood: {result}");
                Interlocked.Increment(ref traded);
            }
        });

        var idle = new System.Collections.Concurrent.ConcurrentBag<Socket>();
        long issued = 0;
        SubmitResult? midFlood = null;
        var clock = Stopwatch.StartNew();
        try
        {
            Task[] workers = [.. Enumerable.Range(0, Workers).Select(w => Task.Run(async () =>
            {
                var random = new Random(Seed + w);
                while (Interlocked.Increment(ref issued) <= Connections)
                {
                    int kind = random.Next(3);
                    // Idle connections come from 16 addresses, garbage and failing logons from 4 each.
                    string from = kind switch
                    {
                        0 => $"127.0.1.{1 + random.Next(16)}",
                        1 => $"127.0.2.{1 + random.Next(4)}",
                        _ => $"127.0.3.{1 + random.Next(4)}",
                    };
                    Socket? socket = null;
                    try
                    {
                        socket = await Connect(server.Port, from);
                        switch (kind)
                        {
                            case 0:
                                idle.Add(socket); // says nothing, stays open
                                socket = null;
                                break;
                            case 1:
                                var garbage = new byte[1 + random.Next(300)];
                                random.NextBytes(garbage);
                                await socket.SendAsync(garbage);
                                break;
                            default:
                                await socket.SendAsync(LogonFrame((uint)(1 + random.Next(64)), $"wrong-{random.Next()}"));
                                await ReadAnswerOrClose(socket);
                                break;
                        }
                    }
                    catch (SocketException)
                    {
                        // Refused or reset by the engine: what a flood should get.
                    }
                    finally
                    {
                        socket?.Dispose();
                    }
                }
            }))];

            // Halfway, a second real client logs on and trades.
            Until(() => Interlocked.Read(ref issued) >= Connections / 2, "half the flood");
            await using (EngineClient second = await server.ConnectAsync(2))
            {
                midFlood = await second.SubmitAsync(Order(1, Side.Sell, 2000));
            }
            await Task.WhenAll(workers).WaitAsync(TimeSpan.FromMinutes(5));
        }
        finally
        {
            await flooding.CancelAsync();
            foreach (Socket socket in idle)
            {
                socket.Dispose();
            }
        }
        await trading.WaitAsync(Wait);
        double seconds = clock.Elapsed.TotalSeconds;

        NodeStatus after = (await server.StatusAsync(state: false)).Status!;
        long allocated = after.AllocatedBytes - before.AllocatedBytes;
        int lines = Lines(server.Process.LogText) - linesBefore;
        long peakRssGrowth = PeakRssBytes(server.Process.Id) - peakRssBefore;
        GatewayStats gateway = after.Gateway!;
        TestContext.Out.WriteLine($"{Connections} connections in {seconds:F1} s; {traded} orders traded meanwhile; engine allocated {allocated / 1e6:F1} MB, " +
            $"peak RSS +{peakRssGrowth / 1e6:F1} MB, {lines} log lines; gateway {gateway}");

        Assert.Multiple(() =>
        {
            Assert.That(midFlood?.Accepted, Is.True, $"a client logging on during the flood trades: {midFlood}");
            Assert.That(Interlocked.Read(ref traded), Is.GreaterThan(0), "the real client traded during the flood");
            // 2 × 4 MiB per connection before logon would be gigabytes; a few KiB each is a few MB.
            Assert.That(allocated, Is.LessThan(128L << 20), "bytes the engine allocated during the flood");
            Assert.That(peakRssGrowth, Is.LessThan(256L << 20), "growth of the engine's peak resident memory");
            // One line per connection would be thousands; aggregated, a few per source and second.
            Assert.That(lines, Is.LessThan(Connections / 4), "log lines written during the flood");
            Assert.That(gateway.RefusedThrottled + gateway.PendingEvicted, Is.GreaterThan(0), "the limits were reached");
        });
        // The engine is still whole: a new logon after the flood works.
        await using EngineClient third = await server.ConnectAsync(3);
        Assert.That((await third.SubmitAsync(Order(1))).Accepted, Is.True);
    }

    [Test]
    public async Task Failed_logons_from_one_address_get_it_refused_for_a_while_and_nobody_else()
    {
        using var server = new EngineServer(environment: new Dictionary<string, string>
        {
            ["ENGINE_GATEWAY__FAILEDLOGONLIMIT"] = "5",
            ["ENGINE_GATEWAY__FAILEDLOGONBLOCKMS"] = "600000",
        });
        for (int i = 0; i < 5; i++)
        {
            using Socket attempt = await Connect(server.Port, "127.0.0.7");
            await attempt.SendAsync(LogonFrame(1, "guess-" + i));
            Assert.That((await ReadAck(attempt)).Status, Is.EqualTo(LogonStatus.BadCredentials), $"guess {i}");
        }
        // The next one from that address is refused before it says anything.
        using (Socket blocked = await Connect(server.Port, "127.0.0.7"))
        {
            Assert.That((await ReadAck(blocked)).Status, Is.EqualTo(LogonStatus.Throttled), "refused at accept, even with the right token to come");
        }
        // Another address is not affected, not even for the same client id.
        using (Socket other = await Connect(server.Port, "127.0.0.8"))
        {
            await other.SendAsync(LogonFrame(1, "dev-token-1"));
            Assert.That((await ReadAck(other)).Status, Is.EqualTo(LogonStatus.Ok));
        }
        GatewayStats gateway = (await server.StatusAsync(state: false)).Status!.Gateway!;
        Assert.Multiple(() =>
        {
            Assert.That(gateway.LogonsFailed, Is.EqualTo(5));
            Assert.That(gateway.RefusedThrottled, Is.EqualTo(1));
            Assert.That(gateway.BlockedAddresses, Is.EqualTo(1));
        });
        server.Process.WaitForLog(o => o.Contains("127.0.0.7 failed 5 logons", StringComparison.Ordinal), "the block in the log", Wait);
    }

    [Test]
    public void The_development_configuration_is_refused_on_a_network_address_unless_the_operator_accepts_the_risk()
    {
        string data = Path.Combine(Path.GetTempPath(), $"devnet-{Guid.NewGuid():N}");
        try
        {
            // 0.0.0.0 is every address of this machine; port 0 so nothing collides. No traffic is sent anywhere.
            using (EngineProcess refused = EngineProcess.Start("serve", "--data", data, "--listen", "0.0.0.0:0"))
            {
                Assert.That(refused.WaitForExit(Wait), Is.EqualTo(2));
                Assert.That(refused.StdErr, Does.Contain("development configuration").And.Contain("--allow-dev-config-on-network"));
            }
            using (EngineProcess allowed = EngineProcess.Start("serve", "--data", data, "--listen", "0.0.0.0:0", "--allow-dev-config-on-network"))
            {
                allowed.WaitForLog(o => o.Contains("listening for front-ends", StringComparison.Ordinal), "the engine to serve with the flag", Wait);
                Assert.That(allowed.Terminate(Wait), Is.Zero);
            }
        }
        finally
        {
            if (Directory.Exists(data))
            {
                Directory.Delete(data, recursive: true);
            }
        }
    }

    [Test]
    public async Task A_token_hash_from_engine_token_hash_logs_its_token_on_and_nothing_else()
    {
        string root = Path.Combine(Path.GetTempPath(), $"tokens-{Guid.NewGuid():N}");
        Directory.CreateDirectory(root);
        try
        {
            string given = Run("token", "hash", "--token", "s3cret-token-one").Trim();
            string[] made = Run("token", "hash").Trim().Split('\n');
            Assert.That(given, Does.StartWith("pbkdf2-sha256$"));
            Assert.That(made, Has.Length.EqualTo(2));
            string madeToken = made[0]["token: ".Length..].Trim();
            string madeHash = made[1]["hash: ".Length..].Trim();

            string config = Path.Combine(root, "engine.json");
            await File.WriteAllTextAsync(config, JsonSerializer.Serialize(new
            {
                Instruments = new[] { new { Id = 1, Symbol = "ACME", TickSize = 1 } },
                Accounts = new[] { new { Id = 1 } },
                Clients = new object[]
                {
                    new { Id = 1, TokenHash = given, Accounts = s_accountOne },
                    new { Id = 2, TokenHash = madeHash, Accounts = s_accountOne },
                    new { Id = 3, Token = "plain-token-three", Accounts = s_accountOne },
                },
            }));
            using var server = new EngineServer(Path.Combine(root, "data"), null, "--config", config);
            Assert.That(server.Process.LogText, Does.Contain("WARNING: clients 3 have their token in clear"));

            await using (EngineClient one = await server.ConnectAsync(1, "s3cret-token-one"))
            {
                Assert.That((await one.SubmitAsync(Order(1))).Accepted, Is.True);
            }
            await using (EngineClient two = await server.ConnectAsync(2, madeToken))
            {
                Assert.That((await two.SubmitAsync(Order(1))).Accepted, Is.True);
            }
            await using (EngineClient three = await server.ConnectAsync(3, "plain-token-three"))
            {
                Assert.That((await three.SubmitAsync(Order(1))).Accepted, Is.True);
            }
            var wrong = Assert.ThrowsAsync<UnauthorizedAccessException>(async () => await server.ConnectAsync(1, "s3cret-token-onE"));
            Assert.That(wrong!.Message, Does.Contain("BadCredentials"));
            Assert.ThrowsAsync<UnauthorizedAccessException>(async () => await server.ConnectAsync(2, "s3cret-token-one"), "another client's token");
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Test]
    public async Task Over_TLS_a_client_logs_on_and_trades_and_a_plaintext_client_is_told_to_use_TLS()
    {
        string root = Path.Combine(Path.GetTempPath(), $"tls-{Guid.NewGuid():N}");
        Directory.CreateDirectory(root);
        try
        {
            (string certificate, string key) = SelfSigned(root);
            using var server = new EngineServer(Path.Combine(root, "data"), null, "--tls-cert", certificate, "--tls-key", key);
            var tls = new ClientTlsOptions { TrustedCertificatesFile = certificate };

            await using (EngineClient client = await EngineClient.ConnectAsync(new ClientOptions { Endpoints = [server.Endpoint], ClientId = 1, Token = "dev-token-1", Tls = tls }))
            {
                var reports = new List<ExecutionReport>();
                client.Executed += r => { lock (reports) { reports.Add(r); } };
                SubmitResult bid = await client.SubmitAsync(Order(1, Side.Buy, 1000));
                SubmitResult ask = await client.SubmitAsync(Order(2, Side.Sell, 1000));
                Assert.That(bid.Accepted && ask.Accepted, Is.True, $"{bid} / {ask}");
                Until(() => { lock (reports) { return reports.Count == 2; } }, "both fills over TLS");
            }

            var plaintext = Assert.ThrowsAsync<UnauthorizedAccessException>(async () => await server.ConnectAsync(2));
            Assert.That(plaintext!.Message, Does.Contain("requires TLS"));

            var untrusted = Assert.ThrowsAsync<EngineUnavailableException>(async () => await EngineClient.ConnectAsync(new ClientOptions
            {
                Endpoints = [server.Endpoint],
                ClientId = 3,
                Token = "dev-token-3",
                Tls = new ClientTlsOptions(), // the system's trust store does not know a self-signed certificate
                ReconnectFor = TimeSpan.FromSeconds(1),
            }));
            Assert.That(untrusted!.Message, Does.Contain("certificate"));

            GatewayStats gateway = (await server.StatusAsync(state: false)).Status!.Gateway!;
            Assert.That(gateway.TlsFailures, Is.GreaterThanOrEqualTo(1), "the plaintext attempt is counted");
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Test]
    public async Task A_backup_answers_a_logon_not_primary_naming_the_primary_and_the_client_goes_there()
    {
        string root = Path.Combine(Path.GetTempPath(), $"notprimary-{Guid.NewGuid():N}");
        int primaryPort = Ports.Free(), backupPort = Ports.Free(), primaryReplication = Ports.Free(), backupReplication = Ports.Free();
        try
        {
            using var primary = EngineProcess.Start("serve", "--role", "primary", "--data", Path.Combine(root, "a"), "--listen", $"127.0.0.1:{primaryPort}",
                "--replication-listen", $"127.0.0.1:{primaryReplication}");
            using var backup = EngineProcess.Start("serve", "--role", "backup", "--data", Path.Combine(root, "b"), "--listen", $"127.0.0.1:{backupPort}",
                "--peer", $"127.0.0.1:{primaryReplication}", "--replication-listen", $"127.0.0.1:{backupReplication}", "--allow-solo",
                "--peer-listen", $"127.0.0.1:{primaryPort}");
            primary.WaitForEvent(PairEventKind.BackupInStep, "the pair to be in step", Wait);

            using (Socket socket = await Connect(backupPort, "127.0.0.1"))
            {
                var clock = Stopwatch.StartNew();
                await socket.SendAsync(LogonFrame(1, "dev-token-1"));
                // Before, the backup never accepted: the logon sat in its backlog with no answer.
                LogonAck ack = await ReadAck(socket, TimeSpan.FromSeconds(5));
                TestContext.Out.WriteLine($"the backup answered in {clock.Elapsed.TotalMilliseconds:F1} ms");
                Assert.That(ack.Status, Is.EqualTo(LogonStatus.NotPrimary));
                Assert.That(ack.OtherNode, Is.EqualTo(new IPEndPoint(IPAddress.Loopback, primaryPort)));
            }

            // A client that lists the backup first goes where it is sent, at once.
            await using EngineClient client = await EngineClient.ConnectAsync(new ClientOptions
            {
                Endpoints = [$"127.0.0.1:{backupPort}", $"127.0.0.1:{primaryPort}"],
                ClientId = 1,
                Token = "dev-token-1",
            });
            // (On a box loaded enough to stall the primary past the silence timeout the backup takes
            // over, and then it is the node to log on to.)
            bool backupTookOver = backup.HasEvent(PairEventKind.TakeOver);
            Assert.That(client.Endpoint.Port, backupTookOver ? Is.EqualTo(primaryPort).Or.EqualTo(backupPort) : Is.EqualTo(primaryPort),
                $"primary {primaryPort}, backup {backupPort}; backup's log:\n{backup.LogText}");
            Assert.That((await client.SubmitAsync(Order(1))).Accepted, Is.True);
            backup.WaitForLog(o => o.Contains("not primary", StringComparison.Ordinal), "the backup's log line", Wait);
        }
        finally
        {
            if (Directory.Exists(root))
            {
                Directory.Delete(root, recursive: true);
            }
        }
    }

    private static (string Certificate, string Key) SelfSigned(string directory)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=engine-test", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], critical: false)); // server authentication
        using X509Certificate2 certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        string certificateFile = Path.Combine(directory, "cert.pem"), keyFile = Path.Combine(directory, "key.pem");
        File.WriteAllText(certificateFile, certificate.ExportCertificatePem());
        File.WriteAllText(keyFile, key.ExportPkcs8PrivateKeyPem());
        return (certificateFile, keyFile);
    }

    private static string Run(params string[] args)
    {
        using EngineProcess process = EngineProcess.Start(args);
        Assert.That(process.WaitForExit(Wait), Is.Zero, process.StdErr);
        return process.StdOut;
    }

    private static async Task<Socket> Connect(int port, string from)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            socket.Bind(new IPEndPoint(IPAddress.Parse(from), 0));
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), timeout.Token);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static byte[] LogonFrame(uint clientId, string token)
    {
        var frame = new byte[Frame.HeaderBytes + ReplyCodec.LogonBodyBytes];
        ReplyCodec.EncodeLogon(clientId, token, frame);
        return frame;
    }

    private static async Task<LogonAck> ReadAck(Socket socket, TimeSpan? within = null)
    {
        var frame = new byte[Frame.HeaderBytes + ReplyCodec.LogonAckBodyBytes];
        using var timeout = new CancellationTokenSource(within ?? Wait);
        int got = 0;
        try
        {
            while (got < frame.Length)
            {
                int read = await socket.ReceiveAsync(frame.AsMemory(got), SocketFlags.None, timeout.Token);
                Assert.That(read, Is.Not.Zero, "closed before the logon answer");
                got += read;
            }
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"no logon answer within {(within ?? Wait).TotalSeconds} s");
        }
        Assert.That(ReplyCodec.DecodeLogonAck(frame, out LogonAck ack), Is.EqualTo(RejectReason.None));
        return ack;
    }

    /// <summary>Reads until the engine answers or closes (a flood worker does not care which), at most 10 s.</summary>
    private static async Task ReadAnswerOrClose(Socket socket)
    {
        var buffer = new byte[256];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
        }
        catch (OperationCanceledException)
        {
        }
    }

    private static int Lines(string text) => text.Count(c => c == '\n');

    /// <summary>The process's peak resident set (VmHWM) in bytes.</summary>
    private static long PeakRssBytes(int pid)
    {
        string line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) * 1024;
    }


    private static void Until(Func<bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.That(clock.Elapsed, Is.LessThan(Wait), $"timed out waiting for {what}");
            Thread.Sleep(5);
        }
    }
}
