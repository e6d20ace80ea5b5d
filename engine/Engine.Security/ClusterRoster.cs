using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using NSec.Cryptography;

namespace Engine.Security;

/// <summary>
/// The public half of a cluster's identity, as in <c>cluster.json</c>: the cluster id, every
/// principal with its role and public key, and the public key of the cluster's signed ledger. Every
/// member holds the same file; it holds nothing secret. A peer is one of the cluster only if its name
/// is here and it proves it holds the private key of the public key written beside that name.
/// </summary>
/// <remarks>
/// <code>
/// {
///   "version": 1,
///   "cluster_id": "32 hex digits (16 random bytes)",
///   "principals": [ { "name": "node-a", "role": "node", "public_key": "64 hex digits (Ed25519)" }, ... ],
///   "ledger_public_key": "64 hex digits (Ed25519)"
/// }
/// </code>
/// Loading checks everything (hex lengths, known roles, unique names and keys, at most
/// <see cref="MaxPrincipals"/>) and refuses with a message that names the file and the field.
/// </remarks>
public sealed class ClusterRoster
{
    /// <summary>Bytes of a cluster id.</summary>
    public const int ClusterIdBytes = 16;

    /// <summary>Principals in one roster, at most.</summary>
    public const int MaxPrincipals = 64;

    /// <summary>The roster file's format version.</summary>
    public const int FormatVersion = 1;

    /// <summary>Longest roster file read (bytes): a roster of 64 principals is under 10 KiB.</summary>
    private const int MaxFileBytes = 256 << 10;

    private const string DevelopmentSeedPrefix = "engine development cluster/";

    private static readonly string[] s_developmentNames = ["node-a", "node-b", "witness", "operator", "observer"];

    private readonly byte[] _clusterId;
    private readonly byte[] _ledgerPublicKey;
    private readonly Dictionary<string, Principal> _byName;

    private ClusterRoster(byte[] clusterId, IReadOnlyList<Principal> principals, byte[] ledgerPublicKey, bool development)
    {
        _clusterId = clusterId;
        _ledgerPublicKey = ledgerPublicKey;
        Principals = principals;
        IsDevelopment = development;
        _byName = principals.ToDictionary(p => p.Name, StringComparer.Ordinal);
    }

    /// <summary>The cluster's id (16 bytes): every handshake carries it, so two clusters never talk.</summary>
    public ReadOnlySpan<byte> ClusterId => _clusterId;

    /// <summary>The cluster id as 32 lower-case hex digits.</summary>
    public string ClusterIdHex => Convert.ToHexStringLower(_clusterId);

    /// <summary>Every principal of the roster (for the development cluster: the well-known five).</summary>
    public IReadOnlyList<Principal> Principals { get; }

    /// <summary>The Ed25519 public key that verifies the cluster's signed ledger (used by a later format).</summary>
    public ReadOnlySpan<byte> LedgerPublicKey => _ledgerPublicKey;

    /// <summary>
    /// True for the built-in development cluster (<see cref="Development"/>): its keys follow from a
    /// constant that is in the source, so it authenticates nobody. For loopback and tests only.
    /// </summary>
    public bool IsDevelopment { get; }

    /// <summary>
    /// The built-in development cluster. Its id and every key are derived from a constant
    /// (SHA-256 of "engine development cluster/" + name), so two processes started with no
    /// credentials at all find each other in it, and so can anyone: it is for a pair on loopback
    /// (the README's commands, the tests). Its roster is open: any valid name is a principal, with
    /// the key derived from the name and a role read from the name (the part before an '@', if any:
    /// "witness", "operator" and "observer" give those roles, anything else is a node). That lets
    /// each development node be named after its replication endpoint, as the witness tells nodes apart.
    /// </summary>
    public static ClusterRoster Development { get; } = MakeDevelopment();

    /// <summary>The principal named <paramref name="name"/>, or null if there is none.</summary>
    public Principal? Find(string name)
    {
        if (_byName.TryGetValue(name, out Principal? principal))
        {
            return principal;
        }
        if (IsDevelopment && Principal.IsValidName(name))
        {
            return new Principal(name, DevelopmentRole(name), DevelopmentPublicKey(name));
        }
        return null;
    }

    /// <summary>Reads and checks <c>cluster.json</c>.</summary>
    /// <exception cref="InvalidDataException">The file is not a valid roster; the message names the file and the field.</exception>
    /// <exception cref="IOException">The file cannot be read.</exception>
    public static ClusterRoster Load(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists)
        {
            throw new FileNotFoundException($"{path}: no such cluster file (make one with `engine cluster init DIR`)", path);
        }
        if (info.Length > MaxFileBytes)
        {
            throw new InvalidDataException($"{path}: {info.Length:N0} bytes is too large for a cluster file");
        }
        return Parse(File.ReadAllText(path), path);
    }

    /// <summary>Parses and checks a roster; <paramref name="source"/> names it in error messages.</summary>
    /// <exception cref="InvalidDataException">Not a valid roster.</exception>
    public static ClusterRoster Parse(string json, string source)
    {
        try
        {
            using JsonDocument document = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 8 });
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw Bad(source, "", "expected a JSON object");
            }
            CheckVersion(root, source);
            byte[] clusterId = Hex(root, "cluster_id", ClusterIdBytes, source, "a cluster id");
            byte[] ledger = Hex(root, "ledger_public_key", Principal.PublicKeyBytes, source, "an Ed25519 public key");
            if (!root.TryGetProperty("principals", out JsonElement list) || list.ValueKind != JsonValueKind.Array)
            {
                throw Bad(source, "principals", "expected a list of principals");
            }
            if (list.GetArrayLength() is 0 or > MaxPrincipals)
            {
                throw Bad(source, "principals", $"expected 1 to {MaxPrincipals} principals, found {list.GetArrayLength()}");
            }
            var principals = new List<Principal>();
            var keys = new Dictionary<string, string>(StringComparer.Ordinal) { [Convert.ToHexStringLower(ledger)] = "the ledger key" };
            int i = 0;
            foreach (JsonElement entry in list.EnumerateArray())
            {
                string at = $"principals[{i++}]";
                if (entry.ValueKind != JsonValueKind.Object)
                {
                    throw Bad(source, at, "expected an object with name, role and public_key");
                }
                string name = Text(entry, "name", source, at);
                if (!Principal.IsValidName(name))
                {
                    throw Bad(source, $"{at}.name", $"'{Principal.Printable(name)}' is not a principal name (1-{Principal.MaxNameLength} characters of A-Z a-z 0-9 . _ - : @ [ ], not starting with '.')");
                }
                string roleName = Text(entry, "role", source, at);
                PrincipalRole role = Principal.ParseRole(roleName)
                    ?? throw Bad(source, $"{at}.role", $"unknown role '{Principal.Printable(roleName)}' (node, witness, operator or observer)");
                byte[] key = Hex(entry, "public_key", Principal.PublicKeyBytes, source, "an Ed25519 public key", at);
                if (principals.Any(p => p.Name == name))
                {
                    throw Bad(source, $"{at}.name", $"'{name}' is named twice");
                }
                if (!keys.TryAdd(Convert.ToHexStringLower(key), name))
                {
                    throw Bad(source, $"{at}.public_key", $"'{name}' has the same public key as {keys[Convert.ToHexStringLower(key)]}: one key, one principal");
                }
                principals.Add(new Principal(name, role, key));
            }
            return new ClusterRoster(clusterId, principals, ledger, development: false);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{source}: not valid JSON: {e.Message}", e);
        }
    }

    /// <summary>The roster as <c>cluster.json</c> holds it.</summary>
    public string ToJson()
    {
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteNumber("version", FormatVersion);
            json.WriteString("cluster_id", ClusterIdHex);
            json.WriteStartArray("principals");
            foreach (Principal principal in Principals)
            {
                json.WriteStartObject();
                json.WriteString("name", principal.Name);
                json.WriteString("role", Principal.RoleName(principal.Role));
                json.WriteString("public_key", Convert.ToHexStringLower(principal.PublicKey));
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteString("ledger_public_key", Convert.ToHexStringLower(_ledgerPublicKey));
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray()) + "\n";
    }

    internal static ClusterRoster Create(byte[] clusterId, IReadOnlyList<Principal> principals, byte[] ledgerPublicKey) =>
        new(clusterId, principals, ledgerPublicKey, development: false);

    /// <summary>The development cluster's signing seed for <paramref name="name"/>: SHA-256("engine development cluster/" + name).</summary>
    internal static byte[] DevelopmentSeed(string name) => SHA256.HashData(Encoding.UTF8.GetBytes(DevelopmentSeedPrefix + name));

    private static byte[] DevelopmentPublicKey(string name)
    {
        using Key key = Key.Import(SignatureAlgorithm.Ed25519, DevelopmentSeed(name), KeyBlobFormat.RawPrivateKey);
        return key.PublicKey.Export(KeyBlobFormat.RawPublicKey);
    }

    private static PrincipalRole DevelopmentRole(string name)
    {
        int at = name.IndexOf('@', StringComparison.Ordinal);
        return Principal.ParseRole(at < 0 ? name : name[..at]) switch
        {
            PrincipalRole.Witness => PrincipalRole.Witness,
            PrincipalRole.Operator => PrincipalRole.Operator,
            PrincipalRole.Observer => PrincipalRole.Observer,
            _ => PrincipalRole.Node,
        };
    }

    private static ClusterRoster MakeDevelopment()
    {
        byte[] id = DevelopmentSeed("/cluster id")[..ClusterIdBytes];
        Principal[] principals = [.. s_developmentNames.Select(n => new Principal(n, DevelopmentRole(n), DevelopmentPublicKey(n)))];
        return new ClusterRoster(id, principals, DevelopmentPublicKey("/ledger"), development: true);
    }

    internal static void CheckVersion(JsonElement root, string source)
    {
        if (!root.TryGetProperty("version", out JsonElement version) || version.ValueKind != JsonValueKind.Number || !version.TryGetInt32(out int number))
        {
            throw Bad(source, "version", $"expected \"version\": {FormatVersion}");
        }
        if (number != FormatVersion)
        {
            throw Bad(source, "version", $"version {number} is not one this build reads ({FormatVersion})");
        }
    }

    internal static string Text(JsonElement parent, string property, string source, string at = "")
    {
        string field = at.Length == 0 ? property : $"{at}.{property}";
        if (!parent.TryGetProperty(property, out JsonElement value) || value.ValueKind != JsonValueKind.String)
        {
            throw Bad(source, field, "expected a string");
        }
        return value.GetString()!;
    }

    internal static byte[] Hex(JsonElement parent, string property, int bytes, string source, string what, string at = "")
    {
        string field = at.Length == 0 ? property : $"{at}.{property}";
        string text = Text(parent, property, source, at);
        if (text.Length != 2 * bytes || !text.All(char.IsAsciiHexDigit))
        {
            throw Bad(source, field, $"expected {2 * bytes} hex digits ({what}), got {(text.All(char.IsAsciiHexDigit) ? $"{text.Length}" : "other characters")}");
        }
        return Convert.FromHexString(text);
    }

    internal static InvalidDataException Bad(string source, string field, string problem) =>
        new(field.Length == 0 ? $"{source}: {problem}" : $"{source}: {field}: {problem}");
}
