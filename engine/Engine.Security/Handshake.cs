using System.Buffers.Binary;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using NSec.Cryptography;

namespace Engine.Security;

/// <summary>The handshake of <see cref="SecureChannel"/> (layout and argument in its remarks).</summary>
internal static class Handshake
{
    public const byte Version = 1;

    /// <summary>Longest message body: a ServerHello with a 64-character name is 212 bytes.</summary>
    public const int MaxBodyBytes = 255;

    private const byte ClientHelloType = 1;
    private const byte ServerHelloType = 2;
    private const byte ClientFinishType = 3;
    private const byte DoneType = 4;
    private const int KeyBytes = 32;
    private const int NonceBytes = 32;
    private const int ClientHelloFixedBytes = 88;
    private const int ServerHelloFixedBytes = 84;
    private const int FinishBytes = 1 + Principal.SignatureBytes;
    private const int DoneBytes = 2;

    private static ReadOnlySpan<byte> Magic => "ENGL"u8;

    private static ReadOnlySpan<byte> ServerLabel => "engine/link/v1/server signature\0"u8;

    private static ReadOnlySpan<byte> ClientLabel => "engine/link/v1/client signature\0"u8;

    private static ReadOnlySpan<byte> ClientToServer => "engine/link/v1/client to server"u8;

    private static ReadOnlySpan<byte> ServerToClient => "engine/link/v1/server to client"u8;

    public static async Task<AcceptOutcome> ServerAsync(Socket socket, ClusterCredentials self, LinkPurpose purpose, IReadOnlyCollection<PrincipalRole> clientRoles,
        TimeSpan timeout, CancellationToken cancel)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        deadline.CancelAfter(timeout);
        var buffer = new byte[2 + MaxBodyBytes];
        string claimed = "a client";
        try
        {
            int n = await ReadMessageAsync(socket, buffer, deadline.Token).ConfigureAwait(false);
            if (n <= 0)
            {
                return Refuse(socket, n == 0 ? RefusalReason.Closed : RefusalReason.Malformed,
                    n == 0 ? "closed before saying anything" : "not a handshake of ours (bad message length)", answer: false);
            }
            byte[] m1 = buffer[..(2 + n)];
            ReadOnlySpan<byte> hello = m1.AsSpan(2);
            if (hello.Length < ClientHelloFixedBytes + 1 || hello[0] != ClientHelloType || !hello[1..5].SequenceEqual(Magic))
            {
                return Refuse(socket, RefusalReason.Malformed, "not a handshake of ours", answer: true);
            }
            if (hello[5] != Version)
            {
                return Refuse(socket, RefusalReason.Version, $"handshake version {hello[5]}, this node speaks {Version}", answer: true);
            }
            if (hello.Length != ClientHelloFixedBytes + hello[7] || !TryName(hello[ClientHelloFixedBytes..], out string name))
            {
                return Refuse(socket, RefusalReason.Malformed, "a malformed client hello (length or name)", answer: true);
            }
            claimed = $"'{name}'";
            if ((LinkPurpose)hello[6] != purpose)
            {
                return Refuse(socket, RefusalReason.Purpose, $"{claimed} asked for purpose {hello[6]}; this endpoint serves {purpose}", answer: true);
            }
            if (!hello[8..24].SequenceEqual(self.Roster.ClusterId))
            {
                return Refuse(socket, RefusalReason.WrongCluster, $"{claimed} is of cluster {Convert.ToHexStringLower(hello[8..24])}, not of ours ({self.Roster.ClusterIdHex})", answer: true);
            }
            Principal? client = self.Roster.Find(name);
            if (client is null)
            {
                return Refuse(socket, RefusalReason.UnknownPrincipal, $"{claimed} is not in our roster", answer: true);
            }
            if (!clientRoles.Contains(client.Role))
            {
                return Refuse(socket, RefusalReason.RoleNotAllowed,
                    $"{claimed} is a {Principal.RoleName(client.Role)}; {purpose} takes {string.Join(" or ", clientRoles.Select(Principal.RoleName))}", answer: true);
            }
            if (!NSec.Cryptography.PublicKey.TryImport(KeyAgreementAlgorithm.X25519, hello[24..56], KeyBlobFormat.RawPublicKey, out NSec.Cryptography.PublicKey? theirEphemeral))
            {
                return Refuse(socket, RefusalReason.BadKey, $"{claimed} sent an unusable ephemeral key", answer: true);
            }

            // Only now, for a roster member of an allowed role, any public-key work.
            using Key ephemeral = Key.Create(KeyAgreementAlgorithm.X25519);
            byte[] serverName = Encoding.ASCII.GetBytes(self.Self.Name);
            int bodyLength = ServerHelloFixedBytes + serverName.Length + Principal.SignatureBytes;
            byte[] m2 = new byte[2 + bodyLength];
            BinaryPrimitives.WriteUInt16LittleEndian(m2, (ushort)bodyLength);
            Span<byte> answer = m2.AsSpan(2);
            answer[0] = ServerHelloType;
            answer[1] = Version;
            answer[2] = (byte)serverName.Length;
            self.Roster.ClusterId.CopyTo(answer[4..]);
            ephemeral.PublicKey.Export(KeyBlobFormat.RawPublicKey).CopyTo(answer[20..]);
            RandomNumberGenerator.Fill(answer.Slice(52, NonceBytes));
            serverName.CopyTo(answer[ServerHelloFixedBytes..]);
            Sign(self, ServerLabel, Hash(m1, m2.AsSpan(0, m2.Length - Principal.SignatureBytes)), answer[^Principal.SignatureBytes..]);
            await socket.SendAsync(m2, SocketFlags.None, deadline.Token).ConfigureAwait(false);

            n = await ReadMessageAsync(socket, buffer, deadline.Token).ConfigureAwait(false);
            if (n <= 0)
            {
                return Refuse(socket, n == 0 ? RefusalReason.Closed : RefusalReason.Malformed,
                    n == 0 ? $"{claimed} closed the connection after our hello (it refused us?)" : $"{claimed} sent a malformed finish", answer: false);
            }
            byte[] m3 = buffer[..(2 + n)];
            if (n != FinishBytes || m3[2] != ClientFinishType)
            {
                return Refuse(socket, RefusalReason.Malformed, $"{claimed} sent a malformed finish", answer: true);
            }
            if (!Verify(client, ClientLabel, Hash(m1, m2), m3.AsSpan(3)))
            {
                return Refuse(socket, RefusalReason.BadSignature, $"{claimed} did not prove it holds the key of that name (bad signature)", answer: true);
            }
            using SharedSecret? shared = KeyAgreementAlgorithm.X25519.Agree(ephemeral, theirEphemeral!);
            if (shared is null)
            {
                return Refuse(socket, RefusalReason.BadKey, $"{claimed} sent a low-order ephemeral key", answer: true);
            }
            (byte[] clientToServer, byte[] serverToClient) = DeriveKeys(shared, m1, m2, m3);
            byte[] done = [0, 0, 0, 0];
            Done(done, RefusalReason.None);
            await socket.SendAsync(done, SocketFlags.None, deadline.Token).ConfigureAwait(false);
            return new AcceptOutcome(new SecureChannel(socket, client, purpose, sealKey: serverToClient, openKey: clientToServer), null);
        }
        catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
        {
            return Refuse(socket, RefusalReason.Timeout, $"{claimed} did not finish the handshake within {timeout.TotalMilliseconds:N0} ms", answer: false);
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
        {
            return Refuse(socket, RefusalReason.Closed, $"{claimed}: the connection failed during the handshake ({e.Message})", answer: false);
        }
        catch (OperationCanceledException)
        {
            socket.Dispose();
            throw;
        }
    }

    public static async Task<SecureChannel> ClientAsync(Socket socket, ClusterCredentials self, LinkPurpose purpose, PrincipalRole serverRole,
        TimeSpan timeout, CancellationToken cancel)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        deadline.CancelAfter(timeout);
        try
        {
            using Key ephemeral = Key.Create(KeyAgreementAlgorithm.X25519);
            byte[] ourName = Encoding.ASCII.GetBytes(self.Self.Name);
            int bodyLength = ClientHelloFixedBytes + ourName.Length;
            byte[] m1 = new byte[2 + bodyLength];
            BinaryPrimitives.WriteUInt16LittleEndian(m1, (ushort)bodyLength);
            Span<byte> hello = m1.AsSpan(2);
            hello[0] = ClientHelloType;
            Magic.CopyTo(hello[1..]);
            hello[5] = Version;
            hello[6] = (byte)purpose;
            hello[7] = (byte)ourName.Length;
            self.Roster.ClusterId.CopyTo(hello[8..]);
            ephemeral.PublicKey.Export(KeyBlobFormat.RawPublicKey).CopyTo(hello[24..]);
            RandomNumberGenerator.Fill(hello.Slice(56, NonceBytes));
            ourName.CopyTo(hello[ClientHelloFixedBytes..]);
            await socket.SendAsync(m1, SocketFlags.None, deadline.Token).ConfigureAwait(false);

            var buffer = new byte[2 + MaxBodyBytes];
            int n = await ReadMessageAsync(socket, buffer, deadline.Token).ConfigureAwait(false);
            if (n <= 0)
            {
                throw Refused(n == 0 ? RefusalReason.Closed : RefusalReason.Malformed,
                    n == 0 ? "the server closed the connection without answering (not an engine endpoint for this purpose?)" : "the server's answer is not a handshake of ours");
            }
            byte[] m2 = buffer[..(2 + n)];
            ReadOnlySpan<byte> answer = m2.AsSpan(2);
            if (answer[0] == DoneType)
            {
                throw RefusedByServer(answer);
            }
            if (answer[0] != ServerHelloType || answer.Length < ServerHelloFixedBytes + 1 + Principal.SignatureBytes)
            {
                throw Refused(RefusalReason.Malformed, "the server's answer is not a handshake of ours");
            }
            if (answer[1] != Version)
            {
                throw Refused(RefusalReason.Version, $"the server speaks handshake version {answer[1]}, this node {Version}");
            }
            if (answer.Length != ServerHelloFixedBytes + answer[2] + Principal.SignatureBytes
                || !TryName(answer.Slice(ServerHelloFixedBytes, answer[2]), out string name))
            {
                throw Refused(RefusalReason.Malformed, "a malformed server hello (length or name)");
            }
            if (!answer[4..20].SequenceEqual(self.Roster.ClusterId))
            {
                throw Refused(RefusalReason.WrongCluster, $"the server '{name}' is of cluster {Convert.ToHexStringLower(answer[4..20])}, not of ours ({self.Roster.ClusterIdHex})");
            }
            Principal server = self.Roster.Find(name)
                ?? throw Refused(RefusalReason.UnknownPrincipal, $"the server '{name}' is not in our roster");
            if (server.Role != serverRole)
            {
                throw Refused(RefusalReason.RoleNotAllowed, $"the server '{name}' is a {Principal.RoleName(server.Role)}, not a {Principal.RoleName(serverRole)}");
            }
            if (!Verify(server, ServerLabel, Hash(m1, m2.AsSpan(0, m2.Length - Principal.SignatureBytes)), answer[^Principal.SignatureBytes..]))
            {
                throw Refused(RefusalReason.BadSignature, $"the server '{name}' did not prove it holds the key of that name (bad signature)");
            }
            if (!NSec.Cryptography.PublicKey.TryImport(KeyAgreementAlgorithm.X25519, answer.Slice(20, KeyBytes), KeyBlobFormat.RawPublicKey, out NSec.Cryptography.PublicKey? theirEphemeral))
            {
                throw Refused(RefusalReason.BadKey, $"the server '{name}' sent an unusable ephemeral key");
            }
            byte[] m3 = new byte[2 + FinishBytes];
            BinaryPrimitives.WriteUInt16LittleEndian(m3, FinishBytes);
            m3[2] = ClientFinishType;
            Sign(self, ClientLabel, Hash(m1, m2), m3.AsSpan(3));
            using SharedSecret? shared = KeyAgreementAlgorithm.X25519.Agree(ephemeral, theirEphemeral!)
                ?? throw Refused(RefusalReason.BadKey, $"the server '{name}' sent a low-order ephemeral key");
            (byte[] clientToServer, byte[] serverToClient) = DeriveKeys(shared, m1, m2, m3);
            await socket.SendAsync(m3, SocketFlags.None, deadline.Token).ConfigureAwait(false);

            n = await ReadMessageAsync(socket, buffer, deadline.Token).ConfigureAwait(false);
            if (n <= 0)
            {
                throw Refused(n == 0 ? RefusalReason.Closed : RefusalReason.Malformed,
                    n == 0 ? $"the server '{name}' closed the connection after our signature" : $"the server '{name}' ended the handshake with a malformed message");
            }
            ReadOnlySpan<byte> done = buffer.AsSpan(2, n);
            if (done[0] != DoneType || n != DoneBytes)
            {
                throw Refused(RefusalReason.Malformed, $"the server '{name}' ended the handshake with a malformed message");
            }
            if (done[1] != (byte)RefusalReason.None)
            {
                throw RefusedByServer(done);
            }
            return new SecureChannel(socket, server, purpose, sealKey: clientToServer, openKey: serverToClient);
        }
        catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
        {
            socket.Dispose();
            throw Refused(RefusalReason.Timeout, $"no complete handshake within {timeout.TotalMilliseconds:N0} ms");
        }
        catch (LinkRefusedException)
        {
            socket.Dispose();
            throw;
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
        {
            socket.Dispose();
            throw Refused(RefusalReason.Closed, $"the connection failed during the handshake: {e.Message}");
        }
        catch (OperationCanceledException)
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>What a refusal reason means, in words a client's exception can carry.</summary>
    public static string Describe(RefusalReason reason) => reason switch
    {
        RefusalReason.Malformed => "our handshake was malformed",
        RefusalReason.Version => "it does not speak our handshake version",
        RefusalReason.Purpose => "it does not serve this purpose",
        RefusalReason.WrongCluster => "we are not of its cluster",
        RefusalReason.UnknownPrincipal => "our name is not in its roster",
        RefusalReason.RoleNotAllowed => "our role may not use this endpoint",
        RefusalReason.BadSignature => "our signature does not verify with the key its roster has for our name",
        RefusalReason.BadKey => "our ephemeral key was unusable",
        RefusalReason.Timeout => "we were too slow",
        RefusalReason.Busy => "it is busy with other handshakes",
        _ => $"reason {(byte)reason}",
    };

    /// <summary>Reads one <c>u16 length | body</c> message into <paramref name="buffer"/>; returns the body length, 0 if the peer closed, -1 if the length is out of bounds.</summary>
    private static async Task<int> ReadMessageAsync(Socket socket, byte[] buffer, CancellationToken cancel)
    {
        if (!await ReadExactlyAsync(socket, buffer.AsMemory(0, 2), cancel).ConfigureAwait(false))
        {
            return 0;
        }
        int length = BinaryPrimitives.ReadUInt16LittleEndian(buffer);
        if (length is < 2 or > MaxBodyBytes)
        {
            return -1;
        }
        return await ReadExactlyAsync(socket, buffer.AsMemory(2, length), cancel).ConfigureAwait(false) ? length : 0;
    }

    private static async Task<bool> ReadExactlyAsync(Socket socket, Memory<byte> target, CancellationToken cancel)
    {
        int got = 0;
        while (got < target.Length)
        {
            int read = await socket.ReceiveAsync(target[got..], SocketFlags.None, cancel).ConfigureAwait(false);
            if (read == 0)
            {
                return false;
            }
            got += read;
        }
        return true;
    }

    private static bool TryName(ReadOnlySpan<byte> bytes, out string name)
    {
        name = "";
        foreach (byte b in bytes)
        {
            if (b is < 0x21 or > 0x7E)
            {
                return false;
            }
        }
        string text = Encoding.ASCII.GetString(bytes);
        if (!Principal.IsValidName(text))
        {
            return false;
        }
        name = text;
        return true;
    }

    private static byte[] Hash(ReadOnlySpan<byte> first, ReadOnlySpan<byte> second, ReadOnlySpan<byte> third = default)
    {
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(first);
        hash.AppendData(second);
        hash.AppendData(third);
        return hash.GetHashAndReset();
    }

    private static void Sign(ClusterCredentials self, ReadOnlySpan<byte> label, ReadOnlySpan<byte> transcriptHash, Span<byte> signature)
    {
        byte[] signed = [.. label, .. transcriptHash];
        SignatureAlgorithm.Ed25519.Sign(self.SigningKey, signed, signature);
    }

    private static bool Verify(Principal signer, ReadOnlySpan<byte> label, ReadOnlySpan<byte> transcriptHash, ReadOnlySpan<byte> signature)
    {
        byte[] signed = [.. label, .. transcriptHash];
        return SignatureAlgorithm.Ed25519.Verify(signer.Key, signed, signature);
    }

    private static (byte[] ClientToServer, byte[] ServerToClient) DeriveKeys(SharedSecret shared, byte[] m1, byte[] m2, byte[] m3)
    {
        byte[] salt = Hash(m1, m2, m3);
        var clientToServer = new byte[KeyBytes];
        var serverToClient = new byte[KeyBytes];
        KeyDerivationAlgorithm.HkdfSha256.DeriveBytes(shared, salt, ClientToServer, clientToServer);
        KeyDerivationAlgorithm.HkdfSha256.DeriveBytes(shared, salt, ServerToClient, serverToClient);
        return (clientToServer, serverToClient);
    }

    private static void Done(Span<byte> message, RefusalReason status)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(message, DoneBytes);
        message[2] = DoneType;
        message[3] = (byte)status;
    }

    /// <summary>Tells the client why (best effort: four bytes on a fresh connection never block), closes, and returns the refusal.</summary>
    private static AcceptOutcome Refuse(Socket socket, RefusalReason reason, string detail, bool answer)
    {
        if (answer)
        {
            try
            {
                Span<byte> done = stackalloc byte[4];
                Done(done, reason);
                socket.Send(done, SocketFlags.None);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                // Gone already: nobody to tell.
            }
        }
        socket.Dispose();
        return new AcceptOutcome(null, new LinkRefusal(reason, detail));
    }

    private static LinkRefusedException Refused(RefusalReason reason, string detail) => new(new LinkRefusal(reason, detail), byPeer: false);

    private static LinkRefusedException RefusedByServer(ReadOnlySpan<byte> done)
    {
        if (done.Length != DoneBytes || done[1] == 0 || !Enum.IsDefined((RefusalReason)done[1]))
        {
            return Refused(RefusalReason.Malformed, "the server ended the handshake with a malformed message");
        }
        var reason = (RefusalReason)done[1];
        return new LinkRefusedException(new LinkRefusal(reason, Describe(reason)), byPeer: true);
    }
}
