using Broker.Protocol;
using Broker.Routing;
using NUnit.Framework;
using static Broker.Tests.Relay.RelayTesting;

namespace Broker.Tests.Relay;

/// <summary>
/// The broker behaviour the in-process broker has (Sessions/MessagingTests), again with the RabbitMQ
/// relay against a real rabbitmq-server. Every test uses names of its own. One difference is
/// allowed for: RabbitMQ confirms a SEND (so its RECEIPT can go) before it delivers the message, so a
/// MESSAGE may come after the RECEIPT of its SEND; absence is shown by a later marker arriving first.
/// </summary>
[TestFixture]
public sealed class RelayMessagingTests
{
    private RabbitMqServer _server = null!;

    [OneTimeSetUp]
    public async Task StartServer() => _server = await RabbitMqServer.GetSharedAsync();

    [Test]
    public async Task A_topic_message_reaches_every_subscriber_with_its_headers()
    {
        var p = Unique();
        await using var harness = await StartAsync(_server);
        var a = await harness.OpenConnectedAsync();
        var b = await harness.OpenConnectedAsync();
        await a.SubscribeAndWaitAsync("s1", $"/topic/{p}.prices.eur");
        await b.SubscribeAndWaitAsync("s2", $"/topic/{p}.prices.eur");
        var publisher = await harness.OpenConnectedAsync();

        await publisher.PublishAsync($"/topic/{p}.prices.eur", "1.08", ("content-type", "text/plain"), ("x-trace", "  spaced value  "), ("x-trace", "second"), ("x-trace", "third"));

        foreach (var (client, id) in new[] { (a, "s1"), (b, "s2") })
        {
            var message = await client.ReceiveAsync();
            Assert.That(message.Command, Is.EqualTo(StompCommand.Message));
            Assert.That(message["destination"], Is.EqualTo($"/topic/{p}.prices.eur"));
            Assert.That(message["subscription"], Is.EqualTo(id));
            Assert.That(message["message-id"], Is.Not.Empty);
            Assert.That(message["content-type"], Is.EqualTo("text/plain"));
            Assert.That(message["x-trace"], Is.EqualTo("  spaced value  "), "values are not trimmed; the first repeated header wins");
            Assert.That(message.HeaderList.Where(h => h.Key == "x-trace").Select(h => h.Value), Is.EqualTo(new[] { "  spaced value  ", "second", "third" }), "repeats travel, in order");
            Assert.That(message["content-length"], Is.EqualTo("4"));
            Assert.That(message["ack"], Is.Null, "auto subscriptions carry no ack header");
            Assert.That(message.BodyText, Is.EqualTo("1.08"));
        }
    }

    [TestCase("a.*.c", "a.b.c", true)]
    [TestCase("a.*.c", "a.b.b.c", false)]
    [TestCase("a.#", "a", true)]
    [TestCase("a.#", "a.b.c", true)]
    [TestCase("#.c", "a.b.c", true)]
    [TestCase("a.#.c", "a.c", true)]
    [TestCase("*", "a.b", false)]
    [TestCase("a.b", "a.b.c", false)]
    public async Task Wildcards_match_as_in_a_topic_exchange(string pattern, string key, bool delivered)
    {
        var p = Unique();
        await using var harness = await StartAsync(_server);
        var subscriber = await harness.OpenConnectedAsync();
        await subscriber.SubscribeAndWaitAsync("w", $"/topic/{p}.{pattern}");
        await subscriber.SubscribeAndWaitAsync("marker", $"/topic/{p}-marker");
        var publisher = await harness.OpenConnectedAsync();

        await publisher.PublishConfirmedAsync($"/topic/{p}.{key}", "x");
        await publisher.PublishConfirmedAsync($"/topic/{p}-marker", "marker");
        var first = await subscriber.NextMessageAsync();

        Assert.That(first["destination"], Is.EqualTo(delivered ? $"/topic/{p}.{key}" : $"/topic/{p}-marker"));
        Assert.That(first["subscription"], Is.EqualTo(delivered ? "w" : "marker"));
    }

    [Test]
    public async Task Unsubscribe_stops_delivery()
    {
        var p = Unique();
        await using var harness = await StartAsync(_server);
        var client = await harness.OpenConnectedAsync();
        await client.SubscribeAndWaitAsync("s", $"/topic/{p}");
        await client.SendFrameAsync(StompCommand.Unsubscribe, ("id", "s"), ("receipt", "u"));
        await client.ExpectReceiptAsync("u");
        await client.SubscribeAndWaitAsync("marker", $"/topic/{p}-marker");
        var publisher = await harness.OpenConnectedAsync();

        await publisher.PublishConfirmedAsync($"/topic/{p}", "x");
        await publisher.PublishConfirmedAsync($"/topic/{p}-marker", "marker");

        Assert.That((await client.NextMessageAsync())["subscription"], Is.EqualTo("marker"));
        Assert.That(await client.TryReceiveAsync(TimeSpan.FromMilliseconds(200)), Is.Null);
    }

    [Test]
    public async Task Queue_messages_go_round_robin_to_competing_consumers()
    {
        var q = $"/queue/{Unique()}-work";
        await using var harness = await StartAsync(_server);
        var a = await harness.OpenConnectedAsync();
        var b = await harness.OpenConnectedAsync();
        await a.SubscribeAndWaitAsync("q", q);
        await b.SubscribeAndWaitAsync("q", q);
        var producer = await harness.OpenConnectedAsync();

        for (var i = 0; i < 6; i++)
        {
            await producer.PublishAsync(q, $"job-{i}");
        }

        var gotA = new[] { await a.ReceiveAsync(), await a.ReceiveAsync(), await a.ReceiveAsync() }.Select(m => m.BodyText);
        var gotB = new[] { await b.ReceiveAsync(), await b.ReceiveAsync(), await b.ReceiveAsync() }.Select(m => m.BodyText);

        Assert.That(gotA.Concat(gotB), Is.EquivalentTo(Enumerable.Range(0, 6).Select(i => $"job-{i}")));
        Assert.That(await a.TryReceiveAsync(TimeSpan.FromMilliseconds(100)), Is.Null);
    }

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

    [Test]
    public async Task A_NACKed_queue_message_is_delivered_again()
    {
        var q = $"/queue/{Unique()}-nack";
        await using var harness = await StartAsync(_server);
        var a = await harness.OpenConnectedAsync();
        await a.SubscribeAndWaitAsync("q", q, "client-individual");
        var b = await harness.OpenConnectedAsync();
        await b.SubscribeAndWaitAsync("q", q, "client-individual");
        var producer = await harness.OpenConnectedAsync();

        await producer.PublishAsync(q, "only");
        var (firstClient, first) = await FirstOfAsync(a, b);
        Assert.That(first["ack"], Is.Not.Empty);
        await firstClient.SendFrameAsync(StompCommand.Nack, ("id", first["ack"]!));
        var (secondClient, second) = await FirstOfAsync(a, b);
        await secondClient.SendFrameAsync(StompCommand.Ack, ("id", second["ack"]!), ("receipt", "acked"));
        await secondClient.ExpectReceiptAsync("acked");

        Assert.That(second.BodyText, Is.EqualTo("only"));
        Assert.That(second["message-id"], Is.EqualTo(first["message-id"]));
        Assert.That(await a.TryReceiveAsync(TimeSpan.FromMilliseconds(200)), Is.Null, "acked messages never come back");
        Assert.That(await b.TryReceiveAsync(TimeSpan.FromMilliseconds(50)), Is.Null);
    }

    [Test]
    public async Task Unacked_messages_of_a_consumer_that_leaves_go_to_another()
    {
        var q = $"/queue/{Unique()}-leave";
        await using var harness = await StartAsync(_server);
        var leaver = await harness.OpenConnectedAsync();
        await leaver.SubscribeAndWaitAsync("q", q, "client-individual");
        var producer = await harness.OpenConnectedAsync();
        for (var i = 0; i < 3; i++)
        {
            await producer.PublishAsync(q, $"m{i}");
        }

        var received = new[] { await leaver.ReceiveAsync(), await leaver.ReceiveAsync(), await leaver.ReceiveAsync() };
        await leaver.SendFrameAsync(StompCommand.Ack, ("id", received[1]["ack"]!), ("receipt", "one"));
        await leaver.ExpectReceiptAsync("one");
        await leaver.DisposeAsync();

        var stayer = await harness.OpenConnectedAsync();
        await stayer.SubscribeAsync("q", q, "client-individual");
        var redelivered = new[] { await stayer.ReceiveAsync(), await stayer.ReceiveAsync() }.Select(m => m.BodyText);

        Assert.That(redelivered, Is.EqualTo(new[] { "m0", "m2" }));
        Assert.That(await stayer.TryReceiveAsync(TimeSpan.FromMilliseconds(200)), Is.Null);
    }

    [Test]
    public async Task Client_mode_ACK_is_cumulative()
    {
        var q = $"/queue/{Unique()}-cumulative";
        await using var harness = await StartAsync(_server);
        var consumer = await harness.OpenConnectedAsync();
        await consumer.SubscribeAndWaitAsync("q", q, "client");
        var producer = await harness.OpenConnectedAsync();
        for (var i = 0; i < 5; i++)
        {
            await producer.PublishAsync(q, $"m{i}");
        }

        var messages = new List<ReceivedFrame>();
        for (var i = 0; i < 5; i++)
        {
            messages.Add(await consumer.ReceiveAsync());
        }

        await consumer.SendFrameAsync(StompCommand.Ack, ("id", messages[3]["ack"]!), ("receipt", "acked"));
        await consumer.ExpectReceiptAsync("acked");
        await consumer.DisposeAsync();

        var next = await harness.OpenConnectedAsync();
        await next.SubscribeAsync("q", q, "client");

        Assert.That((await next.ReceiveAsync()).BodyText, Is.EqualTo("m4"));
        Assert.That(await next.TryReceiveAsync(TimeSpan.FromMilliseconds(200)), Is.Null);
    }

    [Test]
    public async Task Client_mode_ACK_settles_only_its_own_subscription()
    {
        // Subscriptions share an AMQP channel, whose own 'multiple' ack would reach across them.
        var p = Unique();
        await using var harness = await StartAsync(_server, relay: o => o.Connections = 1);
        var consumer = await harness.OpenConnectedAsync();
        await consumer.SubscribeAndWaitAsync("other", $"/queue/{p}-other", "client-individual");
        await consumer.SubscribeAndWaitAsync("mine", $"/queue/{p}-mine", "client");
        var producer = await harness.OpenConnectedAsync();
        await producer.PublishConfirmedAsync($"/queue/{p}-other", "other");
        var other = await consumer.ReceiveAsync();
        await producer.PublishConfirmedAsync($"/queue/{p}-mine", "mine");
        var mine = await consumer.ReceiveAsync();

        await consumer.SendFrameAsync(StompCommand.Ack, ("id", mine["ack"]!), ("receipt", "acked"));
        await consumer.ExpectReceiptAsync("acked");
        await consumer.DisposeAsync();

        Assert.That(other.BodyText, Is.EqualTo("other"));
        var next = await harness.OpenConnectedAsync();
        await next.SubscribeAsync("other", $"/queue/{p}-other", "client-individual");
        Assert.That((await next.ReceiveAsync()).BodyText, Is.EqualTo("other"), "the other subscription's delivery was not acknowledged");
    }

    [Test]
    public async Task STOMP_1_1_ACK_names_message_id_and_subscription()
    {
        var q = $"/queue/{Unique()}-v11";
        await using var harness = await StartAsync(_server);
        var consumer = await harness.OpenConnectedAsync("1.1");
        await consumer.SubscribeAndWaitAsync("q", q, "client-individual");
        var producer = await harness.OpenConnectedAsync();
        await producer.PublishAsync(q, "a");
        await producer.PublishAsync(q, "b");
        var a = await consumer.ReceiveAsync();
        var b = await consumer.ReceiveAsync();

        await consumer.SendFrameAsync(StompCommand.Ack, ("message-id", a["message-id"]!), ("subscription", "q"));
        await consumer.SendFrameAsync(StompCommand.Nack, ("message-id", b["message-id"]!), ("subscription", "q"));

        var again = await consumer.ReceiveAsync();
        Assert.That(a["ack"], Is.Null, "1.1 MESSAGE frames carry no ack header");
        Assert.That(again.BodyText, Is.EqualTo("b"));
        Assert.That(again["message-id"], Is.EqualTo(b["message-id"]));
    }

    [Test]
    public async Task Binary_bodies_with_NULs_arrive_intact()
    {
        var p = Unique();
        await using var harness = await StartAsync(_server);
        var client = await harness.OpenConnectedAsync();
        await client.SubscribeAndWaitAsync("s", $"/topic/{p}.bin");
        var body = Enumerable.Range(0, 256).Select(i => (byte)i).ToArray();

        await client.SendFrameAsync(StompCommand.Send, [("destination", $"/topic/{p}.bin"), ("content-type", "application/octet-stream")], body);

        var message = await client.ReceiveAsync();
        Assert.That(message.Body, Is.EqualTo(body));
        Assert.That(message["content-type"], Is.EqualTo("application/octet-stream"));
    }

    [TestCase("1.2")]
    [TestCase("1.1")]
    public async Task Header_values_with_colons_and_newlines_round_trip(string version)
    {
        var p = Unique();
        await using var harness = await StartAsync(_server);
        var client = await harness.OpenConnectedAsync(version);
        await client.SubscribeAndWaitAsync("id:with:colons", $"/topic/{p}.a:b");

        await client.PublishAsync($"/topic/{p}.a:b", "x", ("x-note", "line1\nline2 \\ c:d"), ("x-unicode", "żółw ✓"));
        var message = await client.ReceiveAsync();

        Assert.That(message["destination"], Is.EqualTo($"/topic/{p}.a:b"));
        Assert.That(message["subscription"], Is.EqualTo("id:with:colons"));
        Assert.That(message["x-note"], Is.EqualTo("line1\nline2 \\ c:d"));
        Assert.That(message["x-unicode"], Is.EqualTo("żółw ✓"));
        Assert.That(message.HeaderList.Select(h => h.Key), Is.EqualTo(new[] { "subscription", "destination", "message-id", "x-note", "x-unicode", "content-length" }),
            "the publisher's headers, in order, and nothing the AMQP client added");
    }

    [Test]
    public async Task Clients_cannot_forge_broker_headers()
    {
        var p = Unique();
        await using var harness = await StartAsync(_server);
        var client = await harness.OpenConnectedAsync();
        await client.SubscribeAndWaitAsync("real", $"/topic/{p}");

        await client.PublishAsync($"/topic/{p}", "x", ("message-id", "forged"), ("subscription", "other"), ("ack", "1"));
        var message = await client.ReceiveAsync();

        Assert.That(message["subscription"], Is.EqualTo("real"));
        Assert.That(message["message-id"], Is.Not.EqualTo("forged"));
        Assert.That(message["ack"], Is.Null);
        Assert.That(message.HeaderList.Count(h => h.Key == "subscription"), Is.EqualTo(1));
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
    public async Task Queue_names_may_hold_dashes_dots_and_more()
    {
        var q = $"/queue/{Unique()}-user.alice-ÿ/x";
        await using var harness = await StartAsync(_server);
        var client = await harness.OpenConnectedAsync();
        await client.SubscribeAndWaitAsync("q", q);

        await client.PublishAsync(q, "for alice");

        var message = await client.NextMessageAsync();
        Assert.That(message.BodyText, Is.EqualTo("for alice"));
        Assert.That(message["destination"], Is.EqualTo(q));
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
        await Eventually.That(() => sink.Count == 5, "five deliveries", RelayTesting.Patience);
        var (connection, channel) = await OpenAmqpAsync(_server);
        await using (connection)
        {
            Assert.That(await channel.MessageCountAsync(name), Is.EqualTo(15u));
            Assert.That(await Task.Run(async () => { await Task.Delay(200); return sink.Count; }), Is.EqualTo(5));

            // Written: settled, and five more come.
            subscription.Written(sink.Last!);
            await Eventually.That(() => sink.Count == 10, "ten deliveries", RelayTesting.Patience);
            await Eventually.That(async () => await channel.MessageCountAsync(name) == 10u, "ten left in the queue", RelayTesting.Patience);
        }
    }

    private static async Task<(StompTestClient Client, ReceivedFrame Frame)> FirstOfAsync(StompTestClient a, StompTestClient b)
    {
        var deadline = DateTime.UtcNow + StompTestClient.DefaultTimeout;
        while (DateTime.UtcNow < deadline)
        {
            if (a.TryTake() is { } fromA)
            {
                return (a, fromA);
            }

            if (b.TryTake() is { } fromB)
            {
                return (b, fromB);
            }

            await Task.Delay(5);
        }

        throw new TimeoutException("neither client received a frame");
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
