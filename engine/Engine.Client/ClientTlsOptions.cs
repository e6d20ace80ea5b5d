using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;

namespace Engine.Client;

/// <summary>TLS to the engine's client port (<c>engine serve --tls-cert/--tls-key</c>): TLS 1.2 or 1.3, the engine's certificate checked.</summary>
public sealed record ClientTlsOptions
{
    /// <summary>
    /// The name the engine's certificate must carry. Default: each endpoint's host as written in
    /// <see cref="ClientOptions.Endpoints"/> (an IP address, or <c>localhost</c>).
    /// </summary>
    public string? TargetHost { get; init; }

    /// <summary>
    /// A PEM file of the certificates to trust: a private CA, or the engine's own self-signed
    /// certificate. When set, the engine's certificate must chain to one of them and the system's
    /// trust store is not used. Null (default): the system's trust store.
    /// </summary>
    public string? TrustedCertificatesFile { get; init; }

    /// <summary>Builds the options of one handshake; the trusted certificates are read once, by the caller.</summary>
    internal SslClientAuthenticationOptions ForHost(string host, X509Certificate2Collection? trusted)
    {
        var options = new SslClientAuthenticationOptions
        {
            TargetHost = TargetHost ?? host,
            EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        };
        if (trusted is not null)
        {
            var policy = new X509ChainPolicy
            {
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                RevocationMode = X509RevocationMode.NoCheck,
            };
            policy.CustomTrustStore.AddRange(trusted);
            options.CertificateChainPolicy = policy;
        }
        return options;
    }

    /// <summary>The certificates of <see cref="TrustedCertificatesFile"/>, or null for the system's store.</summary>
    internal X509Certificate2Collection? LoadTrusted()
    {
        if (TrustedCertificatesFile is null)
        {
            return null;
        }
        var certificates = new X509Certificate2Collection();
        certificates.ImportFromPemFile(TrustedCertificatesFile);
        if (certificates.Count == 0)
        {
            throw new ArgumentException($"{TrustedCertificatesFile} holds no PEM certificate");
        }
        return certificates;
    }
}
