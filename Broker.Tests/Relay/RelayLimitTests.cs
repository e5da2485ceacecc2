using Broker.Relay.RabbitMq;
using NUnit.Framework;
using static Broker.Tests.Limits.ResourceLimitTests;

namespace Broker.Tests.Relay;

/// <summary>
/// Relay mode's limits (issue 11, relay), over real sockets against the real RabbitMQ node: a SEND AMQP could not
/// carry gets an ERROR naming the limit, and the AMQP connections every other client shares stay up.
/// </summary>
[TestFixture]
public sealed class RelayLimitTests
{
    private RabbitMqServer _server = null!;

    [OneTimeSetUp]
    public async Task StartServer() => _server = await RabbitMqServer.GetSharedAsync();

    [Test]
    public async Task A_header_name_longer_than_an_amqp_short_string_gets_an_error_and_other_clients_keep_their_round_trip()
    {
        await using var server = await StartRelayServerAsync();
        var queue = "/queue/" + RelayTesting.Unique();
        await using var other = await ConnectAsync(server);
        await other.SubscribeAndWaitAsync("q", queue);

        foreach (var receipt in new[] { false, true })
        {
            await using var attacker = await ConnectAsync(server);
            var headers = new List<(string, string)> { (new string('h', 300), "v") };
            if (receipt)
            {
                headers.Add(("receipt", "r"));
            }

            await attacker.PublishAsync(queue, "bad", [.. headers]);
            await ExpectErrorAsync(attacker, RelayMessages.MaxHeaderNameLengthLimit);
        }

        await using var sender = await ConnectAsync(server);
        await sender.PublishConfirmedAsync(queue, "still served");
        Assert.That((await other.NextMessageAsync()).BodyText, Is.EqualTo("still served"));
    }

    [Test]
    public async Task Headers_past_max_relay_header_bytes_get_an_error_and_other_clients_keep_their_round_trip()
    {
        await using var server = await StartRelayServerAsync(o => o.MaxHeaderBytes = 4096);
        var topic = "/topic/" + RelayTesting.Unique();
        var queue = "/queue/" + RelayTesting.Unique();
        await using var other = await ConnectAsync(server);
        await other.SubscribeAndWaitAsync("q", queue);

        await using var attacker = await ConnectAsync(server);
        await attacker.PublishAsync(topic, "bad", ("a", new string('v', 3000)), ("b", new string('v', 3000)));
        await ExpectErrorAsync(attacker, RelayMessages.MaxRelayHeaderBytesLimit);

        await using var sender = await ConnectAsync(server);
        await sender.PublishConfirmedAsync(queue, "still served", ("a", new string('v', 3000)));
        Assert.That((await other.NextMessageAsync()).BodyText, Is.EqualTo("still served"));
    }

    [Test]
    public async Task Destination_limits_apply_in_relay_mode_too()
    {
        await using var server = await StartRelayServerAsync(configure: o => o.MaxDestinationWords = 4);
        await using var attacker = await ConnectAsync(server);
        await attacker.SubscribeAsync("s", "/topic/a.b.c.d.e");
        await ExpectErrorAsync(attacker, "max-destination-words");
    }

    private Task<TestServer> StartRelayServerAsync(Action<RabbitMqRelayOptions>? relay = null, Action<StompBrokerOptions>? configure = null) =>
        TestServer.StartAsync(configure, services: s => new StompBrokerBuilder(s).AddRabbitMqRelay(o =>
        {
            o.Uri = _server.Uri;
            relay?.Invoke(o);
        }));
}
