using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Engine.Core.Server;

/// <summary>
/// A client's token as the engine keeps it: a salted, slow hash, never the token itself.
/// Written in configuration as a self-describing string:
/// <code>
/// pbkdf2-sha256$ITERATIONS$SALT$HASH      SALT: 16 bytes, HASH: 32 bytes, both base64
/// pbkdf2-sha256$5000$q1Jv0m1o7cYbZQ2Zr8k3hA==$0Jm6D1M8rZ...=
/// </code>
/// </summary>
/// <remarks>
/// <para>PBKDF2-HMAC-SHA256 (<see cref="Rfc2898DeriveBytes.Pbkdf2(ReadOnlySpan{byte}, ReadOnlySpan{byte}, Span{byte}, int, HashAlgorithmName)"/>,
/// OpenSSL underneath): in the base class library, so no package, and its cost is one number in
/// the string. The default, <see cref="DefaultIterations"/>, costs about 4 ms per logon on the
/// development box (0.7-0.9 µs per iteration): a logon is rare (once per connection), but a
/// takeover makes every client log on again at once, so the cost multiplies by the number of
/// clients. Tokens made by <c>engine token hash</c> carry 192 random bits, which no iteration
/// count is needed to protect; the iterations are there for tokens an operator chose himself.</para>
/// <para>A token given in clear in the configuration (<c>Token</c>) is hashed when it is loaded
/// (one iteration: it is in the file anyway) so the process keeps no clear copy, and
/// <see cref="FromPlaintext"/> marks it so start-up can warn.</para>
/// </remarks>
public sealed class TokenHash
{
    public const string Scheme = "pbkdf2-sha256";
    public const int DefaultIterations = 5000;
    public const int MaxIterations = 10_000_000;
    public const int SaltBytes = 16;
    public const int HashBytes = 32;

    /// <summary>Bytes of the longest token the logon frame carries (UTF-8).</summary>
    public const int MaxTokenBytes = Protocol.ReplyCodec.MaxTokenBytes;

    private readonly byte[] _salt;
    private readonly byte[] _hash;

    private TokenHash(int iterations, byte[] salt, byte[] hash, bool fromPlaintext)
    {
        Iterations = iterations;
        _salt = salt;
        _hash = hash;
        FromPlaintextToken = fromPlaintext;
    }

    public int Iterations { get; }

    /// <summary>True when the configuration gave the token in clear (start-up warns about it).</summary>
    public bool FromPlaintextToken { get; }

    /// <summary>Hashes <paramref name="token"/> with a new random salt.</summary>
    /// <exception cref="ArgumentException">The token is empty or longer than <see cref="MaxTokenBytes"/> UTF-8 bytes.</exception>
    public static TokenHash Create(string token, int iterations = DefaultIterations) => Create(token, iterations, fromPlaintext: false);

    /// <summary>A token given in clear: hashed now with one iteration (the clear text is in the configuration anyway), marked as such.</summary>
    public static TokenHash FromPlaintext(string token) => Create(token, 1, fromPlaintext: true);

    private static TokenHash Create(string token, int iterations, bool fromPlaintext)
    {
        CheckIterations(iterations);
        int length = string.IsNullOrEmpty(token) ? 0 : Encoding.UTF8.GetByteCount(token);
        if (length is 0 or > MaxTokenBytes)
        {
            throw new ArgumentException($"a token must be 1 to {MaxTokenBytes} bytes of UTF-8");
        }
        if (token.Contains('\0', StringComparison.Ordinal))
        {
            throw new ArgumentException("a token cannot contain a zero character (the logon frame pads with zeros)");
        }
        Span<byte> utf8 = stackalloc byte[MaxTokenBytes];
        int written = Encoding.UTF8.GetBytes(token, utf8);
        byte[] salt = RandomNumberGenerator.GetBytes(SaltBytes);
        var hash = new byte[HashBytes];
        Rfc2898DeriveBytes.Pbkdf2(utf8[..written], salt, hash, iterations, HashAlgorithmName.SHA256);
        CryptographicOperations.ZeroMemory(utf8);
        return new TokenHash(iterations, salt, hash, fromPlaintext);
    }

    /// <summary>Reads <c>pbkdf2-sha256$ITERATIONS$SALT$HASH</c>.</summary>
    /// <exception cref="FormatException">Anything else, with what is wrong.</exception>
    public static TokenHash Parse(string text)
    {
        string[] parts = (text ?? "").Split('$');
        if (parts.Length != 4 || parts[0] != Scheme)
        {
            throw new FormatException($"a token hash is {Scheme}$ITERATIONS$SALT$HASH (from `engine token hash`)");
        }
        if (!int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int iterations) || iterations < 1 || iterations > MaxIterations)
        {
            throw new FormatException($"a token hash's iterations must be 1 to {MaxIterations}");
        }
        byte[] salt = FromBase64(parts[2], "salt");
        byte[] hash = FromBase64(parts[3], "hash");
        if (salt.Length < 8 || salt.Length > 64 || hash.Length != HashBytes)
        {
            throw new FormatException($"a token hash has 8 to 64 bytes of salt and {HashBytes} of hash");
        }
        return new TokenHash(iterations, salt, hash, fromPlaintext: false);

        static byte[] FromBase64(string value, string what)
        {
            try
            {
                return Convert.FromBase64String(value);
            }
            catch (FormatException)
            {
                throw new FormatException($"a token hash's {what} is not base64");
            }
        }
    }

    /// <summary>
    /// True when <paramref name="token"/> (UTF-8, without padding) hashes to this: the full key
    /// derivation always runs, and the comparison takes the same time wherever the hashes differ.
    /// </summary>
    public bool Verify(ReadOnlySpan<byte> token)
    {
        if (token.IsEmpty || token.Length > MaxTokenBytes)
        {
            return false;
        }
        Span<byte> derived = stackalloc byte[HashBytes];
        Rfc2898DeriveBytes.Pbkdf2(token, _salt, derived, Iterations, HashAlgorithmName.SHA256);
        bool equal = CryptographicOperations.FixedTimeEquals(derived, _hash);
        CryptographicOperations.ZeroMemory(derived);
        return equal;
    }

    /// <summary>As <see cref="Verify(ReadOnlySpan{byte})"/>, for a token as text.</summary>
    public bool Verify(string token)
    {
        Span<byte> utf8 = stackalloc byte[MaxTokenBytes];
        if (!Encoding.UTF8.TryGetBytes(token, utf8, out int written))
        {
            return false;
        }
        bool equal = Verify(utf8[..written]);
        CryptographicOperations.ZeroMemory(utf8);
        return equal;
    }

    /// <summary>A new random token: 24 bytes as 32 characters of URL-safe base64 (192 bits), the most the logon frame carries.</summary>
    public static string NewToken()
    {
        Span<byte> random = stackalloc byte[24];
        RandomNumberGenerator.Fill(random);
        string token = Convert.ToBase64String(random).Replace('+', '-').Replace('/', '_');
        CryptographicOperations.ZeroMemory(random);
        return token;
    }

    /// <summary>The configuration form, <c>pbkdf2-sha256$ITERATIONS$SALT$HASH</c>.</summary>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{Scheme}${Iterations}${Convert.ToBase64String(_salt)}${Convert.ToBase64String(_hash)}");

    private static void CheckIterations(int iterations)
    {
        if (iterations < 1 || iterations > MaxIterations)
        {
            throw new ArgumentOutOfRangeException(nameof(iterations), iterations, $"1 to {MaxIterations}");
        }
    }
}
