using Broker.Protocol;
using Broker.Routing;
using NUnit.Framework;
using static Broker.Tests.Relay.RelayTesting;

namespace Broker.Tests.Relay;

/// <summary>
/// What only the RabbitMQ relay has to show, against a real rabbitmq-server: where messages wait, reserved
/// queue names, prefetch. The behaviour every broker shares is
/// <see cref="RelayBrokerSpecification"/> (<see cref="Routing.MessageBrokerSpecification"/>), acknowledgements over one shared
/// AMQP connection included.
/// </summary>
[TestFixture]
public sealed class RelayMessagingTests
{
    private RabbitMqServer _server = null!;

    [OneTimeSetUp]
    public async Task StartServer() => _server = await RabbitMqServer.GetSharedAsync();

    [Test]
    public async Task A_receipt_means_the_message_is_in_RabbitMQ_and_waits_for_a_consumer()
    {
        var name = $"{Unique()}.later-q";
        await using var harness = await StartAsync(_server);
        var producer = await harness.OpenConnectedAsync();

        await producer.PublishConfirmedAsync($"/queue/{name}", "kept", ("content-type", "text/plain"));

        // Behind the relay's back: the durable queue exists and holds the message.
        var (connection, channel) = await OpenAmqpAsync(_server);
        await using (connection)
        {
            Assert.That(await channel.MessageCountAsync(name), Is.EqualTo(1u));
        }

        var consumer = await harness.OpenConnectedAsync();
        await consumer.SubscribeAsync("q", $"/queue/{name}");
        var message = await consumer.ReceiveAsync();
        Assert.That(message.BodyText, Is.EqualTo("kept"));
        Assert.That(message["destination"], Is.EqualTo($"/queue/{name}"));
        Assert.That(message["content-type"], Is.EqualTo("text/plain"));
    }

    [TestCase("/elsewhere/x")]
    [TestCase("/topic/")]
    [TestCase("/topic/a.*")]
    [TestCase("/queue/amq.gen-x")]
    [TestCase("/queue/stomp-relay.someone.else")]
    public async Task Sending_to_an_invalid_or_reserved_destination_is_an_error(string destination)
    {
        await using var harness = await StartAsync(_server);
        var client = await harness.OpenConnectedAsync();

        await client.PublishAsync(destination, "x");

        Assert.That((await client.ReceiveAsync()).Command, Is.EqualTo(StompCommand.Error));
    }

    [Test]
    public async Task A_slow_auto_ack_client_holds_at_most_the_prefetch_and_the_rest_waits_in_RabbitMQ()
    {
        var name = $"{Unique()}-slow";
        await using var harness = await StartAsync(_server, relay: o => o.DefaultPrefetch = 5);
        var relay = RelayTesting.Relay(harness);
        var sink = new StallingSink();
        using var subscription = await relay.SubscribeAsync(new SubscriptionRequest("s", "q", $"/queue/{name}", AckMode.Auto), sink);
        for (var i = 0; i < 20; i++)
        {
            await relay.PublishAsync(new BrokerMessage($"/queue/{name}", $"m{i}", [], new byte[] { (byte)i }));
        }

        // Nothing is written, so nothing is acknowledged: RabbitMQ stops at the prefetch.
        await Eventually.That(() => Task.FromResult(sink.Count == 5), "five deliveries", Eventually.Relaxed);
        var (connection, channel) = await OpenAmqpAsync(_server);
        await using (connection)
        {
            Assert.That(await channel.MessageCountAsync(name), Is.EqualTo(15u));
            Assert.That(await Task.Run(async () => { await Task.Delay(200); return sink.Count; }), Is.EqualTo(5));

            // Written: settled, and five more come.
            subscription.Written(sink.Last!);
            await Eventually.That(() => Task.FromResult(sink.Count == 10), "ten deliveries", Eventually.Relaxed);
            await Eventually.That(async () => await channel.MessageCountAsync(name) == 10u, "ten left in the queue", Eventually.Relaxed);
        }
    }


    private sealed class StallingSink : IMessageSink
    {
        private int _count;

        public int Count => Volatile.Read(ref _count);

        public BrokerMessage? Last { get; private set; }

        public void Start(StreamPosition? after)
        {
        }

        public bool TryDeliver(BrokerMessage message, ulong deliveryTag)
        {
            Last = message;
            Interlocked.Increment(ref _count);
            return true;
        }
    }
}
