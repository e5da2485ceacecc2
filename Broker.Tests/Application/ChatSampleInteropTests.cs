using System.Globalization;
using Broker.Tests.Interop;
using NUnit.Framework;

namespace Broker.Tests.Application;

/// <summary>The README's chat sample driven by @stomp/stompjs over WebSocket (scenario chat-sample of Interop/node/stompjs-scenarios.mjs).</summary>
[TestFixture]
public sealed class ChatSampleStompJsTests : InteropFixture
{
    protected override string ScriptFolder => "node";

    protected override string ClientName => "stomp.js";

    private protected override Task<TestServer> StartServerAsync() => ChatSampleTests.StartChatAsync();

    protected override Task CheckPrerequisitesAsync()
    {
        ExternalClient.RequirePrerequisite(ExternalClient.IsOnPath("node"), "node is not on PATH (install Node.js 20+)");
        ExternalClient.RequirePrerequisite(
            File.Exists(Path.Combine(ScriptDirectory, "node_modules", "@stomp", "stompjs", "package.json")),
            $"{ScriptDirectory}/node_modules is missing: run `npm ci` there (./test.sh does)");
        return Task.CompletedTask;
    }

    [Test]
    public Task Chat_sample() => RunScenarioAsync("chat-sample", "node", "stompjs-scenarios.mjs", Server.WebSocketUri.ToString(), "chat-sample");
}

/// <summary>The README's chat sample driven by stomp.py over TCP (scenario chat-sample of Interop/python/stomp_scenarios.py).</summary>
[TestFixture]
public sealed class ChatSamplePythonTests : InteropFixture
{
    protected override string ScriptFolder => "python";

    protected override string ClientName => "stomp.py";

    private protected override Task<TestServer> StartServerAsync() => ChatSampleTests.StartChatAsync();

    protected override async Task CheckPrerequisitesAsync()
    {
        var probe = File.Exists(ExternalClient.DebianPython)
            ? await ExternalClient.RunAsync(ExternalClient.DebianPython, ["-c", "import stomp"], ScriptDirectory, TimeSpan.FromSeconds(30))
            : null;
        ExternalClient.RequirePrerequisite(probe is { ExitCode: 0 }, $"{ExternalClient.DebianPython} cannot `import stomp` (apt-get install python3-stomp; ./test.sh does)");
    }

    [Test]
    public Task Chat_sample() => RunScenarioAsync("chat-sample", ExternalClient.DebianPython, "stomp_scenarios.py", "127.0.0.1",
        Server.TcpPort.ToString(CultureInfo.InvariantCulture), "chat-sample", Server.HttpUri.ToString());
}
