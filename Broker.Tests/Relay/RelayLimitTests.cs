using Broker.Protocol;
using Broker.Relay.RabbitMq;
using Broker.Resources;
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

    [Test]
    public async Task A_full_queue_refuses_the_SEND_with_an_error_naming_the_queue_and_the_limit_and_others_keep_their_round_trip()
    {
        await using var server = await StartRelayServerAsync(configure: o => o.MaxQueueLength = 2);
        var queue = "/queue/" + RelayTesting.Unique();
        var other = "/queue/" + RelayTesting.Unique();
        await using var consumer = await ConnectAsync(server);
        await consumer.SubscribeAndWaitAsync("o", other);

        await using var filler = await ConnectAsync(server);
        await filler.PublishConfirmedAsync(queue, "q1");
        await filler.PublishConfirmedAsync(queue, "q2");
        await filler.PublishAsync(queue, "q3", ("receipt", "r3"));
        await ExpectRefusalAsync(filler, "r3", LimitNames.MaxQueueLength, queue);

        // A pipelined SEND (no receipt) is refused the same way, once RabbitMQ's nack comes back.
        await using var pipeliner = await ConnectAsync(server);
        await pipeliner.PublishAsync(queue, "q4");
        await ExpectRefusalAsync(pipeliner, null, LimitNames.MaxQueueLength, queue);

        await using var sender = await ConnectAsync(server);
        await sender.PublishConfirmedAsync(other, "still served");
        Assert.That((await consumer.NextMessageAsync()).BodyText, Is.EqualTo("still served"));
        await using var reader = await ConnectAsync(server);
        await reader.SubscribeAsync("q", queue);
        Assert.That((await reader.NextMessageAsync()).BodyText, Is.EqualTo("q1"), "the queue kept what it took");
        Assert.That((await reader.NextMessageAsync()).BodyText, Is.EqualTo("q2"));
    }

    [Test]
    public async Task A_queue_past_max_queue_bytes_refuses_the_SEND_with_an_error_naming_that_limit()
    {
        await using var server = await StartRelayServerAsync(configure: o => o.MaxQueueBytes = 100);
        var queue = "/queue/" + RelayTesting.Unique();
        await using var filler = await ConnectAsync(server);
        var body = new string('b', 60);
        for (var i = 1; ; i++)
        {
            Assert.That(i, Is.LessThanOrEqualTo(3), "two 60-byte messages fill 100 bytes");
            await filler.PublishAsync(queue, body, ("receipt", $"r{i}"));
            var frame = await filler.ReceiveAsync();
            if (frame.Command == StompCommand.Error)
            {
                Assert.That(frame["message"], Does.Contain(LimitNames.MaxQueueBytes).And.Contain(queue));
                break;
            }

            Assert.That(frame["receipt-id"], Is.EqualTo($"r{i}"));
        }
    }

    [Test]
    public async Task DropOldest_drops_the_head_of_a_full_queue()
    {
        await using var server = await StartRelayServerAsync(configure: o =>
        {
            o.MaxQueueLength = 2;
            o.QueueOverflow = QueueOverflow.DropOldest;
        });
        var queue = "/queue/" + RelayTesting.Unique();
        await using var sender = await ConnectAsync(server);
        for (var i = 1; i <= 4; i++)
        {
            await sender.PublishConfirmedAsync(queue, $"d{i}");
        }

        await using var reader = await ConnectAsync(server);
        await reader.SubscribeAsync("q", queue);
        Assert.That((await reader.NextMessageAsync()).BodyText, Is.EqualTo("d3"));
        Assert.That((await reader.NextMessageAsync()).BodyText, Is.EqualTo("d4"));
        Assert.That(await reader.TryReceiveAsync(TimeSpan.FromMilliseconds(300)), Is.Null, "d1 and d2 were dropped");
    }

    // Arguments are fixed when a queue is declared: a declare with others gets PRECONDITION_FAILED, which closes
    // the channel. The relay declares on its topology channel only and takes the refusal as "it exists".
    [Test]
    public async Task A_declare_refused_for_other_arguments_leaves_the_link_up_and_the_queue_as_it_was()
    {
        var name = RelayTesting.Unique();
        var (connection, channel) = await RelayTesting.OpenAmqpAsync(_server);
        await using (connection)
        {
            await channel.QueueDeclareAsync(name, durable: true, exclusive: false, autoDelete: false, new Dictionary<string, object?> { ["x-max-length"] = 7 });
        }

        var options = new RabbitMqRelayOptions { Uri = _server.Uri, Connections = 1 };
        var link = new RelayLink(0, options, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, new RelayQueueLimits(2, 100, QueueOverflow.RejectPublish, TimeSpan.FromHours(1), TimeSpan.FromHours(24)));
        await using (link)
        {
            link.Start();
            Assert.That(await link.WaitConnectedAsync(RelayTesting.Patience), Is.True);

            await link.DeclareDestinationQueueAsync(name);

            Assert.That(await link.MessageCountAsync(name), Is.EqualTo(0u), "the topology channel opens again");
            Assert.That(link.IsConnected, Is.True, "the shared channels were not touched");
            Assert.That(await _server.CtlAsync("list_queues", "-q", "name", "arguments"), Does.Match($@"{name}\s+\[\{{""x-max-length"",7\}}\]"), "kept its own arguments");
        }
    }

    // Up to the ERROR: no RECEIPT for the refused SEND; the ERROR names the limit and the queue.
    private static async Task ExpectRefusalAsync(StompTestClient client, string? receipt, string limit, string queue)
    {
        while (true)
        {
            var frame = await client.ReceiveAsync();
            Assert.That(frame.Command == StompCommand.Receipt && frame["receipt-id"] == receipt, Is.False, "no receipt for a refused SEND");
            if (frame.Command == StompCommand.Error)
            {
                Assert.That(frame["message"], Does.Contain(limit).And.Contain(queue));
                Assert.That(frame["receipt-id"], Is.EqualTo(receipt));
                Assert.That(await client.WaitClosedAsync(), Is.True, "the connection closes after the ERROR");
                return;
            }
        }
    }

    private Task<TestServer> StartRelayServerAsync(Action<RabbitMqRelayOptions>? relay = null, Action<StompBrokerOptions>? configure = null) =>
        TestServer.StartAsync(configure, services: s => new StompBrokerBuilder(s).AddRabbitMqRelay(o =>
        {
            o.Uri = _server.Uri;
            relay?.Invoke(o);
        }));
}
