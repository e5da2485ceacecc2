using Broker.Protocol;
using NUnit.Framework;

namespace Broker.Tests.EndToEnd;

/// <summary>User destinations over real sockets: the embedded server, TCP and WebSocket clients.</summary>
[TestFixture]
public sealed class UserDestinationEndToEndTests
{
    private static Task<TestServer> StartAsync() => TestServer.StartAsync(o =>
    {
        o.Users["alice"] = "alice";
        o.Users["bob"] = "bob";
    });

    [Test]
    public async Task Both_sessions_of_alice_get_bobs_message_once_and_bob_does_not()
    {
        await using var server = await StartAsync();
        await using var aliceTcp = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await aliceTcp.ConnectAsync(login: "alice", passcode: "alice");
        await using var aliceWs = (await StompTestClient.ConnectWebSocketAsync(server.WebSocketUri, "v12.stomp")).Client;
        await aliceWs.ConnectAsync(login: "alice", passcode: "alice");
        await using var bob = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await bob.ConnectAsync(login: "bob", passcode: "bob");
        await aliceTcp.SubscribeAndWaitAsync("inbox", "/user/queue/inbox");
        await aliceWs.SubscribeAndWaitAsync("inbox", "/user/queue/inbox");
        await bob.SubscribeAndWaitAsync("inbox", "/user/queue/inbox");

        await bob.PublishAsync("/user/alice/queue/inbox", "hello", ("receipt", "sent"));

        await bob.ExpectReceiptAsync("sent"); // a copy for bob would have come before the receipt
        foreach (var alice in new[] { aliceTcp, aliceWs })
        {
            var message = await alice.ReceiveAsync();
            Assert.That((message.Command, message["destination"], message["subscription"], message.BodyText),
                Is.EqualTo((StompCommand.Message, "/user/queue/inbox", "inbox", "hello")));
        }

        await bob.PublishAsync("/user/alice/queue/inbox", "next");
        Assert.That((await aliceTcp.ReceiveAsync()).BodyText, Is.EqualTo("next"), "the first one came once");
        Assert.That((await aliceWs.ReceiveAsync()).BodyText, Is.EqualTo("next"), "the first one came once");
    }

    [Test]
    public async Task A_dropped_session_resumes_over_tcp_with_its_user_destination_and_what_was_sent_meanwhile()
    {
        await using var server = await StartAsync();
        var alice = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        var connected = await alice.ConnectAsync(login: "alice", passcode: "alice");
        await alice.SubscribeAndWaitAsync("inbox", "/user/queue/inbox");
        await alice.DisposeAsync();
        await server.WaitSessionGoneAsync(connected["session"]!);
        await using var bob = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await bob.ConnectAsync(login: "bob", passcode: "bob");

        await bob.PublishAsync("/user/alice/queue/inbox", "while you were away", ("receipt", "sent"));
        await bob.ExpectReceiptAsync("sent");
        await using var resumed = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        var again = await resumed.ConnectAsync(login: "alice", passcode: "alice", sessionToken: connected["session-token"]);

        Assert.That((again["resumed"], again["session"]), Is.EqualTo(("true", connected["session"])));
        var message = await resumed.ReceiveAsync();
        Assert.That((message["destination"], message["subscription"], message.BodyText), Is.EqualTo(("/user/queue/inbox", "inbox", "while you were away")));
    }
}
