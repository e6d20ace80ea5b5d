using System.Globalization;
using System.Net;
using Engine.Security;

namespace Engine.Replication;

/// <summary>What the admin endpoint makes of a request's signature: who signed it, or why it is refused and with which HTTP status.</summary>
public abstract record AdminCheck
{
    private AdminCheck()
    {
    }

    /// <summary>Signed by <paramref name="Operator"/>, for this node, now, once.</summary>
    public sealed record Allowed(Principal Operator) : AdminCheck;

    /// <summary>Not proven to come from a principal of the cluster (no, malformed, stale, replayed or false signature, another node's request): 401.</summary>
    public sealed record Unauthenticated(string Reason) : AdminCheck;

    /// <summary>A principal of the cluster, but not an operator: 403.</summary>
    public sealed record Forbidden(string Reason) : AdminCheck;

    /// <summary>Too many verbs in the replay window to remember one more: 503, try again later.</summary>
    public sealed record Busy(string Reason) : AdminCheck;
}

/// <summary>
/// Checks the <see cref="AdminAuthorization"/> of an admin request that changes something, against
/// the cluster's roster: parsed strictly, signed for this node (its <c>Host</c>), within
/// <see cref="AdminAuthorization.MaxSkewMs"/> of this node's clock, by a principal of role
/// <see cref="PrincipalRole.Operator"/> whose key verifies the signature, with a nonce not seen
/// before. The cheap checks come first; the nonce is remembered only once the signature verified, so
/// a stranger cannot fill the replay cache.
/// </summary>
public sealed class AdminRequestVerifier(ClusterRoster roster, string adminEndpoint, NonceCache? nonces = null)
{
    private readonly NonceCache _nonces = nonces ?? new NonceCache();

    /// <summary>Checks one request; <paramref name="nowMs"/> is this node's clock (ms since 1970).</summary>
    public AdminCheck Check(string? authorization, string method, string? host, string pathAndQuery, ReadOnlySpan<byte> body, long nowMs)
    {
        if (!AdminAuthorization.TryParse(authorization, out AdminAuthorization? auth, out string error))
        {
            return new AdminCheck.Unauthenticated(error);
        }
        if (host is null || !IsThisNode(host, adminEndpoint))
        {
            return new AdminCheck.Unauthenticated($"signed for '{Printable(host ?? "")}', not for this node's admin endpoint {adminEndpoint}");
        }
        long skew = nowMs - auth!.TimestampMs;
        if (skew > AdminAuthorization.MaxSkewMs || skew < -AdminAuthorization.MaxSkewMs)
        {
            return new AdminCheck.Unauthenticated(string.Create(CultureInfo.InvariantCulture,
                $"the request's time is {skew / 1000.0:0.#} s off this node's clock (at most {AdminAuthorization.MaxSkewMs / 1000} s either way)"));
        }
        Principal? signer = roster.Find(auth.Name);
        if (signer is null)
        {
            return new AdminCheck.Unauthenticated($"'{auth.Name}' is not a principal of cluster {roster.ClusterIdHex}");
        }
        if (!signer.Verify(AdminAuthorization.SigningContext, auth.SignedBytesFor(method, host, pathAndQuery, body), auth.Signature))
        {
            return new AdminCheck.Unauthenticated($"the signature is not {auth.Name}'s over this request");
        }
        if (signer.Role != PrincipalRole.Operator)
        {
            return new AdminCheck.Forbidden($"{signer} may not change anything here: only an operator may");
        }
        return _nonces.TryAdd(auth.Nonce, nowMs) switch
        {
            NonceCache.Outcome.Fresh => new AdminCheck.Allowed(signer),
            NonceCache.Outcome.Replayed => new AdminCheck.Unauthenticated("this request was seen before (a replay)"),
            _ => new AdminCheck.Busy($"more than {_nonces.Capacity} signed requests in {2 * AdminAuthorization.MaxSkewMs / 1000} s: try again later"),
        };
    }

    /// <summary>
    /// True when <paramref name="host"/> (the request's Host header) names the endpoint this node's
    /// admin listens on: the same host and port, any loopback name for a loopback address, any host
    /// on the right port for a wildcard address (the node cannot tell its names apart then).
    /// </summary>
    public static bool IsThisNode(string host, string adminEndpoint)
    {
        if (!TrySplit(host, out string requestHost, out int requestPort) || !TrySplit(adminEndpoint, out string ownHost, out int ownPort) || requestPort != ownPort)
        {
            return false;
        }
        if (string.Equals(requestHost, ownHost, StringComparison.OrdinalIgnoreCase) || ownHost is "0.0.0.0" or "::" or "*" or "+")
        {
            return true;
        }
        return IsLoopback(requestHost) && IsLoopback(ownHost);
    }

    private static bool IsLoopback(string host) =>
        string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase) || (IPAddress.TryParse(host, out IPAddress? address) && IPAddress.IsLoopback(address));

    private static bool TrySplit(string endpoint, out string host, out int port)
    {
        host = "";
        port = 0;
        int colon = endpoint.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(endpoint.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out port) || port is <= 0 or > 65535)
        {
            return false;
        }
        host = endpoint[..colon];
        if (host.StartsWith('[') && host.EndsWith(']'))
        {
            host = host[1..^1];
        }
        return host.Length > 0;
    }

    private static string Printable(string text) => new([.. text.Take(80).Select(c => c is >= ' ' and <= '~' ? c : '?')]);
}
