using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Engine.Core.Server;

/// <summary>
/// The client port's TLS: a certificate and key from PEM files, TLS 1.2 and 1.3 only, no client
/// certificates (clients authenticate with their token, inside the TLS session).
/// </summary>
/// <remarks>
/// Plaintext stays the fast path on a trusted network: a session over TLS cannot use the
/// gateway's direct non-blocking sends (an <see cref="SslStream"/> encrypts in its own writes), so
/// its replies go through the session's queue and writer, one encrypted write per batch.
/// </remarks>
public sealed class GatewayTls
{
    private GatewayTls(X509Certificate2 certificate, SslStreamCertificateContext context)
    {
        Certificate = certificate;
        ServerOptions = new SslServerAuthenticationOptions
        {
            ServerCertificateContext = context,
            EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            ClientCertificateRequired = false,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            AllowRenegotiation = false,
        };
    }

    public X509Certificate2 Certificate { get; }

    internal SslServerAuthenticationOptions ServerOptions { get; }

    /// <summary>Loads the certificate (and any chain certificates after it in the same file) and its private key.</summary>
    /// <exception cref="InvalidDataException">A file is missing or not a PEM certificate and matching key; the message says which.</exception>
    public static GatewayTls Load(string certificateFile, string keyFile)
    {
        try
        {
            X509Certificate2 certificate = X509Certificate2.CreateFromPemFile(certificateFile, keyFile);
            if (!certificate.HasPrivateKey)
            {
                throw new InvalidDataException($"--tls-key {keyFile} holds no private key for {certificateFile}");
            }
            var chain = new X509Certificate2Collection();
            chain.ImportFromPemFile(certificateFile);
            var intermediates = new X509Certificate2Collection();
            foreach (X509Certificate2 other in chain)
            {
                if (other.Thumbprint != certificate.Thumbprint)
                {
                    intermediates.Add(other);
                }
            }
            return new GatewayTls(certificate, SslStreamCertificateContext.Create(certificate, intermediates, offline: true));
        }
        catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            throw new InvalidDataException($"--tls-cert {certificateFile} / --tls-key {keyFile}: {e.Message}", e);
        }
    }

    /// <summary>The TLS of <paramref name="settings"/>, or null for a plaintext port.</summary>
    public static GatewayTls? From(GatewaySettings settings) => settings.Tls ? Load(settings.TlsCertificateFile, settings.TlsKeyFile) : null;

    public override string ToString() => $"TLS 1.2/1.3 with {Certificate.Subject} (expires {Certificate.NotAfter:yyyy-MM-dd})";
}
