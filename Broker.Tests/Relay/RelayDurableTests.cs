using Broker.Durability;
using Broker.Protocol;
using Broker.Relay.RabbitMq;
using Broker.Sessions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using NUnit.Framework;
using static Broker.Tests.Relay.RelayTesting;

namespace Broker.Tests.Relay;

/// <summary>
/// Durable sessions with the relay: a subscription of a durable session is a durable queue of its own
/// in RabbitMQ (named from the session and subscription ids, with x-expires), so what is published while
/// the client is away waits there and is delivered when it resumes, on this node or another.
/// </summary>
[TestFixture]
public sealed class RelayDurableTests
{
    private RabbitMqServer _server = null!;

    [OneTimeSetUp]
    public async Task StartServer() => _server = await RabbitMqServer.GetSharedAsync();

    [Test]
    public async Task A_dropped_client_resumes_and_gets_every_missed_message_once_in_order()
    {
        var topic = $"/topic/{Unique()}.prices.eur";
        await using var harness = await StartAsync(_server, durable: true);
        var (first, connected) = await harness.OpenConnectedAsync("1.2", "guest");
        await first.SubscribeAndWaitAsync("prices", topic);
        var publisher = await harness.OpenConnectedAsync();
        await publisher.PublishAsync(topic, "m0");
        Assert.That((await first.ReceiveAsync()).BodyText, Is.EqualTo("m0"));
        await first.DisposeAsync(); // no DISCONNECT: the connection just drops
        await harness.WaitSessionGoneAsync(connected["session"]!);

        for (var i = 1; i <= 100; i++)
        {
            await publisher.PublishAsync(topic, $"m{i}");
        }

        await publisher.PublishConfirmedAsync(topic, "m101");
        var (resumed, again) = await harness.OpenConnectedAsync("1.2", "guest", connected["session-token"]);

        Assert.That(again["resumed"], Is.EqualTo("true"));
        Assert.That(again["recovered"], Is.EqualTo("true"));
        for (var i = 1; i <= 101; i++)
        {
            var message = await resumed.ReceiveAsync();
            Assert.That(message.BodyText, Is.EqualTo($"m{i}"));
            Assert.That(message["subscription"], Is.EqualTo("prices"));
        }

        Assert.That(await resumed.TryReceiveAsync(TimeSpan.FromMilliseconds(300)), Is.Null, "nothing twice");
    }

    [Test]
    public async Task A_session_resumes_on_another_node_with_its_missed_messages()
    {
        var topic = $"/topic/{Unique()}.orders";
        var store = new InMemorySessionStore();
        await using var nodeA = await StartAsync(_server, durable: true, services: s => s.AddSingleton(store));
        await using var nodeB = await StartAsync(_server, durable: true, services: s => s.AddSingleton(store));
        var (first, connected) = await nodeA.OpenConnectedAsync("1.2", "guest");
        await first.SubscribeAndWaitAsync("orders", topic, "client-individual");
        await first.DisposeAsync();
        await nodeA.WaitSessionGoneAsync(connected["session"]!);
        await Eventually.That(async () => (await store.FindByTokenHashAsync(StompSession.HashToken(connected["session-token"]!)))?.Subscriptions.Count == 1,
            "node A's write-behind stored the subscription", RelayTesting.Patience);

        var publisher = await nodeA.OpenConnectedAsync();
        for (var i = 1; i <= 50; i++)
        {
            await publisher.PublishAsync(topic, $"o{i}");
        }

        await publisher.PublishConfirmedAsync(topic, "o51");
        var (resumed, again) = await nodeB.OpenConnectedAsync("1.2", "guest", connected["session-token"]);

        Assert.That(again["resumed"], Is.EqualTo("true"));
        Assert.That(again["recovered"], Is.EqualTo("true"), "the session's queue held everything, whichever node reads it");
        ReceivedFrame last = null!;
        for (var i = 1; i <= 51; i++)
        {
            last = await resumed.ReceiveAsync();
            Assert.That(last.BodyText, Is.EqualTo($"o{i}"));
        }

        await resumed.SendFrameAsync(StompCommand.Ack, ("id", last["ack"]!), ("receipt", "acked"));
        await resumed.ExpectReceiptAsync("acked");
        Assert.That(await resumed.TryReceiveAsync(TimeSpan.FromMilliseconds(300)), Is.Null);
    }

    // The chaos tool's relay finding: a resume on node B while node A still holds the old connection. B's consumer
    // waits behind A's (single active consumer); when A lets go, B must get A's unacknowledged deliveries first,
    // then the newer messages that waited in the queue, not the other way round.
    [Test]
    public async Task A_resume_on_another_node_while_the_old_connection_holds_deliveries_gets_them_first_in_order()
    {
        var topic = $"/topic/{Unique()}.handover";
        var store = new InMemorySessionStore();
        await using var nodeA = await StartAsync(_server, durable: true, services: s => s.AddSingleton(store));
        await using var nodeB = await StartAsync(_server, durable: true, services: s => s.AddSingleton(store));
        var (first, connected) = await nodeA.OpenConnectedAsync("1.2", "guest");
        await first.SendFrameAsync(StompCommand.Subscribe, ("id", "h"), ("destination", topic), ("ack", "client-individual"), ("prefetch-count", "3"), ("receipt", "s"));
        await first.ExpectReceiptAsync("s");
        await Eventually.That(async () => (await store.FindByTokenHashAsync(StompSession.HashToken(connected["session-token"]!)))?.Subscriptions.Count == 1,
            "node A's write-behind stored the subscription", RelayTesting.Patience);
        var publisher = await nodeA.OpenConnectedAsync();
        for (var i = 1; i <= 3; i++)
        {
            await publisher.PublishConfirmedAsync(topic, $"h{i}");
        }

        for (var i = 1; i <= 3; i++)
        {
            Assert.That((await first.ReceiveAsync()).BodyText, Is.EqualTo($"h{i}"), "held by the old connection, not acknowledged");
        }

        // Node A's connection is not noticed gone yet: B resumes, and its consumer waits as the next one.
        var (resumed, again) = await nodeB.OpenConnectedAsync("1.2", "guest", connected["session-token"]);
        Assert.That(again["recovered"], Is.EqualTo("true"));
        for (var i = 4; i <= 6; i++)
        {
            await publisher.PublishConfirmedAsync(topic, $"h{i}"); // beyond A's prefetch: they wait in the queue
        }

        await first.DisposeAsync();

        var bodies = new List<string>();
        for (var i = 1; i <= 6; i++)
        {
            var message = await resumed.ReceiveAsync();
            bodies.Add(message.BodyText);
            Assert.That(message["redelivered"], Is.EqualTo(i <= 3 ? "true" : null), $"h{i} redelivered or not");
            await resumed.SendFrameAsync(StompCommand.Ack, ("id", message["ack"]!));
        }

        Assert.That(bodies, Is.EqualTo(new[] { "h1", "h2", "h3", "h4", "h5", "h6" }));
    }

    [Test]
    public async Task Unacknowledged_messages_come_again_after_a_resume()
    {
        var topic = $"/topic/{Unique()}.jobs";
        await using var harness = await StartAsync(_server, durable: true);
        var (first, connected) = await harness.OpenConnectedAsync("1.2", "guest");
        await first.SubscribeAndWaitAsync("jobs", topic, "client-individual");
        var publisher = await harness.OpenConnectedAsync();
        for (var i = 1; i <= 3; i++)
        {
            await publisher.PublishAsync(topic, $"j{i}");
        }

        var received = new[] { await first.ReceiveAsync(), await first.ReceiveAsync(), await first.ReceiveAsync() };
        await first.SendFrameAsync(StompCommand.Ack, ("id", received[1]["ack"]!), ("receipt", "acked"));
        await first.ExpectReceiptAsync("acked");
        await first.DisposeAsync();
        await harness.WaitSessionGoneAsync(connected["session"]!);
        await publisher.PublishConfirmedAsync(topic, "j4");

        var (resumed, again) = await harness.OpenConnectedAsync("1.2", "guest", connected["session-token"]);

        Assert.That(again["recovered"], Is.EqualTo("true"));
        var redelivered = new[] { await resumed.ReceiveAsync(), await resumed.ReceiveAsync(), await resumed.ReceiveAsync() };
        Assert.That(redelivered.Select(m => m.BodyText), Is.EqualTo(new[] { "j1", "j3", "j4" }));
        Assert.That(redelivered[0]["message-id"], Is.EqualTo(received[0]["message-id"]));
    }

    [Test]
    public async Task A_resubscribe_with_the_restored_id_attaches_without_duplicates()
    {
        var topic = $"/topic/{Unique()}.chat";
        await using var harness = await StartAsync(_server, durable: true);
        var (first, connected) = await harness.OpenConnectedAsync("1.2", "guest");
        await first.SubscribeAndWaitAsync("chat", topic);
        await first.DisposeAsync();
        await harness.WaitSessionGoneAsync(connected["session"]!);
        var publisher = await harness.OpenConnectedAsync();
        await publisher.PublishConfirmedAsync(topic, "while away");

        var (resumed, _) = await harness.OpenConnectedAsync("1.2", "guest", connected["session-token"]);
        await resumed.SubscribeAsync("chat", topic, receipt: "again"); // as stomp.js apps do in onConnect
        await publisher.PublishConfirmedAsync(topic, "after");

        var frames = new List<ReceivedFrame>();
        while (frames.Count(f => f.Command == StompCommand.Message) < 2)
        {
            frames.Add(await resumed.ReceiveAsync());
        }

        Assert.That(frames.Where(f => f.Command == StompCommand.Message).Select(f => f.BodyText), Is.EqualTo(new[] { "while away", "after" }));
        Assert.That(await resumed.TryReceiveAsync(TimeSpan.FromMilliseconds(300)) is { Command: StompCommand.Message }, Is.False, "nothing twice");
    }

    [Test]
    public async Task UNSUBSCRIBE_and_DISCONNECT_delete_the_queue_a_drop_keeps_it()
    {
        var p = Unique();
        await using var harness = await StartAsync(_server, durable: true);
        var prefix = harness.Services.GetRequiredService<IOptions<RabbitMqRelayOptions>>().Value.QueuePrefix;
        var (client, connected) = await harness.OpenConnectedAsync("1.2", "guest");
        var session = connected["session"]!;
        await client.SubscribeAndWaitAsync("unsubscribed", $"/topic/{p}.a");
        await client.SubscribeAndWaitAsync("disconnected", $"/topic/{p}.b");
        var (dropper, dropped) = await harness.OpenConnectedAsync("1.2", "guest");
        await dropper.SubscribeAndWaitAsync("dropped", $"/topic/{p}.c");
        Assert.That(await QueueExistsAsync(_server, RelayDestinations.DurableQueueName(prefix, session, "unsubscribed")), Is.True);

        await client.SendFrameAsync(StompCommand.Unsubscribe, ("id", "unsubscribed"), ("receipt", "u"));
        await client.ExpectReceiptAsync("u");
        await Eventually.That(async () => !await QueueExistsAsync(_server, RelayDestinations.DurableQueueName(prefix, session, "unsubscribed")), "UNSUBSCRIBE deleted the queue", RelayTesting.Patience);
        await client.SendFrameAsync(StompCommand.Disconnect, ("receipt", "bye"));
        await client.ExpectReceiptAsync("bye");
        await Eventually.That(async () => !await QueueExistsAsync(_server, RelayDestinations.DurableQueueName(prefix, session, "disconnected")), "DISCONNECT deleted the queue", RelayTesting.Patience);
        await dropper.DisposeAsync();
        await harness.WaitSessionGoneAsync(dropped["session"]!);

        Assert.That(await QueueExistsAsync(_server, RelayDestinations.DurableQueueName(prefix, dropped["session"]!, "dropped")), Is.True, "kept for a resume");
    }

    [Test]
    public async Task A_resume_whose_queue_is_gone_says_recovered_false_and_still_delivers()
    {
        var topic = $"/topic/{Unique()}.gone";
        await using var harness = await StartAsync(_server, durable: true);
        var prefix = harness.Services.GetRequiredService<IOptions<RabbitMqRelayOptions>>().Value.QueuePrefix;
        var (first, connected) = await harness.OpenConnectedAsync("1.2", "guest");
        await first.SubscribeAndWaitAsync("s", topic);
        await first.DisposeAsync();
        await harness.WaitSessionGoneAsync(connected["session"]!);

        // The queue expired (x-expires) or an operator deleted it.
        var (connection, channel) = await OpenAmqpAsync(_server);
        await using (connection)
        {
            await channel.QueueDeleteAsync(RelayDestinations.DurableQueueName(prefix, connected["session"]!, "s"), ifUnused: false, ifEmpty: false);
        }

        var (resumed, again) = await harness.OpenConnectedAsync("1.2", "guest", connected["session-token"]);
        var publisher = await harness.OpenConnectedAsync();
        await publisher.PublishConfirmedAsync(topic, "new");

        Assert.That(again["resumed"], Is.EqualTo("true"));
        Assert.That(again["recovered"], Is.EqualTo("false"));
        Assert.That((await resumed.ReceiveAsync()).BodyText, Is.EqualTo("new"));
    }

    // Its queue dropped its oldest while the client was away (x-max-length, drop-head): the resume cannot say recovered.
    [Test]
    public async Task A_resume_whose_queue_reached_its_length_limit_says_recovered_false_and_gets_the_newest()
    {
        var topic = $"/topic/{Unique()}.full";
        await using var harness = await StartAsync(_server, durable: true, configure: o => o.MaxQueueLength = 3);
        var (first, connected) = await harness.OpenConnectedAsync("1.2", "guest");
        await first.SubscribeAndWaitAsync("s", topic);
        await first.DisposeAsync();
        await harness.WaitSessionGoneAsync(connected["session"]!);
        var publisher = await harness.OpenConnectedAsync();
        for (var i = 1; i <= 5; i++)
        {
            await publisher.PublishConfirmedAsync(topic, $"f{i}");
        }

        var (resumed, again) = await harness.OpenConnectedAsync("1.2", "guest", connected["session-token"]);

        Assert.That(again["resumed"], Is.EqualTo("true"));
        Assert.That(again["recovered"], Is.EqualTo("false"), "f1 and f2 were dropped");
        var bodies = new[] { (await resumed.ReceiveAsync()).BodyText, (await resumed.ReceiveAsync()).BodyText, (await resumed.ReceiveAsync()).BodyText };
        Assert.That(bodies, Is.EqualTo(new[] { "f3", "f4", "f5" }));
    }

    [Test]
    public async Task A_durable_queue_expires_after_the_session_TTL()
    {
        var p = Unique();
        await using var harness = await StartAsync(_server, durable: true, relay: o => o.DurableQueueExpiry = TimeSpan.FromMilliseconds(500));
        var prefix = harness.Services.GetRequiredService<IOptions<RabbitMqRelayOptions>>().Value.QueuePrefix;
        var (client, connected) = await harness.OpenConnectedAsync("1.2", "guest");
        await client.SubscribeAndWaitAsync("s", $"/topic/{p}");
        var name = RelayDestinations.DurableQueueName(prefix, connected["session"]!, "s");
        Assert.That(await QueueExistsAsync(_server, name), Is.True);
        Assert.That(await QueueExistsAsync(_server, RelayDestinations.DropsQueueName(name)), Is.True);

        await client.DisposeAsync();

        // A passive declare would renew the queue's lease, so look from the side (rabbitmqctl); RabbitMQ
        // checks expiry on its own timer, hence a bounded wait, not a timing assertion.
        // Its drops queue too (its name starts with the queue's), half as late again.
        await Eventually.That(async () => !(await _server.CtlAsync("list_queues", "-q", "name")).Contains(name, StringComparison.Ordinal), "the unused queue and its drops queue expired", RelayTesting.Patience);
    }
}
