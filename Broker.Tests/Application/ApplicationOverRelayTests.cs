using Broker.Application;
using Broker.Protocol;
using Broker.Relay.RabbitMq;
using Broker.Tests.Application;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;
using static Broker.Tests.Relay.RelayTesting;

// In the relay tests' namespace, so that their set-up fixture stops the shared rabbitmq-server after the run.
namespace Broker.Tests.Relay;

/// <summary>
/// The application API with the RabbitMQ relay as the broker (a real rabbitmq-server): replies and the messenger
/// take the relay's queues and exchanges as they take the in-process broker's. RabbitMQ confirms a publish before it
/// delivers it, so a reply may come after the SEND's RECEIPT here.
/// </summary>
[TestFixture]
public sealed class ApplicationOverRelayTests
{
    private RabbitMqServer _rabbit = null!;

    [OneTimeSetUp]
    public async Task StartRabbitMq() => _rabbit = await RabbitMqServer.GetSharedAsync();

    private async Task<TestServer> StartAsync()
    {
        var server = await ApplicationTestKit.StartAsync(
            app => app.MapStompMessage("/echo/{word}", (string word, StompMessageContext context) => new { word, context.Login }),
            s => s.AddStompBroker().AddRabbitMqRelay(o => o.Uri = _rabbit.Uri));
        if (!await server.Services.GetRequiredService<RabbitMqRelay>().WaitConnectedAsync(TimeSpan.FromSeconds(20)))
        {
            await server.DisposeAsync();
            throw new TimeoutException("the relay did not connect to RabbitMQ");
        }

        return server;
    }

    [Test]
    public async Task A_handlers_reply_reaches_the_sender_through_the_relays_user_queue()
    {
        await using var server = await StartAsync();
        var (alice, _) = await ApplicationTestKit.ConnectAsync(server);
        await using var a = alice;
        await alice.SubscribeAndWaitAsync("replies", "/user/queue/replies");
        await alice.SubscribeAndWaitAsync("answers", "/user/queue/answers");

        await alice.PublishAsync("/app/echo/relayed", "", ("receipt", "r1"));
        await alice.PublishAsync("/app/echo/replied-to", "", ("reply-to", "/user/queue/answers"));

        // Two queues of RabbitMQ's: the replies may arrive in either order.
        var received = new[] { await alice.NextMessageAsync(), await alice.NextMessageAsync() };
        var first = received.Single(m => m["subscription"] == "replies");
        var second = received.Single(m => m["subscription"] == "answers");
        Assert.That((first["subscription"], first["destination"], first.Json().GetProperty("word").GetString(), first.Json().GetProperty("login").GetString()),
            Is.EqualTo(("replies", "/user/queue/replies", "relayed", "alice")));
        Assert.That((second["subscription"], second["destination"], second.Json().GetProperty("word").GetString()),
            Is.EqualTo(("answers", "/user/queue/answers", "replied-to")));
    }

    [Test]
    public async Task The_messenger_publishes_to_a_relayed_topic_and_sends_to_every_session_of_a_user()
    {
        await using var server = await StartAsync();
        var topic = $"/topic/{Unique()}.news";
        var (one, _) = await ApplicationTestKit.ConnectAsync(server);
        await using var o = one;
        var (two, _) = await ApplicationTestKit.ConnectAsync(server);
        await using var t = two;
        await one.SubscribeAndWaitAsync("news", topic);
        await one.SubscribeAndWaitAsync("n", "/user/queue/notices");
        await two.SubscribeAndWaitAsync("n", "/user/queue/notices");
        var messenger = server.Services.GetRequiredService<IStompMessenger>();

        await messenger.PublishAsync(topic, new { Headline = "relayed" });
        var reached = await messenger.SendToUserAsync("alice", "/queue/notices", "for both");

        var news = await one.NextMessageAsync();
        Assert.That((news["subscription"], news["content-type"], news.Json().GetProperty("headline").GetString()), Is.EqualTo(("news", "application/json", "relayed")));
        Assert.That(reached, Is.EqualTo(2));
        Assert.That((await one.NextMessageAsync()).BodyText, Is.EqualTo("for both"));
        var other = await two.NextMessageAsync();
        Assert.That((other["subscription"], other["destination"], other.BodyText), Is.EqualTo(("n", "/user/queue/notices", "for both")));
    }
}
