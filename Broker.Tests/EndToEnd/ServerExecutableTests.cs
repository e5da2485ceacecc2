using Broker.Protocol;
using NUnit.Framework;

namespace Broker.Tests.EndToEnd;

[TestFixture]
public sealed class ServerExecutableTests
{
    [Test]
    public async Task The_executable_serves_websocket_and_tcp_clients()
    {
        await using var server = await ServerProcess.StartAsync();
        var (ws, subprotocol) = await StompTestClient.ConnectWebSocketAsync(server.WebSocketUri, "v12.stomp");
        await using var _ = ws;
        await ws.ConnectAsync();
        await ws.SubscribeAndWaitAsync("s", "/topic/exe");
        await using var tcp = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await tcp.ConnectAsync();

        await tcp.PublishAsync("/topic/exe", "hello from tcp");

        Assert.That(subprotocol, Is.EqualTo("v12.stomp"));
        Assert.That((await ws.ReceiveAsync()).BodyText, Is.EqualTo("hello from tcp"));
    }

    [Test]
    public async Task Settings_come_from_the_command_line_and_the_environment()
    {
        await using var server = await ServerProcess.StartAsync(
            ["--Broker:Server:WebSocketPath=/stomp", "--Broker:AllowAnonymous=false"],
            new Dictionary<string, string> { ["Broker__Users__alice"] = "s3cret", ["Broker__MaxFrameSize"] = "2048" });
        await using var anonymous = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        var refused = await anonymous.ConnectAsync();
        var (alice, _) = await StompTestClient.ConnectWebSocketAsync(server.WebSocketUri);
        await using var __ = alice;
        var accepted = await alice.ConnectAsync(login: "alice", passcode: "s3cret");
        await alice.PublishAsync("/topic/big", new string('x', 4096));
        var tooBig = await alice.ReceiveAsync();

        Assert.That(server.WebSocketUri.AbsolutePath, Is.EqualTo("/stomp"));
        Assert.That(refused.Command, Is.EqualTo(StompCommand.Error));
        Assert.That(accepted.Command, Is.EqualTo(StompCommand.Connected));
        Assert.That(tooBig["message"], Does.Contain("max-frame-size"));
    }

    [Test]
    public async Task SIGTERM_tells_clients_and_exits_cleanly()
    {
        await using var server = await ServerProcess.StartAsync();
        await using var client = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await client.ConnectAsync();

        var exited = await server.TerminateAsync(TimeSpan.FromSeconds(20));
        var goodbye = await client.ReceiveAsync();

        Assert.That(exited, Is.True, server.Output);
        Assert.That(server.ExitCode, Is.Zero, server.Output);
        Assert.That(goodbye.Command, Is.EqualTo(StompCommand.Error));
        Assert.That(goodbye["message"], Is.EqualTo("server shutting down"));
    }
}
