using System.Buffers.Text;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Engine.Replication;

/// <summary>
/// The operator's signature on an admin HTTP request: HTTP cannot run the cluster's secure channel,
/// so each request that changes anything carries its own proof, an Ed25519 signature by an operator
/// principal over what the request is, where it goes and when.
/// </summary>
/// <remarks>
/// <code>
/// Authorization: Engine-Ed25519 name=NAME,ts=UNIX_MS,nonce=32_HEX,sig=BASE64URL
///
/// signed (context "admin-request/v1", see ClusterCredentials.Sign), UTF-8, fields joined by '\n':
///   NAME | UNIX_MS | NONCE | METHOD | HOST | PATH_AND_QUERY | hex(SHA-256(body))
/// </code>
/// The method, host (the <c>Host</c> header: which node), path with query (which verb, its
/// arguments) and body are covered, so a signature cannot be moved to another verb, argument or
/// node; the time and nonce make it usable once, within <see cref="MaxSkewMs"/> of the node's clock
/// (<see cref="NonceCache"/> remembers what it has seen for longer than that). The header is parsed
/// strictly: exactly these four fields in this order, each in its canonical form, at most
/// <see cref="MaxHeaderChars"/> characters.
/// </remarks>
public sealed record AdminAuthorization(string Name, long TimestampMs, string Nonce, byte[] Signature)
{
    public const string Scheme = "Engine-Ed25519";

    /// <summary>Far more than a real header needs (~200): anything longer is refused before it is looked at.</summary>
    public const int MaxHeaderChars = 512;

    /// <summary>How far the request's time may be from the node's clock, either way.</summary>
    public const long MaxSkewMs = 30_000;

    /// <summary>An Ed25519 signature.</summary>
    public const int SignatureBytes = 64;

    /// <summary>The nonce: 16 random bytes as 32 lower-case hex digits.</summary>
    public const int NonceChars = 32;

    /// <summary>The signing context: a signature made for an admin request is good for nothing else.</summary>
    public const string SigningContext = "admin-request/v1";

    /// <summary>The header value for a request signed with <paramref name="sign"/> (an Ed25519 signer over the given bytes).</summary>
    public static string Create(string name, long timestampMs, string method, string host, string pathAndQuery, ReadOnlySpan<byte> body, Func<byte[], byte[]> sign)
    {
        ArgumentNullException.ThrowIfNull(sign);
        string nonce = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(NonceChars / 2));
        byte[] signature = sign(SignedBytes(name, timestampMs, nonce, method, host, pathAndQuery, body));
        if (signature.Length != SignatureBytes)
        {
            throw new ArgumentException("the signer did not return a 64-byte Ed25519 signature", nameof(sign));
        }
        return string.Create(CultureInfo.InvariantCulture, $"{Scheme} name={name},ts={timestampMs},nonce={nonce},sig={Base64Url.EncodeToString(signature)}");
    }

    /// <summary>The bytes the signature covers.</summary>
    public static byte[] SignedBytes(string name, long timestampMs, string nonce, string method, string host, string pathAndQuery, ReadOnlySpan<byte> body)
    {
        string bodyHash = Convert.ToHexStringLower(SHA256.HashData(body));
        return Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture,
            $"{name}\n{timestampMs}\n{nonce}\n{method}\n{host}\n{pathAndQuery}\n{bodyHash}"));
    }

    /// <summary>The bytes this header's signature must cover for the given request.</summary>
    public byte[] SignedBytesFor(string method, string host, string pathAndQuery, ReadOnlySpan<byte> body) =>
        SignedBytes(Name, TimestampMs, Nonce, method, host, pathAndQuery, body);

    /// <summary>Parses an <c>Authorization</c> header value; false with the reason for anything but the exact form.</summary>
    public static bool TryParse(string? header, out AdminAuthorization? authorization, out string error)
    {
        authorization = null;
        if (string.IsNullOrEmpty(header))
        {
            error = $"no Authorization header (expected '{Scheme} name=…,ts=…,nonce=…,sig=…', signed by an operator's key)";
            return false;
        }
        if (header.Length > MaxHeaderChars)
        {
            error = string.Create(CultureInfo.InvariantCulture, $"Authorization header longer than {MaxHeaderChars} characters");
            return false;
        }
        foreach (char c in header)
        {
            if (c is < (char)0x21 or > (char)0x7E && c != ' ')
            {
                error = "Authorization header with a character that is not printable ASCII";
                return false;
            }
        }
        if (!header.StartsWith(Scheme + " ", StringComparison.Ordinal))
        {
            error = $"Authorization scheme is not {Scheme}";
            return false;
        }
        string[] fields = header[(Scheme.Length + 1)..].Split(',');
        if (fields is not [string n, string t, string o, string s]
            || !TryField(n, "name", out string name) || !TryField(t, "ts", out string ts)
            || !TryField(o, "nonce", out string nonce) || !TryField(s, "sig", out string sig))
        {
            error = "Authorization fields are not exactly name=…,ts=…,nonce=…,sig=… in that order";
            return false;
        }
        if (!WitnessLine.IsName(name))
        {
            error = "Authorization name is not a principal's name";
            return false;
        }
        if (ts.Length is 0 or > 16 || (ts.Length > 1 && ts[0] == '0') || !ts.All(char.IsAsciiDigit)
            || !long.TryParse(ts, NumberStyles.None, CultureInfo.InvariantCulture, out long timestampMs))
        {
            error = "Authorization ts is not a time in milliseconds since 1970";
            return false;
        }
        if (nonce.Length != NonceChars || !nonce.All(c => char.IsAsciiDigit(c) || c is >= 'a' and <= 'f'))
        {
            error = string.Create(CultureInfo.InvariantCulture, $"Authorization nonce is not {NonceChars} lower-case hex digits");
            return false;
        }
        byte[] signature = new byte[SignatureBytes];
        if (sig.Length != 86 || !Base64Url.IsValid(sig) || !Base64Url.TryDecodeFromChars(sig, signature, out int written) || written != SignatureBytes
            || Base64Url.EncodeToString(signature) != sig)
        {
            error = "Authorization sig is not a 64-byte signature in unpadded base64url";
            return false;
        }
        authorization = new AdminAuthorization(name, timestampMs, nonce, signature);
        error = "";
        return true;
    }

    private static bool TryField(string field, string key, out string value)
    {
        value = "";
        if (field.Length <= key.Length + 1 || !field.StartsWith(key, StringComparison.Ordinal) || field[key.Length] != '=')
        {
            return false;
        }
        value = field[(key.Length + 1)..];
        return value.Length > 0 && !value.Contains('=', StringComparison.Ordinal) && !value.Contains(' ', StringComparison.Ordinal);
    }
}

/// <summary>
/// The nonces of the admin requests accepted in the last <see cref="AdminAuthorization.MaxSkewMs"/>
/// × 2 (a request outside the skew is refused by its time, so an older nonce need not be kept), at
/// most <see cref="Capacity"/> of them. Time is an argument. Thread-safe.
/// </summary>
/// <remarks>
/// Only requests whose signature verified are entered, so a stranger cannot fill it; an operator who
/// sends more than <see cref="Capacity"/> verbs a minute is refused (<see cref="Outcome.Full"/>)
/// rather than letting an old nonce be forgotten while its request is still in its window.
/// </remarks>
public sealed class NonceCache(int capacity = NonceCache.DefaultCapacity)
{
    public const int DefaultCapacity = 4096;

    private readonly Dictionary<string, long> _seen = [];
    private readonly Queue<(string Nonce, long ForgetAtMs)> _order = new();

    public enum Outcome
    {
        /// <summary>New: entered.</summary>
        Fresh = 1,

        /// <summary>Seen before: a replay.</summary>
        Replayed = 2,

        /// <summary>Too many recent nonces to remember one more.</summary>
        Full = 3,
    }

    public int Capacity { get; } = capacity > 0 ? capacity : throw new ArgumentOutOfRangeException(nameof(capacity));

    public int Count
    {
        get
        {
            lock (_seen)
            {
                return _seen.Count;
            }
        }
    }

    /// <summary>Enters <paramref name="nonce"/> (of a request whose signature verified) at <paramref name="nowMs"/>, unless seen before.</summary>
    public Outcome TryAdd(string nonce, long nowMs)
    {
        lock (_seen)
        {
            while (_order.TryPeek(out var oldest) && oldest.ForgetAtMs <= nowMs)
            {
                _order.Dequeue();
                _seen.Remove(oldest.Nonce);
            }
            if (_seen.ContainsKey(nonce))
            {
                return Outcome.Replayed;
            }
            if (_seen.Count >= Capacity)
            {
                return Outcome.Full;
            }
            long forgetAt = nowMs + (2 * AdminAuthorization.MaxSkewMs);
            _seen.Add(nonce, forgetAt);
            _order.Enqueue((nonce, forgetAt));
            return Outcome.Fresh;
        }
    }
}
