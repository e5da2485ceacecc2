using NUnit.Framework;

namespace Broker.Tests.Interop;

/// <summary>
/// stomp.py 8 (Debian's python3-stomp) against the broker over raw TCP. Each case runs one
/// scenario of Interop/python/stomp_scenarios.py with Debian's /usr/bin/python3.
/// </summary>
[TestFixture]
[Category("Interop")]
public sealed class PythonStompInteropTests
{
    private static readonly TimeSpan ProcessTimeout = TimeSpan.FromSeconds(60);

    private string _scriptDirectory = string.Empty;
    private TestServer? _server;

    [OneTimeSetUp]
    public async Task StartServer()
    {
        _scriptDirectory = Path.Combine(ExternalClient.InteropDirectory, "python");
        var probe = File.Exists(ExternalClient.DebianPython)
            ? await ExternalClient.RunAsync(
                ExternalClient.DebianPython,
                ["-c", "import stomp; print(stomp.__version__)"],
                _scriptDirectory,
                TimeSpan.FromSeconds(30))
            : null;
        ExternalClient.RequirePrerequisite(
            probe is { ExitCode: 0 },
            $"{ExternalClient.DebianPython} cannot `import stomp` (apt-get install python3-stomp; ./test.sh does)"
            + (probe is null ? string.Empty : $": {probe.StandardError.Trim()}"));

        _server = await TestServer.StartAsync();
    }

    [OneTimeTearDown]
    public async Task StopServer()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    [TestCase("pubsub")]
    [TestCase("receipt")]
    [TestCase("ack-client-individual")]
    [TestCase("transaction")]
    [TestCase("heartbeat")]
    [TestCase("binary")]
    [TestCase("large")]
    [TestCase("version10")]
    [TestCase("version11")]
    public async Task Scenario(string scenario)
    {
        var result = await ExternalClient.RunAsync(
            ExternalClient.DebianPython,
            ["stomp_scenarios.py", "127.0.0.1", _server!.TcpPort.ToString(System.Globalization.CultureInfo.InvariantCulture), scenario],
            _scriptDirectory,
            ProcessTimeout);

        await TestContext.Out.WriteLineAsync(result.StandardOutput.Trim());
        Assert.That(result.Ok, Is.True, $"stomp.py scenario '{scenario}' failed\n{result.Describe()}");
    }
}
