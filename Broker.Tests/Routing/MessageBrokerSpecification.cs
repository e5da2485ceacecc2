using System.Globalization;
using Broker.Protocol;
using NUnit.Framework;
using static Broker.Tests.Relay.RelayTesting;

namespace Broker.Tests.Routing;

/// <summary>
/// The contract of <see cref="Broker.Routing.IMessageBroker"/> as a client sees it, held by every broker: the
/// in-process one, the Redis cluster and the RabbitMQ relay (as SignalR's HubLifetimeManagerTestBase holds every
/// backplane). Sessions run over in-memory pipes against the broker under test, durable sessions on. Every test
/// uses names of its own, so a broker on a shared server needs no cleaning. A broker may confirm a SEND (its
/// RECEIPT) before it delivers the message, so a MESSAGE may come after the RECEIPT of its SEND, and absence is
/// shown by a later marker arriving first.
/// </summary>
public abstract class MessageBrokerSpecification
{
    private readonly List<SessionHarness> _harnesses = [];

    /// <summary>A harness whose broker is the one under test, with durable sessions (in memory).</summary>
    private protected abstract Task<SessionHarness> CreateHarnessAsync();

    /// <summary>Whether a NACKed queue message goes to the next consumer in the round (the in-process broker's promise).</summary>
    private protected virtual bool NackPassesToTheNextConsumer => false;

    /// <summary>
    /// A harness whose broker carries every subscription over one connection where it would spread them over
    /// several (the relay: one AMQP connection, so its subscriptions share channels); by default the usual one.
    /// </summary>
    private protected virtual Task<SessionHarness> CreateSingleConnectionHarnessAsync() => CreateHarnessAsync();

    private protected async Task<SessionHarness> StartAsync(bool singleConnection = false)
    {
        var harness = await (singleConnection ? CreateSingleConnectionHarnessAsync() : CreateHarnessAsync());
        _harnesses.Add(harness);
        return harness;
    }

    [TearDown]
    public async Task DisposeHarnesses()
    {
        foreach (var harness in _harnesses)
        {
            await harness.DisposeAsync();
        }

        _harnesses.Clear();
    }

    [Test]
    public async Task A_topic_message_reaches_every_subscriber_with_its_headers()
    {
        var p = Unique();
        var harness = await StartAsync();
        var a = await harness.OpenConnectedAsync();
        var b = await harness.OpenConnectedAsync();
        await a.SubscribeAndWaitAsync("s1", $"/topic/{p}.prices.eur");
        await b.SubscribeAndWaitAsync("s2", $"/topic/{p}.prices.eur");
        var publisher = await harness.OpenConnectedAsync();

        await publisher.PublishAsync($"/topic/{p}.prices.eur", "1.08", ("content-type", "text/plain"), ("x-trace", "  spaced value  "), ("x-trace", "second"));

        foreach (var (client, id) in new[] { (a, "s1"), (b, "s2") })
        {
            var message = await client.ReceiveAsync();
            Assert.That(message.Command, Is.EqualTo(StompCommand.Message));
            Assert.That(message["destination"], Is.EqualTo($"/topic/{p}.prices.eur"));
            Assert.That(message["subscription"], Is.EqualTo(id));
            Assert.That(message["message-id"], Is.Not.Empty);
            Assert.That(message["content-type"], Is.EqualTo("text/plain"));
            Assert.That(message["x-trace"], Is.EqualTo("  spaced value  "), "values are not trimmed; the first repeated header wins");
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
    [TestCase("a.#", "ab", false)]
    public async Task Wildcards_match_as_in_a_topic_exchange(string pattern, string key, bool delivered)
    {
        var p = Unique();
        var harness = await StartAsync();
        var subscriber = await harness.OpenConnectedAsync();
        await subscriber.SubscribeAndWaitAsync("w", $"/topic/{p}.{pattern}");
        await subscriber.SubscribeAndWaitAsync("marker", $"/topic/{p}-marker");
        var publisher = await harness.OpenConnectedAsync();

        await publisher.PublishConfirmedAsync($"/topic/{p}.{key}", "x");
        await publisher.PublishConfirmedAsync($"/topic/{p}-marker", "marker");

        // Order is promised per destination, not across them: the two may come either way round.
        var got = new List<(string?, string?)> { Describe(await subscriber.NextMessageAsync()) };
        if (delivered)
        {
            got.Add(Describe(await subscriber.NextMessageAsync()));
        }

        Assert.That(got, Is.EquivalentTo(delivered
            ? new[] { ("w", $"/topic/{p}.{key}"), ("marker", $"/topic/{p}-marker") }
            : new[] { ("marker", $"/topic/{p}-marker") }));
        Assert.That(await subscriber.TryReceiveAsync(TimeSpan.FromMilliseconds(200)), Is.Null);

        static (string?, string?) Describe(ReceivedFrame frame) => (frame["subscription"], frame["destination"]);
    }

    [Test]
    public async Task Unsubscribe_stops_delivery()
    {
        var p = Unique();
        var harness = await StartAsync();
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
    public async Task One_publishers_messages_arrive_once_in_order()
    {
        const int Count = 300;
        var destination = $"/topic/{Unique()}";
        var harness = await StartAsync();
        var subscriber = await harness.OpenConnectedAsync();
        await subscriber.SubscribeAndWaitAsync("s", destination);
        var publisher = await harness.OpenConnectedAsync();
        for (var i = 1; i <= Count; i++)
        {
            await publisher.PublishAsync(destination, i.ToString(CultureInfo.InvariantCulture));
        }

        var got = new List<int>();
        for (var i = 0; i < Count; i++)
        {
            got.Add(int.Parse((await subscriber.NextMessageAsync()).BodyText, CultureInfo.InvariantCulture));
        }

        Assert.That(got, Is.EqualTo(Enumerable.Range(1, Count)));
    }

    [Test]
    public async Task A_dropped_durable_session_resumes_with_every_missed_message_once_in_order()
    {
        var destination = $"/topic/{Unique()}";
        var harness = await StartAsync();
        var (client, connected) = await harness.OpenConnectedAsync("1.2", "guest");
        await client.SubscribeAndWaitAsync("s", destination);
        var publisher = await harness.OpenConnectedAsync();
        await publisher.PublishConfirmedAsync(destination, "seen");
        Assert.That((await client.NextMessageAsync()).BodyText, Is.EqualTo("seen"));
        await client.DisposeAsync();
        await Eventually.That(() => Task.FromResult(harness.Registry.Find(connected["session"]!) is null), "the session let go", Eventually.Relaxed);

        for (var i = 1; i <= 20; i++)
        {
            await publisher.PublishConfirmedAsync(destination, i.ToString(CultureInfo.InvariantCulture));
        }

        var (resumed, again) = await harness.OpenConnectedAsync("1.2", "guest", connected["session-token"]);
        Assert.That((again["resumed"], again["recovered"]), Is.EqualTo(("true", "true")));
        var got = new List<string>();
        for (var i = 0; i < 20; i++)
        {
            got.Add((await resumed.NextMessageAsync()).BodyText);
        }

        Assert.That(got, Is.EqualTo(Enumerable.Range(1, 20).Select(i => i.ToString(CultureInfo.InvariantCulture))));
        await publisher.PublishConfirmedAsync(destination, "live");
        Assert.That((await resumed.NextMessageAsync()).BodyText, Is.EqualTo("live"), "nothing twice: the next message is the live one");
    }

    [Test]
    public async Task Queue_messages_go_round_robin_to_competing_consumers()
    {
        var q = $"/queue/{Unique()}-work";
        var harness = await StartAsync();
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
    public async Task Queue_messages_wait_for_a_consumer()
    {
        var q = $"/queue/{Unique()}.later";
        var harness = await StartAsync();
        var producer = await harness.OpenConnectedAsync();
        await producer.PublishConfirmedAsync(q, "kept", ("content-type", "text/plain"));

        var consumer = await harness.OpenConnectedAsync();
        await consumer.SubscribeAsync("q", q);
        var message = await consumer.ReceiveAsync();
        Assert.That((message.BodyText, message["destination"], message["content-type"]), Is.EqualTo(("kept", q, "text/plain")));
    }

    [Test]
    public async Task A_NACKed_queue_message_is_delivered_again()
    {
        var q = $"/queue/{Unique()}-nack";
        var harness = await StartAsync();
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
        if (NackPassesToTheNextConsumer)
        {
            Assert.That((firstClient, secondClient), Is.EqualTo((a, b)), "the first in the round got it, the next one got it again");
        }

        Assert.That(await a.TryReceiveAsync(TimeSpan.FromMilliseconds(200)), Is.Null, "acked messages never come back");
        Assert.That(await b.TryReceiveAsync(TimeSpan.FromMilliseconds(50)), Is.Null);
    }

    [Test]
    public async Task Unacked_messages_of_a_consumer_that_leaves_go_to_another()
    {
        var q = $"/queue/{Unique()}-leave";
        var harness = await StartAsync();
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
        var harness = await StartAsync();
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
        // Where subscriptions share a channel (the relay's AMQP one), the channel's own 'multiple' ack would reach across them.
        var p = Unique();
        var harness = await StartAsync(singleConnection: true);
        var consumer = await harness.OpenConnectedAsync();
        await consumer.SubscribeAndWaitAsync("other", $"/queue/{p}-other", "client-individual");
        await consumer.SubscribeAndWaitAsync("mine", $"/queue/{p}-mine", "client");
        var producer = await harness.OpenConnectedAsync();
        await producer.PublishConfirmedAsync($"/queue/{p}-other", "other");
        var other = await consumer.NextMessageAsync();
        await producer.PublishConfirmedAsync($"/queue/{p}-mine", "mine");
        var mine = await consumer.NextMessageAsync();

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
        var harness = await StartAsync();
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
        var harness = await StartAsync();
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
        var harness = await StartAsync();
        var client = await harness.OpenConnectedAsync(version);
        await client.SubscribeAndWaitAsync("id:with:colons", $"/topic/{p}.a:b");

        await client.PublishAsync($"/topic/{p}.a:b", "x", ("x-note", "line1\nline2 \\ c:d"), ("x-unicode", "żółw ✓"));
        var message = await client.ReceiveAsync();

        Assert.That(message["destination"], Is.EqualTo($"/topic/{p}.a:b"));
        Assert.That(message["subscription"], Is.EqualTo("id:with:colons"));
        Assert.That(message["x-note"], Is.EqualTo("line1\nline2 \\ c:d"));
        Assert.That(message["x-unicode"], Is.EqualTo("żółw ✓"));
        Assert.That(message.HeaderList.Select(h => h.Key), Is.EqualTo(new[] { "subscription", "destination", "message-id", "x-note", "x-unicode", "content-length" }),
            "the publisher's headers, in order, and nothing the broker added");
    }

    [Test]
    public async Task Clients_cannot_forge_broker_headers()
    {
        var p = Unique();
        var harness = await StartAsync();
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
    [TestCase("/queue/")]
    public async Task Sending_to_an_invalid_destination_is_an_error(string destination)
    {
        var harness = await StartAsync();
        var client = await harness.OpenConnectedAsync();

        await client.PublishAsync(destination, "x");

        Assert.That((await client.ReceiveAsync()).Command, Is.EqualTo(StompCommand.Error));
    }

    [Test]
    public async Task Queue_names_may_hold_dashes_dots_and_more()
    {
        var q = $"/queue/{Unique()}-user.alice-ÿ/x";
        var harness = await StartAsync();
        var client = await harness.OpenConnectedAsync();
        await client.SubscribeAndWaitAsync("q", q);

        await client.PublishAsync(q, "for alice");

        var message = await client.NextMessageAsync();
        Assert.That(message.BodyText, Is.EqualTo("for alice"));
        Assert.That(message["destination"], Is.EqualTo(q));
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
}
