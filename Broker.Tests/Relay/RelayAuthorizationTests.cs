using Broker.Protocol;
using Broker.Security;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;
using static Broker.Tests.Relay.RelayTesting;

namespace Broker.Tests.Relay;

/// <summary>
/// Authorization rules hold with the RabbitMQ relay as they do in-process: the check comes before the
/// broker is asked, so a refused SUBSCRIBE declares nothing and a refused SEND never reaches RabbitMQ.
/// </summary>
[TestFixture]
public sealed class RelayAuthorizationTests
{
    private RabbitMqServer _server = null!;

    [OneTimeSetUp]
    public async Task StartServer() => _server = await RabbitMqServer.GetSharedAsync();

    private static StompAuthorizationRule Rule(string who, string what, string destination, string access) =>
        new() { Who = who, What = what, Destination = destination, Access = access };

    private Task<SessionHarness> StartAsync(string p) => RelayTesting.StartAsync(_server, services: s => s.Configure<StompBrokerOptions>(o =>
        o.Authorization.Rules.AddRange([
            Rule("*", "*", $"/topic/{p}.open.#", "allow"),
            Rule("*", "subscribe", $"/topic/{p}.closed.*", "deny"),
            Rule("*", "subscribe", $"/topic/{p}.#", "allow"),
            Rule("guest", "*", $"/queue/{p}-guest", "allow"),
        ])));

    private static async Task ExpectRefusedAsync(StompTestClient client, string message)
    {
        var error = await client.NextMessageAsync();
        Assert.That((error.Command, error["message"]), Is.EqualTo((StompCommand.Error, message)));
        Assert.That(await client.WaitClosedAsync(), Is.True);
    }

    [Test]
    public async Task Allowed_subscribe_and_send_deliver_through_rabbitmq()
    {
        var p = Unique();
        await using var harness = await StartAsync(p);
        var subscriber = await harness.OpenConnectedAsync();
        await subscriber.SubscribeAndWaitAsync("open", $"/topic/{p}.open.#");
        var publisher = await harness.OpenConnectedAsync();

        await publisher.PublishConfirmedAsync($"/topic/{p}.open.news", "hello");
        await publisher.PublishConfirmedAsync($"/queue/{p}-guest", "job");

        var message = await subscriber.NextMessageAsync();
        Assert.That((message["destination"], message.BodyText), Is.EqualTo(($"/topic/{p}.open.news", "hello")));
        Assert.That(await QueueExistsAsync(_server, $"{p}-guest"), Is.True, "the allowed SEND reached RabbitMQ");
    }

    [Test]
    public async Task A_refused_subscribe_gets_an_error_and_a_wildcard_cannot_reach_around_the_deny()
    {
        var p = Unique();
        await using var harness = await StartAsync(p);
        var direct = await harness.OpenConnectedAsync();
        await direct.SubscribeAsync("c", $"/topic/{p}.closed.x");
        await ExpectRefusedAsync(direct, $"subscribe to /topic/{p}.closed.x is not permitted");

        var wildcard = await harness.OpenConnectedAsync();
        await wildcard.SubscribeAsync("all", $"/topic/{p}.#");
        await ExpectRefusedAsync(wildcard, $"subscribe to /topic/{p}.# is not permitted");

        var queue = await harness.OpenConnectedAsync("1.2", "mallory");
        await queue.Client.SubscribeAsync("q", $"/queue/{p}-guest");
        await ExpectRefusedAsync(queue.Client, $"subscribe to /queue/{p}-guest is not permitted");
        Assert.That(await QueueExistsAsync(_server, $"{p}-guest"), Is.False, "the refused SUBSCRIBE declared nothing");
    }

    [Test]
    public async Task A_refused_send_gets_an_error_and_reaches_nobody()
    {
        var p = Unique();
        await using var harness = await StartAsync(p);
        var subscriber = await harness.OpenConnectedAsync();
        await subscriber.SubscribeAndWaitAsync("readonly", $"/topic/{p}.readonly.*");
        await subscriber.SubscribeAndWaitAsync("marker", $"/topic/{p}.open.news");

        var forger = await harness.OpenConnectedAsync();
        await forger.PublishAsync($"/topic/{p}.readonly.news", "forged");
        await ExpectRefusedAsync(forger, $"send to /topic/{p}.readonly.news is not permitted");

        var mallory = (await harness.OpenConnectedAsync("1.2", "mallory")).Client;
        await mallory.PublishAsync($"/queue/{p}-guest", "not yours");
        await ExpectRefusedAsync(mallory, $"send to /queue/{p}-guest is not permitted");
        Assert.That(await QueueExistsAsync(_server, $"{p}-guest"), Is.False, "the refused SEND never reached RabbitMQ");

        var publisher = await harness.OpenConnectedAsync();
        await publisher.PublishConfirmedAsync($"/topic/{p}.open.news", "marker");
        var first = await subscriber.NextMessageAsync();
        Assert.That(first.BodyText, Is.EqualTo("marker"), "the refused SEND delivered nothing");
    }
}
