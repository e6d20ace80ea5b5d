using System.Text.Json;
using NSec.Cryptography;

namespace Engine.Security;

/// <summary>
/// What one process needs to be a member of its cluster: the roster (<c>cluster.json</c>) and its
/// own principal's private key (<c>NAME.key</c>). Made once by <c>engine cluster init</c>; the
/// operator copies <c>cluster.json</c> to every member and each key file only to its principal.
/// </summary>
/// <remarks>
/// A key file (mode 0600) holds:
/// <code>
/// { "version": 1, "cluster_id": "32 hex digits", "name": "node-a", "role": "node", "private_key": "64 hex digits (Ed25519 seed)" }
/// </code>
/// <see cref="Load"/> refuses a key file whose cluster id is not the roster's, whose name is not in
/// the roster, whose role differs from the roster's, or whose key does not give the public key the
/// roster has for that name (a key from another <c>cluster init</c>, or a file renamed to pose as
/// another principal).
/// </remarks>
public sealed class ClusterCredentials
{
    /// <summary>Bytes of an Ed25519 private key seed.</summary>
    public const int PrivateKeyBytes = 32;

    /// <summary>Longest key file read (bytes).</summary>
    private const int MaxKeyFileBytes = 16 << 10;

    private ClusterCredentials(ClusterRoster roster, Principal self, Key signingKey)
    {
        Roster = roster;
        Self = self;
        SigningKey = signingKey;
    }

    /// <summary>The cluster's public roster.</summary>
    public ClusterRoster Roster { get; }

    /// <summary>Who this process is in the cluster.</summary>
    public Principal Self { get; }

    /// <summary>True for the built-in development cluster, which authenticates nobody (see <see cref="ClusterRoster.Development"/>).</summary>
    public bool IsDevelopment => Roster.IsDevelopment;

    internal Key SigningKey { get; }

    /// <summary>Loads and cross-checks the roster and this principal's key file.</summary>
    /// <exception cref="InvalidDataException">Either file is invalid, or the key does not belong to the roster; the message says which and why.</exception>
    /// <exception cref="IOException">A file cannot be read.</exception>
    public static ClusterCredentials Load(string clusterJsonPath, string keyPath)
    {
        ClusterRoster roster = ClusterRoster.Load(clusterJsonPath);
        (byte[] clusterId, string name, string roleName, byte[] seed) = ReadKeyFile(keyPath);
        if (!clusterId.AsSpan().SequenceEqual(roster.ClusterId))
        {
            throw new InvalidDataException($"{keyPath}: the key belongs to cluster {Convert.ToHexStringLower(clusterId)}, but {clusterJsonPath} is cluster {roster.ClusterIdHex}");
        }
        Principal self = roster.Find(name)
            ?? throw new InvalidDataException($"{keyPath}: '{Principal.Printable(name)}' is not a principal of {clusterJsonPath}");
        PrincipalRole role = Principal.ParseRole(roleName)
            ?? throw new InvalidDataException($"{keyPath}: role: unknown role '{Principal.Printable(roleName)}' (node, witness, operator or observer)");
        if (role != self.Role)
        {
            throw new InvalidDataException($"{keyPath}: says '{name}' is a {roleName}, but {clusterJsonPath} has it as a {Principal.RoleName(self.Role)}");
        }
        Key key = ImportSeed(seed);
        if (!key.PublicKey.Export(KeyBlobFormat.RawPublicKey).AsSpan().SequenceEqual(self.PublicKey))
        {
            key.Dispose();
            throw new InvalidDataException($"{keyPath}: this private key does not match the public key of '{name}' in {clusterJsonPath} (a key of another cluster init, or another principal's)");
        }
        return new ClusterCredentials(roster, self, key);
    }

    /// <summary>
    /// Credentials in the built-in development cluster for <paramref name="name"/> (any valid name;
    /// its role follows from the name, see <see cref="ClusterRoster.Development"/>). Authenticates
    /// nobody: the keys are derived from a constant in the source. For loopback and tests.
    /// </summary>
    public static ClusterCredentials Development(string name)
    {
        Principal.CheckName(name);
        Principal self = ClusterRoster.Development.Find(name)!;
        return new ClusterCredentials(ClusterRoster.Development, self, ImportSeed(ClusterRoster.DevelopmentSeed(name)));
    }

    /// <summary>
    /// Credentials that claim <paramref name="self"/> but sign with <paramref name="seed"/>, unchecked:
    /// what an impostor holds (a roster entry's name without its key). Tests only.
    /// </summary>
    internal static ClusterCredentials Unchecked(ClusterRoster roster, Principal self, byte[] seed) => new(roster, self, ImportSeed(seed));

    /// <summary>
    /// Signs <paramref name="message"/> as this principal under <paramref name="context"/> (1-64
    /// printable ASCII characters naming the use, e.g. "admin/go-solo"); anyone with the roster checks
    /// it with <see cref="Principal.Verify"/>. The bytes signed are "engine/sign/v1/" + context + NUL +
    /// message, never a handshake's, so a signature made here cannot stand in for one on a link.
    /// </summary>
    public byte[] Sign(string context, ReadOnlySpan<byte> message) =>
        SignatureAlgorithm.Ed25519.Sign(SigningKey, Principal.SignedMessage(context, message));

    /// <summary>
    /// Reads a key file (bounded, version checked): its cluster id, name, role and Ed25519 seed.
    /// The caller checks them against the roster.
    /// </summary>
    /// <exception cref="InvalidDataException">It is not a key file; the message says why.</exception>
    /// <exception cref="IOException">It cannot be read.</exception>
    internal static (byte[] ClusterId, string Name, string Role, byte[] Seed) ReadKeyFile(string keyPath)
    {
        var info = new FileInfo(keyPath);
        if (!info.Exists)
        {
            throw new FileNotFoundException($"{keyPath}: no such key file", keyPath);
        }
        if (info.Length > MaxKeyFileBytes)
        {
            throw new InvalidDataException($"{keyPath}: {info.Length:N0} bytes is too large for a key file");
        }
        try
        {
            using JsonDocument document = JsonDocument.Parse(File.ReadAllText(keyPath), new JsonDocumentOptions { MaxDepth = 4 });
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw ClusterRoster.Bad(keyPath, "", "expected a JSON object");
            }
            ClusterRoster.CheckVersion(root, keyPath);
            return (ClusterRoster.Hex(root, "cluster_id", ClusterRoster.ClusterIdBytes, keyPath, "a cluster id"),
                ClusterRoster.Text(root, "name", keyPath),
                ClusterRoster.Text(root, "role", keyPath),
                ClusterRoster.Hex(root, "private_key", PrivateKeyBytes, keyPath, "an Ed25519 private key seed"));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{keyPath}: not valid JSON: {e.Message}", e);
        }
    }

    internal static Key ImportSeed(ReadOnlySpan<byte> seed) =>
        Key.Import(SignatureAlgorithm.Ed25519, seed, KeyBlobFormat.RawPrivateKey, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.None });

    public override string ToString() => $"{Self} in cluster {Roster.ClusterIdHex}{(IsDevelopment ? " (DEVELOPMENT: keys known to everyone)" : "")}";
}
