using NUnit.Framework;

namespace Broker.Tests.Interop;

/// <summary>
/// @stomp/stompjs v7 (the browser STOMP client, run under Node with the ws package) against the
/// broker over WebSocket. Each case runs one scenario of Interop/node/stompjs-scenarios.mjs.
/// </summary>
[TestFixture]
public sealed class StompJsInteropTests : InteropFixture
{
    protected override string ScriptFolder => "node";

    protected override string ClientName => "stomp.js";

    protected override Task CheckPrerequisitesAsync()
    {
        ExternalClient.RequirePrerequisite(
            ExternalClient.IsOnPath("node"),
            "node is not on PATH (install Node.js 20+)");
        ExternalClient.RequirePrerequisite(
            File.Exists(Path.Combine(ScriptDirectory, "node_modules", "@stomp", "stompjs", "package.json"))
            && File.Exists(Path.Combine(ScriptDirectory, "node_modules", "ws", "package.json")),
            $"{ScriptDirectory}/node_modules is missing: run `npm ci` there (./test.sh does)");
        return Task.CompletedTask;
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
    [TestCase("resume")]
    [TestCase("user-destination")]
    public Task Scenario(string scenario) =>
        RunScenarioAsync(scenario, "node", "stompjs-scenarios.mjs", Server.WebSocketUri.ToString(), scenario);
}
