using System.Net.Http.Json;
using Broker.Application;
using Broker.Protocol;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace Broker.Tests.Application;

/// <summary>IStompMessenger from an HTTP endpoint and from the app's services, to real subscribers.</summary>
[TestFixture]
public sealed class MessengerTests
{
    private static Task<TestServer> StartAsync() => ApplicationTestKit.StartAsync(app =>
    {
        app.MapPost("/prices/{symbol}", async (string symbol, Price price, IStompMessenger messenger) =>
        {
            await messenger.PublishAsync($"/topic/prices.{symbol}", price);
            return Results.Accepted();
        });
        app.MapPost("/users/{login}/notices", async (string login, Price notice, IStompMessenger messenger) =>
            Results.Ok(await messenger.SendToUserAsync(login, "/queue/notices", notice)));
    });

    private static IStompMessenger Messenger(TestServer server) => server.Services.GetRequiredService<IStompMessenger>();

    [Test]
    public async Task PublishAsync_from_a_minimal_API_endpoint_reaches_the_topics_subscribers_as_JSON()
    {
        await using var server = await StartAsync();
        var (alice, _) = await ApplicationTestKit.ConnectAsync(server);
        await using var a = alice;
        await using var ws = (await StompTestClient.ConnectWebSocketAsync(server.WebSocketUri, "v12.stomp")).Client;
        await ws.ConnectAsync(login: "bob", passcode: "bob");
        await alice.SubscribeAndWaitAsync("p", "/topic/prices.acme");
        await ws.SubscribeAndWaitAsync("p", "/topic/prices.acme");
        using var http = new HttpClient { BaseAddress = server.HttpUri };

        using var response = await http.PostAsJsonAsync("/prices/acme", new Price("ACME", 12.5m));

        Assert.That((int)response.StatusCode, Is.EqualTo(StatusCodes.Status202Accepted));
        foreach (var client in new[] { alice, ws })
        {
            var message = await client.ExpectMessageAsync("p");
            Assert.That((message["destination"], message["content-type"]), Is.EqualTo(("/topic/prices.acme", "application/json")));
            Assert.That(message.Json().GetProperty("symbol").GetString(), Is.EqualTo("ACME"));
            Assert.That(message.Json().GetProperty("value").GetDecimal(), Is.EqualTo(12.5m));
        }
    }

    [Test]
    public async Task Text_and_bytes_go_with_their_content_type_and_extra_headers_and_a_queue_message_to_one_consumer()
    {
        await using var server = await StartAsync();
        var (first, _) = await ApplicationTestKit.ConnectAsync(server);
        await using var f = first;
        var (second, _) = await ApplicationTestKit.ConnectAsync(server, "bob");
        await using var s = second;
        await first.SubscribeAndWaitAsync("t", "/topic/messenger-kinds");
        await first.SubscribeAndWaitAsync("q", "/queue/messenger-work");
        await second.SubscribeAndWaitAsync("q", "/queue/messenger-work");
        var messenger = Messenger(server);

        await messenger.PublishAsync("/topic/messenger-kinds", "plain words");
        await messenger.PublishAsync("/topic/messenger-kinds", "# Title", "text/markdown", [new("x-kind", "doc"), new("x-kind", "second")]);
        await messenger.PublishAsync("/topic/messenger-kinds", new byte[] { 0, 1, 2, 200 }.AsMemory(), "application/x-demo", [new("x-size", "4")]);
        await messenger.PublishAsync("/topic/messenger-kinds", StompPayload.Json(new { A = 1 }).WithHeader("x-json", "yes"));
        await messenger.PublishAsync("/queue/messenger-work", "job 1");

        var plain = await first.ExpectMessageAsync("t");
        var markdown = await first.ExpectMessageAsync("t");
        var bytes = await first.ExpectMessageAsync("t");
        var json = await first.ExpectMessageAsync("t");
        Assert.Multiple(() =>
        {
            Assert.That((plain.BodyText, plain["content-type"]), Is.EqualTo(("plain words", "text/plain;charset=utf-8")));
            Assert.That((markdown.BodyText, markdown["content-type"], markdown["x-kind"]), Is.EqualTo(("# Title", "text/markdown", "doc")));
            Assert.That(markdown.HeaderList.Where(h => h.Key == "x-kind").Select(h => h.Value), Is.EqualTo(new[] { "doc", "second" }));
            Assert.That((bytes.Body, bytes["content-type"], bytes["x-size"]), Is.EqualTo((new byte[] { 0, 1, 2, 200 }, "application/x-demo", "4")));
            Assert.That((json.BodyText, json["content-type"], json["x-json"]), Is.EqualTo(("""{"a":1}""", "application/json", "yes")));
        });

        // One of the two consumers has the job, the other nothing: a probe's receipt is what it sees next.
        var got = new List<string>();
        foreach (var client in new[] { first, second })
        {
            await client.SendFrameAsync(StompCommand.Begin, ("transaction", "t"), ("receipt", "probe"));
            var next = await client.ReceiveAsync();
            if (next.Command == StompCommand.Message)
            {
                got.Add(next.BodyText);
                await client.ExpectReceiptAsync("probe");
            }
        }

        Assert.That(got, Is.EqualTo(new[] { "job 1" }));
    }

    [Test]
    public async Task SendToUserAsync_reaches_every_session_of_the_user_and_nobody_else()
    {
        await using var server = await StartAsync();
        var (aliceTcp, _) = await ApplicationTestKit.ConnectAsync(server);
        await using var a = aliceTcp;
        await using var aliceWs = (await StompTestClient.ConnectWebSocketAsync(server.WebSocketUri, "v12.stomp")).Client;
        await aliceWs.ConnectAsync(login: "alice", passcode: "alice");
        var (bob, _) = await ApplicationTestKit.ConnectAsync(server, "bob");
        await using var b = bob;
        foreach (var client in new[] { aliceTcp, aliceWs, bob })
        {
            await client.SubscribeAndWaitAsync("n", "/user/queue/notices");
        }

        using var http = new HttpClient { BaseAddress = server.HttpUri };
        using var response = await http.PostAsJsonAsync("/users/alice/notices", new Price("NOTE", 1m));
        var reached = await response.Content.ReadFromJsonAsync<int>();

        Assert.That(reached, Is.EqualTo(2));
        foreach (var alice in new[] { aliceTcp, aliceWs })
        {
            var message = await alice.ExpectMessageAsync("n");
            Assert.That((message["destination"], message.Json().GetProperty("symbol").GetString()), Is.EqualTo(("/user/queue/notices", "NOTE")));
        }

        await bob.SendFrameAsync(StompCommand.Begin, ("transaction", "t"), ("receipt", "probe"));
        await bob.ExpectReceiptAsync("probe");
        Assert.That(await Messenger(server).SendToUserAsync("alice", "/user/queue/elsewhere", "nobody subscribed"), Is.EqualTo(0));
    }

    [Test]
    public async Task SendToUserAsync_keeps_a_message_for_a_dropped_durable_session_until_it_resumes()
    {
        await using var server = await StartAsync();
        var (alice, connected) = await ApplicationTestKit.ConnectAsync(server);
        await alice.SubscribeAndWaitAsync("n", "/user/queue/notices");
        await alice.DisposeAsync();
        await server.WaitSessionGoneAsync(connected["session"]!);

        var reached = await Messenger(server).SendToUserAsync("alice", "/queue/notices", "while you were away");
        var (resumed, again) = await ApplicationTestKit.ConnectAsync(server, token: connected["session-token"]);
        await using var r = resumed;

        Assert.That((reached, again["resumed"]), Is.EqualTo((1, "true")));
        Assert.That((await resumed.ExpectMessageAsync("n")).BodyText, Is.EqualTo("while you were away"));
    }

    [Test]
    public async Task SendToSessionAsync_reaches_that_session_only()
    {
        await using var server = await StartAsync();
        var (one, first) = await ApplicationTestKit.ConnectAsync(server);
        await using var o = one;
        var (two, _) = await ApplicationTestKit.ConnectAsync(server);
        await using var t = two;
        await one.SubscribeAndWaitAsync("n", "/user/queue/notices");
        await two.SubscribeAndWaitAsync("n", "/user/queue/notices");
        var messenger = Messenger(server);

        var sent = await messenger.SendToSessionAsync(first["session"]!, "/user/queue/notices", new Price("ONE", 1m));
        var unsubscribed = await messenger.SendToSessionAsync(first["session"]!, "/queue/other", "x");
        var unknown = await messenger.SendToSessionAsync("0123456789abcdef01234567", "/queue/notices", "x");

        Assert.That((sent, unsubscribed, unknown), Is.EqualTo((true, false, false)));
        Assert.That((await one.ExpectMessageAsync("n")).Json().GetProperty("symbol").GetString(), Is.EqualTo("ONE"));
        await two.SendFrameAsync(StompCommand.Begin, ("transaction", "t"), ("receipt", "probe"));
        await two.ExpectReceiptAsync("probe");
    }

    [TestCase("/user/alice/queue/x", "user destination")]
    [TestCase("/app/chat/x", "application destination")]
    [TestCase("/topic/a.*", "wildcard")]
    [TestCase("/elsewhere", "unknown destination")]
    [TestCase("/queue/inbox-user0123456789abcdef01234567", "reserved for user destinations")]
    public async Task PublishAsync_refuses_what_a_SEND_could_not_name(string destination, string message)
    {
        await using var server = await StartAsync();

        Assert.That(async () => await Messenger(server).PublishAsync(destination, "x"), Throws.ArgumentException.With.Message.Contains(message));
    }

    [Test]
    public async Task Sending_to_a_user_or_session_takes_a_queue_name_and_refuses_headers_the_broker_sets()
    {
        await using var server = await StartAsync();
        var messenger = Messenger(server);

        Assert.Multiple(() =>
        {
            Assert.That(async () => await messenger.SendToUserAsync("alice", "/topic/x", "x"), Throws.ArgumentException.With.Message.Contains("/queue/<name>"));
            Assert.That(async () => await messenger.SendToUserAsync("a/b", "/queue/x", "x"), Throws.ArgumentException.With.Message.Contains("cannot be named"));
            Assert.That(async () => await messenger.SendToSessionAsync("s", "/queue/", "x"), Throws.ArgumentException.With.Message.Contains("empty queue name"));
            Assert.That(() => StompPayload.Text("x").WithHeader("message-id", "forged"), Throws.ArgumentException.With.Message.Contains("set by the broker"));
            Assert.That(() => StompPayload.Text("x").WithHeader("x-bad", "line\nbreak"), Throws.ArgumentException.With.Message.Contains("line break"));
        });
    }

    internal sealed record Price(string Symbol, decimal Value);
}
