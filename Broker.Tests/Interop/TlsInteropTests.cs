using Broker.Tests.Hosting;
using NUnit.Framework;

namespace Broker.Tests.Interop;

/// <summary>
/// The third-party clients over TLS against a certificate the test makes: stomp.js over <c>wss://</c>
/// (Node trusting exactly that certificate through NODE_EXTRA_CA_CERTS) and stomp.py over STOMP-over-TLS
/// (verifying against it, STOMP_TLS_CA), both against an embedded broker behind Kestrel's TLS.
/// </summary>
[TestFixture]
[Category("Interop")]
public sealed class TlsInteropTests
{
    private static readonly TimeSpan ProcessTimeout = TimeSpan.FromSeconds(60);

    private TestCertificate? _certificate;
    private HostingTestServer? _server;

    [OneTimeSetUp]
    public async Task StartServer()
    {
        _certificate = TestCertificate.Create();
        // The scenarios log in as guest; the user-destination scenario also sends anonymously.
        _server = await HostingTestServer.StartAsync(o =>
        {
            o.Users["guest"] = "guest";
            o.AllowAnonymous = true;
        }, certificate: _certificate.Certificate);
    }

    [OneTimeTearDown]
    public async Task StopServer()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        _certificate?.Dispose();
    }

    [TestCase("pubsub")]
    [TestCase("binary")]
    [TestCase("large")]
    [TestCase("resume")]
    public async Task StompJs_over_wss(string scenario)
    {
        var node = Path.Combine(ExternalClient.InteropDirectory, "node");
        ExternalClient.RequirePrerequisite(ExternalClient.IsOnPath("node"), "node is not on PATH (install Node.js 20+)");
        ExternalClient.RequirePrerequisite(
            File.Exists(Path.Combine(node, "node_modules", "@stomp", "stompjs", "package.json")),
            $"{node}/node_modules is missing: run `npm ci` there (./test.sh does)");

        Assert.That(_server!.WebSocketUri.Scheme, Is.EqualTo("wss"));
        var result = await ExternalClient.RunAsync(
            "/usr/bin/env",
            [$"NODE_EXTRA_CA_CERTS={_certificate!.CertificatePemPath}", "node", "stompjs-scenarios.mjs", _server.WebSocketUri.ToString(), scenario],
            node,
            ProcessTimeout);

        Assert.That(result.Ok, Is.True, $"stomp.js over wss:// scenario '{scenario}' failed\n{result.Describe()}");
    }

    [TestCase("pubsub")]
    [TestCase("receipt")]
    [TestCase("heartbeat")]
    [TestCase("large")]
    public async Task StompPy_over_tls(string scenario)
    {
        var python = Path.Combine(ExternalClient.InteropDirectory, "python");
        var probe = File.Exists(ExternalClient.DebianPython)
            ? await ExternalClient.RunAsync(ExternalClient.DebianPython, ["-c", "import stomp, ssl"], python, TimeSpan.FromSeconds(30))
            : null;
        ExternalClient.RequirePrerequisite(probe is { ExitCode: 0 }, $"{ExternalClient.DebianPython} cannot `import stomp` (apt-get install python3-stomp; ./test.sh does)");

        var result = await ExternalClient.RunAsync(
            "/usr/bin/env",
            [$"STOMP_TLS_CA={_certificate!.CertificatePemPath}", ExternalClient.DebianPython, "stomp_scenarios.py", "127.0.0.1", _server!.TcpPort.ToString(System.Globalization.CultureInfo.InvariantCulture), scenario],
            python,
            ProcessTimeout);

        Assert.That(result.Ok, Is.True, $"stomp.py over TLS scenario '{scenario}' failed\n{result.Describe()}");
    }

    [Test]
    public async Task StompPy_without_tls_on_the_tls_port_fails()
    {
        var python = Path.Combine(ExternalClient.InteropDirectory, "python");
        ExternalClient.RequirePrerequisite(File.Exists(ExternalClient.DebianPython), $"{ExternalClient.DebianPython} is missing");

        var result = await ExternalClient.RunAsync(
            ExternalClient.DebianPython,
            ["stomp_scenarios.py", "127.0.0.1", _server!.TcpPort.ToString(System.Globalization.CultureInfo.InvariantCulture), "pubsub"],
            python,
            ProcessTimeout);

        Assert.That(result.Ok, Is.False, "a clear-text STOMP client must not get through a TLS port");
        Assert.That(result.Error, Does.Contain("CONNECT failed").Or.Contain("could not open"), result.Describe());
    }
}
