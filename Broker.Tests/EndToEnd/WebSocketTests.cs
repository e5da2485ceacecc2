using System.Net;
using System.Net.WebSockets;
using System.Text;
using Broker.Protocol;
using NUnit.Framework;

namespace Broker.Tests.EndToEnd;

[TestFixture]
public sealed class WebSocketTests
{
    private TestServer _server = null!;

    [OneTimeSetUp]
    public async Task StartServer() => _server = await TestServer.StartAsync();

    [OneTimeTearDown]
    public async Task StopServer() => await _server.DisposeAsync();

    [Test]
    public async Task The_highest_offered_stomp_subprotocol_is_chosen()
    {
        var (client, subprotocol) = await StompTestClient.ConnectWebSocketAsync(_server.WebSocketUri, "v10.stomp", "v11.stomp", "v12.stomp");
        await using var _ = client;

        Assert.That(subprotocol, Is.EqualTo("v12.stomp"));
        Assert.That((await client.ConnectAsync()).Command, Is.EqualTo(StompCommand.Connected));
    }

    [Test]
    public async Task A_client_offering_no_subprotocol_is_accepted()
    {
        var (client, subprotocol) = await StompTestClient.ConnectWebSocketAsync(_server.WebSocketUri);
        await using var _ = client;

        Assert.That(subprotocol, Is.Null);
        Assert.That((await client.ConnectAsync()).Command, Is.EqualTo(StompCommand.Connected));
    }

    [Test]
    public async Task Text_bodies_go_as_text_messages_and_binary_bodies_as_binary_messages()
    {
        var (client, _) = await StompTestClient.ConnectWebSocketAsync(_server.WebSocketUri, "v12.stomp");
        await using var __ = client;
        await client.ConnectAsync();
        await client.SubscribeAndWaitAsync("s", "/topic/ws-types");
        var binary = new byte[] { 0xff, 0xfe, 0x00, 0x80, 0x01 };

        await client.PublishAsync("/topic/ws-types", "héllo ✓");
        await client.SendFrameAsync(StompCommand.Send, [("destination", "/topic/ws-types")], binary);
        var text = await client.ReceiveAsync();
        var bytes = await client.ReceiveAsync();

        Assert.That(text.BodyText, Is.EqualTo("héllo ✓"));
        Assert.That(text.ArrivedAsBinary, Is.False);
        Assert.That(bytes.Body, Is.EqualTo(binary));
        Assert.That(bytes.ArrivedAsBinary, Is.True);
    }

    [Test]
    public async Task Frames_may_span_websocket_messages_and_share_them()
    {
        using var socket = new ClientWebSocket();
        socket.Options.AddSubProtocol("v12.stomp");
        await socket.ConnectAsync(_server.WebSocketUri, CancellationToken.None);
        var script = "CONNECT\naccept-version:1.2\n\n\0SUBSCRIBE\nid:s\ndestination:/topic/ws-split\n\n\0SEND\ndestination:/topic/ws-split\n\nsplit body\0\nSEND\ndestination:/topic/ws-split\nreceipt:done\n\nsecond\0";
        var bytes = Encoding.UTF8.GetBytes(script);

        // Cut into 7-byte messages: frames straddle messages and several frames share one.
        for (var i = 0; i < bytes.Length; i += 7)
        {
            await socket.SendAsync(bytes.AsMemory(i, Math.Min(7, bytes.Length - i)), WebSocketMessageType.Text, true, CancellationToken.None);
        }

        var received = new StringBuilder();
        var buffer = new byte[4096];
        using var timeout = new CancellationTokenSource(StompTestClient.DefaultTimeout);
        while (!received.ToString().Contains("receipt-id:done", StringComparison.Ordinal))
        {
            var result = await socket.ReceiveAsync(buffer, timeout.Token);
            received.Append(Encoding.UTF8.GetString(buffer, 0, result.Count));
        }

        Assert.That(received.ToString(), Does.StartWith("CONNECTED\n"));
        Assert.That(received.ToString(), Does.Contain("\n\nsplit body\0"));
        Assert.That(received.ToString(), Does.Contain("\n\nsecond\0"));
    }

    [Test]
    public async Task A_one_mebibyte_body_round_trips()
    {
        var (client, _) = await StompTestClient.ConnectWebSocketAsync(_server.WebSocketUri, "v12.stomp");
        await using var __ = client;
        await client.ConnectAsync();
        await client.SubscribeAndWaitAsync("s", "/topic/ws-large");
        var body = new byte[1024 * 1024];
        new Random(7).NextBytes(body);

        await client.SendFrameAsync(StompCommand.Send, [("destination", "/topic/ws-large")], body);

        Assert.That((await client.ReceiveAsync()).Body, Is.EqualTo(body));
    }

    [Test]
    public async Task A_plain_http_request_to_the_endpoint_is_told_what_it_is()
    {
        using var http = new HttpClient();
        var response = await http.GetAsync(new Uri(_server.HttpUri, "/ws"));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(await response.Content.ReadAsStringAsync(), Does.Contain("STOMP-over-WebSocket"));
    }

    [Test]
    public async Task WebSocket_and_TCP_clients_share_destinations()
    {
        var (ws, _) = await StompTestClient.ConnectWebSocketAsync(_server.WebSocketUri, "v12.stomp");
        await using var __ = ws;
        await ws.ConnectAsync();
        await ws.SubscribeAndWaitAsync("s", "/topic/bridge");
        await using var tcp = await StompTestClient.ConnectTcpAsync(_server.TcpPort);
        await tcp.ConnectAsync(login: "guest", passcode: "guest");

        await tcp.PublishAsync("/topic/bridge", "from tcp");

        Assert.That((await ws.ReceiveAsync()).BodyText, Is.EqualTo("from tcp"));
    }
}
