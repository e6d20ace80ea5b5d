using NSec.Cryptography;

namespace Engine.Security;

/// <summary>
/// The cluster's ledger key: the Ed25519 key that signs the ledger's heads (a root over every block
/// hash so far, Certificate-Transparency style), so that anyone with the roster's
/// <c>ledger_public_key</c> can check, offline, that a block is in the ledger the cluster wrote.
/// Made by <c>engine cluster init</c> (<c>ledger.key</c>); every node that can become primary holds it.
/// </summary>
/// <remarks>
/// The bytes signed are "engine/sign/v1/ledger/head" + NUL + the head's fields
/// (<see cref="Principal.Verify"/>'s scheme under its own context), so a head's signature is never a
/// principal's signature of anything else, nor the reverse.
/// </remarks>
public sealed class LedgerKey : IDisposable
{
    /// <summary>The signing context of a signed head.</summary>
    public const string HeadContext = "ledger/head";

    /// <summary>Bytes of an Ed25519 signature.</summary>
    public const int SignatureBytes = 64;

    /// <summary>Bytes of an Ed25519 public key.</summary>
    public const int PublicKeyBytes = 32;

    private readonly Key _key;
    private readonly byte[] _publicKey;

    private LedgerKey(Key key)
    {
        _key = key;
        _publicKey = key.PublicKey.Export(KeyBlobFormat.RawPublicKey);
    }

    /// <summary>The public key (the roster's <c>ledger_public_key</c>).</summary>
    public ReadOnlySpan<byte> PublicKey => _publicKey;

    /// <summary>The development cluster's ledger key: derived from a constant in the source, so it proves nothing. Loopback and tests.</summary>
    public static LedgerKey Development() => new(ClusterCredentials.ImportSeed(ClusterRoster.DevelopmentSeed("/ledger")));

    /// <summary>Loads <c>ledger.key</c> and checks it against the roster: same cluster, and the roster's ledger public key.</summary>
    /// <exception cref="InvalidDataException">The file is not a ledger key of this cluster; the message says why.</exception>
    /// <exception cref="IOException">A file cannot be read.</exception>
    public static LedgerKey Load(string clusterJsonPath, string keyPath)
    {
        ClusterRoster roster = ClusterRoster.Load(clusterJsonPath);
        (byte[] clusterId, _, string role, byte[] seed) = ClusterCredentials.ReadKeyFile(keyPath);
        if (role != "ledger")
        {
            throw ClusterRoster.Bad(keyPath, "role", $"'{Principal.Printable(role)}': this is not the ledger key (ledger.key from `engine cluster init`)");
        }
        if (!clusterId.AsSpan().SequenceEqual(roster.ClusterId))
        {
            throw new InvalidDataException($"{keyPath}: the key belongs to cluster {Convert.ToHexStringLower(clusterId)}, but {clusterJsonPath} is cluster {roster.ClusterIdHex}");
        }
        var key = new LedgerKey(ClusterCredentials.ImportSeed(seed));
        System.Security.Cryptography.CryptographicOperations.ZeroMemory(seed);
        if (!key.PublicKey.SequenceEqual(roster.LedgerPublicKey))
        {
            key.Dispose();
            throw new InvalidDataException($"{keyPath}: this key does not match the ledger public key of {clusterJsonPath} (a key of another cluster init)");
        }
        return key;
    }

    /// <summary>Signs a head's fields (<paramref name="head"/>, the bytes the signature covers).</summary>
    public byte[] SignHead(ReadOnlySpan<byte> head) => SignatureAlgorithm.Ed25519.Sign(_key, Principal.SignedMessage(HeadContext, head));

    /// <summary>Whether <paramref name="signature"/> is the signature of <paramref name="head"/> by the ledger key <paramref name="publicKey"/>; false for a malformed key or signature.</summary>
    public static bool VerifyHead(ReadOnlySpan<byte> publicKey, ReadOnlySpan<byte> head, ReadOnlySpan<byte> signature)
    {
        if (signature.Length != SignatureBytes
            || !NSec.Cryptography.PublicKey.TryImport(SignatureAlgorithm.Ed25519, publicKey, KeyBlobFormat.RawPublicKey, out NSec.Cryptography.PublicKey? key))
        {
            return false;
        }
        return SignatureAlgorithm.Ed25519.Verify(key!, Principal.SignedMessage(HeadContext, head), signature);
    }

    public void Dispose() => _key.Dispose();
}
