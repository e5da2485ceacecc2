using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Broker.Tests.Hosting;

/// <summary>
/// A self-signed server certificate made for the run (<see cref="CertificateRequest"/>), for 127.0.0.1 and
/// localhost, written as a PFX, a PEM certificate and a PEM key; clients trust exactly this certificate.
/// </summary>
internal sealed class TestCertificate : IDisposable
{
    public const string PfxPassword = "test-pfx-password";

    private readonly string _directory;

    private TestCertificate(X509Certificate2 certificate, string directory)
    {
        Certificate = certificate;
        _directory = directory;
    }

    public X509Certificate2 Certificate { get; }

    public string PfxPath => Path.Combine(_directory, "broker.pfx");

    public string CertificatePemPath => Path.Combine(_directory, "broker.crt");

    public string KeyPemPath => Path.Combine(_directory, "broker.key");

    public static TestCertificate Create()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("localhost");
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], critical: false));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, critical: true));
        using var created = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(7));

        var directory = Directory.CreateTempSubdirectory("broker-tls-").FullName;
        var pfx = created.Export(X509ContentType.Pkcs12, PfxPassword);
        File.WriteAllBytes(Path.Combine(directory, "broker.pfx"), pfx);
        File.WriteAllText(Path.Combine(directory, "broker.crt"), created.ExportCertificatePem());
        File.WriteAllText(Path.Combine(directory, "broker.key"), key.ExportPkcs8PrivateKeyPem());
        return new TestCertificate(X509CertificateLoader.LoadPkcs12(pfx, PfxPassword), directory);
    }

    /// <summary>A certificate check that accepts this certificate and nothing else.</summary>
    public bool Trusts(X509Certificate? presented) => presented is not null && presented.GetCertHashString() == Certificate.Thumbprint;

    /// <summary>A STOMP client over TLS to 127.0.0.1:<paramref name="port"/>, trusting only this certificate.</summary>
    public async Task<StompTestClient> ConnectTlsAsync(int port)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(IPAddress.Loopback, port);
        var tls = new SslStream(new NetworkStream(socket, ownsSocket: true), leaveInnerStreamOpen: false);
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "localhost",
            RemoteCertificateValidationCallback = (_, presented, _, _) => Trusts(presented),
        });
        return StompTestClient.OverStream(tls);
    }

    public void Dispose()
    {
        Certificate.Dispose();
        Directory.Delete(_directory, recursive: true);
    }
}
