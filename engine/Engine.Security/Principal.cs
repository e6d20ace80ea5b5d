using System.Text;
using NSec.Cryptography;

namespace Engine.Security;

/// <summary>
/// One member of a cluster as the roster knows it: a name, a role and an Ed25519 public key. Holding
/// the matching private key is what it takes to be this principal on a <see cref="SecureChannel"/>
/// or to make a signature it verifies (<see cref="Verify"/>).
/// </summary>
public sealed class Principal
{
    /// <summary>Bytes of an Ed25519 public key.</summary>
    public const int PublicKeyBytes = 32;

    /// <summary>Bytes of an Ed25519 signature.</summary>
    public const int SignatureBytes = 64;

    /// <summary>Longest name: it travels in every handshake, so it is bounded.</summary>
    public const int MaxNameLength = 64;

    private readonly byte[] _publicKey;

    internal Principal(string name, PrincipalRole role, ReadOnlySpan<byte> publicKey)
    {
        CheckName(name);
        if (!Enum.IsDefined(role))
        {
            throw new ArgumentOutOfRangeException(nameof(role), role, "not a role");
        }
        Name = name;
        Role = role;
        _publicKey = publicKey.ToArray();
        Key = NSec.Cryptography.PublicKey.Import(SignatureAlgorithm.Ed25519, publicKey, KeyBlobFormat.RawPublicKey);
    }

    /// <summary>The name, unique in the roster: what logs and peers call this principal.</summary>
    public string Name { get; }

    public PrincipalRole Role { get; }

    /// <summary>The raw Ed25519 public key (32 bytes).</summary>
    public ReadOnlySpan<byte> PublicKey => _publicKey;

    internal NSec.Cryptography.PublicKey Key { get; }

    /// <summary>
    /// Whether <paramref name="signature"/> is this principal's signature of <paramref name="message"/>
    /// made with <see cref="ClusterCredentials.Sign(string, ReadOnlySpan{byte})"/> under the same
    /// <paramref name="context"/>. The context keeps a signature made for one use from being accepted
    /// for another (and from ever matching a handshake's signatures).
    /// </summary>
    public bool Verify(string context, ReadOnlySpan<byte> message, ReadOnlySpan<byte> signature)
    {
        if (signature.Length != SignatureBytes)
        {
            return false;
        }
        byte[] signed = SignedMessage(context, message);
        return SignatureAlgorithm.Ed25519.Verify(Key, signed, signature);
    }

    /// <summary>"engine/sign/v1/" + context + NUL + message: a context has no NUL, so two (context, message) pairs never sign the same bytes.</summary>
    internal static byte[] SignedMessage(string context, ReadOnlySpan<byte> message)
    {
        if (string.IsNullOrEmpty(context) || context.Length > MaxNameLength || context.Any(c => c is < ' ' or > '~'))
        {
            throw new ArgumentException("a signing context is 1-64 printable ASCII characters", nameof(context));
        }
        const string prefix = "engine/sign/v1/";
        var signed = new byte[prefix.Length + context.Length + 1 + message.Length];
        Encoding.ASCII.GetBytes(prefix + context, signed);
        message.CopyTo(signed.AsSpan(prefix.Length + context.Length + 1));
        return signed;
    }

    /// <summary>True for a valid principal name: 1-64 characters of <c>A-Z a-z 0-9 . _ - : @ [ ]</c>, not starting with a dot.</summary>
    /// <remarks>Safe as a file name (<c>NAME.key</c>) and in a log line; ':' '@' '[' ']' let a development name carry an endpoint.</remarks>
    public static bool IsValidName(ReadOnlySpan<char> name)
    {
        if (name.IsEmpty || name.Length > MaxNameLength || name[0] == '.')
        {
            return false;
        }
        foreach (char c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' or ':' or '@' or '[' or ']'))
            {
                return false;
            }
        }
        return true;
    }

    internal static void CheckName(string name)
    {
        if (!IsValidName(name))
        {
            throw new ArgumentException($"'{Printable(name)}' is not a principal name (1-{MaxNameLength} characters of A-Z a-z 0-9 . _ - : @ [ ], not starting with '.')");
        }
    }

    /// <summary>A hostile string made safe for one log line: control and non-ASCII characters as '?', at most 80 characters.</summary>
    internal static string Printable(string text)
    {
        var clean = new StringBuilder(Math.Min(text.Length, 80));
        foreach (char c in text.AsSpan(0, Math.Min(text.Length, 80)))
        {
            clean.Append(c is >= ' ' and <= '~' ? c : '?');
        }
        return clean.ToString();
    }

    public static string RoleName(PrincipalRole role) => role switch
    {
        PrincipalRole.Node => "node",
        PrincipalRole.Witness => "witness",
        PrincipalRole.Operator => "operator",
        PrincipalRole.Observer => "observer",
        _ => $"role {(byte)role}",
    };

    /// <summary>The role of a role name as written in <c>cluster.json</c>; null if there is no such role.</summary>
    public static PrincipalRole? ParseRole(string? name) => name switch
    {
        "node" => PrincipalRole.Node,
        "witness" => PrincipalRole.Witness,
        "operator" => PrincipalRole.Operator,
        "observer" => PrincipalRole.Observer,
        _ => null,
    };

    public override string ToString() => $"{Name} ({RoleName(Role)})";
}
