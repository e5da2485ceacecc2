using NUnit.Framework;

namespace Broker.Tests.Interop;

/// <summary>
/// @stomp/stompjs v7 (the browser STOMP client, run under Node with the ws package) against the
/// broker over WebSocket. Each case runs one scenario of Interop/node/stompjs-scenarios.mjs.
/// </summary>
[TestFixture]
[Category("Interop")]
public sealed class StompJsInteropTests
{
    private static readonly TimeSpan ProcessTimeout = TimeSpan.FromSeconds(60);

    private string _scriptDirectory = string.Empty;
    private TestServer? _server;

    [OneTimeSetUp]
    public async Task StartServer()
    {
        _scriptDirectory = Path.Combine(ExternalClient.InteropDirectory, "node");
        ExternalClient.RequirePrerequisite(
            ExternalClient.IsOnPath("node"),
            "node is not on PATH (install Node.js 20+)");
        ExternalClient.RequirePrerequisite(
            File.Exists(Path.Combine(_scriptDirectory, "node_modules", "@stomp", "stompjs", "package.json"))
            && File.Exists(Path.Combine(_scriptDirectory, "node_modules", "ws", "package.json")),
            $"{_scriptDirectory}/node_modules is missing: run `npm ci` there (./test.sh does)");

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
    [TestCase("ack-client")]
    [TestCase("transaction")]
    [TestCase("heartbeat")]
    [TestCase("binary")]
    [TestCase("large")]
    [TestCase("wildcard")]
    public async Task Scenario(string scenario)
    {
        var result = await ExternalClient.RunAsync(
            "node",
            ["stompjs-scenarios.mjs", _server!.WebSocketUri.ToString(), scenario],
            _scriptDirectory,
            ProcessTimeout);

        await TestContext.Out.WriteLineAsync(result.StandardOutput.Trim());
        Assert.That(result.Ok, Is.True, $"stomp.js scenario '{scenario}' failed\n{result.Describe()}");
    }
}
