using System.Net;
using System.Net.Sockets;
using Broker.Protocol;
using Broker.Tests.EndToEnd;
using NUnit.Framework;

namespace Broker.Tests.Hosting;

/// <summary>
/// TLS with a certificate made for the run: the executable's <c>Broker:Server:Tls</c> (PFX, PEM pair) on
/// both ports, and an embedding app's own Kestrel TLS under <c>UseStomp()</c> and <c>MapStomp()</c>.
/// </summary>
[TestFixture]
public sealed class TlsTests
{
    private TestCertificate _certificate = null!;

    [OneTimeSetUp]
    public void MakeCertificate() => _certificate = TestCertificate.Create();

    [OneTimeTearDown]
    public void RemoveCertificate() => _certificate.Dispose();

    [Test]
    public async Task The_executable_with_a_pfx_serves_wss_and_stomp_over_tls()
    {
        await using var server = await ServerProcess.StartAsync([$"--Broker:Server:Tls:CertificatePath={_certificate.PfxPath}", $"--Broker:Server:Tls:Password={TestCertificate.PfxPassword}"]);

        await RoundTripAsync(server.WebSocketUri, server.TcpPort);

        Assert.That(server.WebSocketUri.Scheme, Is.EqualTo("wss"));
        Assert.That(server.Output, Does.Contain("tcp+tls://"));
    }

    [Test]
    public async Task The_executable_with_a_pem_certificate_and_key_serves_wss_and_stomp_over_tls()
    {
        await using var server = await ServerProcess.StartAsync([$"--Broker:Server:Tls:CertificatePath={_certificate.CertificatePemPath}", $"--Broker:Server:Tls:KeyPath={_certificate.KeyPemPath}"]);

        await RoundTripAsync(server.WebSocketUri, server.TcpPort);
    }

    [Test]
    public async Task A_plain_text_client_on_the_executables_tls_ports_is_refused_with_a_log_line()
    {
        await using var server = await ServerProcess.StartAsync([$"--Broker:Server:Tls:CertificatePath={_certificate.PfxPath}", $"--Broker:Server:Tls:Password={TestCertificate.PfxPassword}"]);
        await using var plain = await StompTestClient.ConnectTcpAsync(server.TcpPort);

        await plain.SendFrameAsync(StompCommand.Connect, ("accept-version", "1.2"), ("host", "localhost"));
        var answer = await plain.TryReceiveAsync(StompTestClient.DefaultTimeout);
        var closed = await plain.WaitClosedAsync();
        var ws = new Uri($"ws://{server.WebSocketUri.Authority}{server.WebSocketUri.AbsolutePath}");
        var plainWs = Assert.CatchAsync(async () => await StompTestClient.ConnectWebSocketAsync(ws, "v12.stomp"));

        Assert.That(answer, Is.Null, "no STOMP frame comes back in clear text");
        Assert.That(closed, Is.True);
        Assert.That(plainWs, Is.Not.Null);
        await server.WaitForOutputAsync(l => l.Contains("the client spoke plain text ('CONNECT')", StringComparison.Ordinal), 1, "the plain STOMP client's log line");
        await server.WaitForOutputAsync(l => l.Contains("the client spoke plain text ('GET /ws HTTP/1.1')", StringComparison.Ordinal), 1, "the plain WebSocket client's log line");
        Assert.That(server.Output, Does.Contain("warn: Broker.Server.Tls"));
    }

    [Test]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task A_failed_handshake_is_logged_by_the_server()
    {
        await using var server = await ServerProcess.StartAsync([$"--Broker:Server:Tls:CertificatePath={_certificate.PfxPath}", $"--Broker:Server:Tls:Password={TestCertificate.PfxPassword}"]);
        using var socket = new TcpClient();
        await socket.ConnectAsync(IPAddress.Loopback, server.TcpPort);
        using var tls = new System.Net.Security.SslStream(socket.GetStream());

        // TLS 1.2 with only ECDSA suites: nothing the server's RSA certificate can do.
        var handshake = Assert.CatchAsync(async () => await tls.AuthenticateAsClientAsync(new System.Net.Security.SslClientAuthenticationOptions
        {
            TargetHost = "localhost",
            EnabledSslProtocols = System.Security.Authentication.SslProtocols.Tls12,
            CipherSuitesPolicy = new System.Net.Security.CipherSuitesPolicy([System.Net.Security.TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]),
            RemoteCertificateValidationCallback = (_, presented, _, _) => _certificate.Trusts(presented),
        }));

        Assert.That(handshake, Is.Not.Null);
        await server.WaitForOutputAsync(l => l.Contains("TLS handshake failed on", StringComparison.Ordinal), 1, "the failed handshake's log line");
    }

    [Test]
    public async Task A_missing_certificate_file_stops_the_start_with_the_settings_name()
    {
        var missing = Path.Combine(Path.GetTempPath(), "no-such-broker-cert.pfx");

        var error = Assert.CatchAsync(async () => await ServerProcess.StartAsync([$"--Broker:Server:Tls:CertificatePath={missing}"]));

        Assert.That(error!.Message, Does.Contain("Broker:Server:Tls:CertificatePath").And.Contain(missing));
    }

    [Test]
    public async Task An_embedding_app_puts_kestrels_tls_under_UseStomp_and_MapStomp()
    {
        await using var server = await HostingTestServer.StartAsync(certificate: _certificate.Certificate);

        await RoundTripAsync(server.WebSocketUri, server.TcpPort);
    }

    // wss:// subscriber and STOMP-over-TLS publisher: a message crosses from one to the other.
    private async Task RoundTripAsync(Uri wss, int tlsPort)
    {
        var (subscriber, subprotocol) = await StompTestClient.ConnectWebSocketAsync(wss, o => o.RemoteCertificateValidationCallback = (_, presented, _, _) => _certificate.Trusts(presented), "v12.stomp");
        await using var _1 = subscriber;
        var subscribed = await subscriber.ConnectAsync();
        await subscriber.SubscribeAndWaitAsync("s", "/topic/tls");
        await using var publisher = await _certificate.ConnectTlsAsync(tlsPort);
        var connected = await publisher.ConnectAsync();

        await publisher.PublishAsync("/topic/tls", "over tls", ("receipt", "r1"));
        await publisher.ExpectReceiptAsync("r1");
        var message = await subscriber.ReceiveAsync();

        Assert.That(subprotocol, Is.EqualTo("v12.stomp"));
        Assert.That(subscribed.Command, Is.EqualTo(StompCommand.Connected), subscribed.ToString());
        Assert.That(connected.Command, Is.EqualTo(StompCommand.Connected), connected.ToString());
        Assert.That(message.BodyText, Is.EqualTo("over tls"));
    }
}
