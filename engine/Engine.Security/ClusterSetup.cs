using System.Security.Cryptography;
using System.Text.Json;
using NSec.Cryptography;

namespace Engine.Security;

/// <summary>
/// Makes a cluster's identity once (<c>engine cluster init</c>): a random cluster id, an Ed25519 key
/// pair per principal and one for the signed ledger. Writes <c>cluster.json</c> (public: copy it to
/// every member) and <c>NAME.key</c> per principal plus <c>ledger.key</c> (private: mode 0600, copy
/// each only to where it belongs).
/// </summary>
public static class ClusterSetup
{
    /// <summary>The file name of the roster in an init directory.</summary>
    public const string RosterFileName = "cluster.json";

    /// <summary>The file name of the ledger's signing key in an init directory.</summary>
    public const string LedgerKeyFileName = "ledger.key";

    /// <summary>The nodes when none are named.</summary>
    public static readonly IReadOnlyList<string> DefaultNodes = ["node-a", "node-b"];

    /// <summary>The principals every cluster has besides its nodes, with their roles.</summary>
    public static readonly IReadOnlyList<(string Name, PrincipalRole Role)> FixedPrincipals =
        [("witness", PrincipalRole.Witness), ("operator", PrincipalRole.Operator), ("observer", PrincipalRole.Observer)];

    /// <summary>
    /// Creates a new cluster in <paramref name="directory"/> (made if missing) with
    /// <paramref name="nodes"/> (default node-a, node-b) and the fixed principals; returns its roster.
    /// </summary>
    /// <exception cref="IOException">The directory already holds a cluster (or a key file of one of these names) and <paramref name="force"/> is false.</exception>
    /// <exception cref="ArgumentException">A node name is invalid or repeated, or collides with a fixed principal.</exception>
    public static ClusterRoster Init(string directory, IReadOnlyList<string>? nodes = null, bool force = false)
    {
        nodes ??= DefaultNodes;
        var names = new List<(string Name, PrincipalRole Role)>();
        foreach (string node in nodes)
        {
            Principal.CheckName(node);
            if (node.Equals(LedgerKeyFileName[..^4], StringComparison.Ordinal))
            {
                throw new ArgumentException("'ledger' is the ledger key's name, not a node's");
            }
            names.Add((node, PrincipalRole.Node));
        }
        names.AddRange(FixedPrincipals);
        if (names.Count > ClusterRoster.MaxPrincipals)
        {
            throw new ArgumentException($"at most {ClusterRoster.MaxPrincipals} principals");
        }
        string? twice = names.GroupBy(n => n.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1)?.Key;
        if (twice is not null)
        {
            throw new ArgumentException($"'{twice}' is named twice (witness, operator and observer are always there)");
        }

        Directory.CreateDirectory(directory);
        string rosterPath = Path.Combine(directory, RosterFileName);
        var files = new List<string> { rosterPath, Path.Combine(directory, LedgerKeyFileName) };
        files.AddRange(names.Select(n => KeyPath(directory, n.Name)));
        string? existing = files.FirstOrDefault(File.Exists);
        if (existing is not null && !force)
        {
            throw new IOException($"{existing} exists: {directory} already holds a cluster (--force makes a new one, and every member then needs the new files)");
        }

        byte[] clusterId = RandomNumberGenerator.GetBytes(ClusterRoster.ClusterIdBytes);
        var principals = new List<Principal>();
        var seeds = new List<byte[]>();
        foreach ((string name, PrincipalRole role) in names)
        {
            byte[] seed = RandomNumberGenerator.GetBytes(ClusterCredentials.PrivateKeyBytes);
            seeds.Add(seed);
            principals.Add(new Principal(name, role, PublicKeyOf(seed)));
        }
        byte[] ledgerSeed = RandomNumberGenerator.GetBytes(ClusterCredentials.PrivateKeyBytes);
        ClusterRoster roster = ClusterRoster.Create(clusterId, principals, PublicKeyOf(ledgerSeed));

        // Private keys first, the roster last: a half-written init has no cluster.json and is simply made again.
        for (int i = 0; i < principals.Count; i++)
        {
            WritePrivate(KeyPath(directory, principals[i].Name), KeyFile(clusterId, principals[i].Name, Principal.RoleName(principals[i].Role), seeds[i]));
            CryptographicOperations.ZeroMemory(seeds[i]);
        }
        WritePrivate(Path.Combine(directory, LedgerKeyFileName), KeyFile(clusterId, "ledger", "ledger", ledgerSeed));
        CryptographicOperations.ZeroMemory(ledgerSeed);
        File.WriteAllText(rosterPath, roster.ToJson());
        return roster;
    }

    /// <summary>Where <c>init</c> writes the key of <paramref name="name"/>.</summary>
    public static string KeyPath(string directory, string name) => Path.Combine(directory, name + ".key");

    private static byte[] PublicKeyOf(byte[] seed)
    {
        using Key key = ClusterCredentials.ImportSeed(seed);
        return key.PublicKey.Export(KeyBlobFormat.RawPublicKey);
    }

    private static byte[] KeyFile(byte[] clusterId, string name, string role, byte[] seed)
    {
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteNumber("version", ClusterRoster.FormatVersion);
            json.WriteString("cluster_id", Convert.ToHexStringLower(clusterId));
            json.WriteString("name", name);
            json.WriteString("role", role);
            json.WriteString("private_key", Convert.ToHexStringLower(seed));
            json.WriteEndObject();
        }
        stream.WriteByte((byte)'\n');
        return stream.ToArray();
    }

    /// <summary>Writes a secret: created with mode 0600 (never readable by others, not even for a moment), replacing any file there.</summary>
    private static void WritePrivate(string path, byte[] content)
    {
        File.Delete(path); // an existing file keeps its mode when overwritten; a new one gets 0600 from the start
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }
        using (var file = new FileStream(path, options))
        {
            file.Write(content);
            file.Flush(flushToDisk: true);
        }
        CryptographicOperations.ZeroMemory(content);
    }
}
