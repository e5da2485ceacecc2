using Broker.Protocol;
using Broker.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace Broker.Tests.Limits;

/// <summary>
/// Issue 11's limits on destinations, topics, transactions, queue expiry and poison messages, over real sockets:
/// the client past a limit gets an ERROR naming it, and another client's round trip still works meanwhile.
/// </summary>
[TestFixture]
public sealed class ResourceLimitTests
{
    [Test]
    public async Task A_destination_longer_than_max_destination_length_gets_an_error_on_send_and_subscribe()
    {
        await using var server = await TestServer.StartAsync(o => o.MaxDestinationLength = 100);
        var tooLong = new string('a', 101 - "/queue/".Length);

        await using (var sender = await ConnectAsync(server))
        {
            await sender.PublishAsync("/queue/" + tooLong, "x");
            await ExpectErrorAsync(sender, "max-destination-length");
        }

        await using (var subscriber = await ConnectAsync(server))
        {
            await subscriber.SubscribeAsync("s", "/topic/" + tooLong);
            await ExpectErrorAsync(subscriber, "max-destination-length");
        }

        // At the limit is fine.
        await using var fits = await ConnectAsync(server);
        await fits.PublishAsync("/queue/" + tooLong[1..], "x", ("receipt", "fits"));
        await fits.ExpectReceiptAsync("fits");
        await AssertRoundTripAsync(server);
    }

    [Test]
    public async Task A_topic_of_more_words_than_max_destination_words_gets_an_error_on_send_and_subscribe()
    {
        await using var server = await TestServer.StartAsync(o => o.MaxDestinationWords = 8);
        var nine = "/topic/" + string.Join('.', Enumerable.Range(0, 9).Select(i => "w" + i));
        var eight = "/topic/" + string.Join('.', Enumerable.Range(0, 8).Select(i => "w" + i));

        await using (var subscriber = await ConnectAsync(server))
        {
            await subscriber.SubscribeAsync("s", "/topic/#." + string.Join('.', Enumerable.Range(0, 8).Select(_ => "*")));
            await ExpectErrorAsync(subscriber, "max-destination-words");
        }

        await using (var sender = await ConnectAsync(server))
        {
            await sender.PublishAsync(nine, "x");
            await ExpectErrorAsync(sender, "max-destination-words");
        }

        await using var fits = await ConnectAsync(server);
        await fits.SubscribeAndWaitAsync("s", eight);
        await fits.PublishAsync(eight, "eight");
        Assert.That((await fits.ReceiveAsync()).BodyText, Is.EqualTo("eight"));
        await AssertRoundTripAsync(server);
    }

    [Test]
    public async Task Sends_to_ever_new_topics_nobody_subscribes_to_make_no_destination()
    {
        // If each SEND made a topic (the 470 MiB of issue 11), the 20,000 below would pass max-destinations.
        await using var server = await TestServer.StartAsync(o => o.MaxDestinations = 1000);
        await using var attacker = await ConnectAsync(server);
        var body = new string('x', 1024);
        for (var i = 0; i < 20_000; i++)
        {
            await attacker.PublishAsync($"/topic/flood.{i}", body);
        }

        await attacker.PublishAsync("/topic/flood.last", body, ("receipt", "done"));
        await attacker.ExpectReceiptAsync("done");
        var broker = (InProcessBroker)server.Services.GetRequiredService<IMessageBroker>();
        Assert.That(broker.TopicCount, Is.Zero, "no topic is held for keys nobody subscribes to");
        await AssertRoundTripAsync(server);
    }

    [Test]
    public async Task A_send_or_subscribe_that_would_make_a_destination_past_max_destinations_gets_an_error()
    {
        await using var server = await TestServer.StartAsync(o => o.MaxDestinations = 3);
        await using var holder = await ConnectAsync(server);
        await holder.SubscribeAndWaitAsync("a", "/queue/md-a");
        await holder.SubscribeAndWaitAsync("b", "/topic/md-b");
        await holder.PublishAsync("/queue/md-c", "c", ("receipt", "c"));
        await holder.ExpectReceiptAsync("c");

        await using (var sender = await ConnectAsync(server))
        {
            await sender.PublishAsync("/queue/md-d", "d");
            await ExpectErrorAsync(sender, "max-destinations");
        }

        await using (var subscriber = await ConnectAsync(server))
        {
            await subscriber.SubscribeAsync("e", "/topic/md-e");
            await ExpectErrorAsync(subscriber, "max-destinations");
        }

        // Existing destinations still work, for everyone.
        await using var other = await ConnectAsync(server);
        await other.PublishAsync("/topic/md-b", "to b", ("receipt", "b"));
        await other.ExpectReceiptAsync("b");
        Assert.That((await holder.ReceiveAsync()).BodyText, Is.EqualTo("to b"));
    }

    [Test]
    public async Task Frames_held_in_open_transactions_past_max_transaction_bytes_get_an_error()
    {
        await using var server = await TestServer.StartAsync(o => o.MaxTransactionBytes = 10_000);
        await using var client = await ConnectAsync(server);
        var body = new string('x', 4000);
        await client.SendFrameAsync(StompCommand.Begin, ("transaction", "t1"));
        await client.SendFrameAsync(StompCommand.Begin, ("transaction", "t2"));
        await client.PublishAsync("/topic/tx-bytes", body, ("transaction", "t1"));
        await client.PublishAsync("/topic/tx-bytes", body, ("transaction", "t2"), ("receipt", "two"));
        await client.ExpectReceiptAsync("two");

        // Both transactions count: the third 4,000 bytes are past 10,000 on this connection.
        await client.PublishAsync("/topic/tx-bytes", body, ("transaction", "t1"));
        await ExpectErrorAsync(client, "max-transaction-bytes");
        await AssertRoundTripAsync(server);
    }

    [Test]
    public async Task A_committed_or_aborted_transaction_gives_its_bytes_back()
    {
        await using var server = await TestServer.StartAsync(o => o.MaxTransactionBytes = 10_000);
        await using var client = await ConnectAsync(server);
        var body = new string('x', 4000);
        for (var i = 0; i < 10; i++)
        {
            await client.SendFrameAsync(StompCommand.Begin, ("transaction", "t"));
            await client.PublishAsync("/topic/tx-bytes", body, ("transaction", "t"));
            await client.PublishAsync("/topic/tx-bytes", body, ("transaction", "t"));
            await client.SendFrameAsync(i % 2 == 0 ? StompCommand.Commit : StompCommand.Abort, ("transaction", "t"), ("receipt", $"r{i}"));
            await client.ExpectReceiptAsync($"r{i}");
        }
    }

    [Test]
    public async Task A_queue_with_no_consumer_and_no_activity_for_queue_expiry_is_deleted_with_its_messages()
    {
        var time = new FakeTimeProvider();
        await using var server = await TestServer.StartAsync(o =>
        {
            o.QueueExpiry = TimeSpan.FromHours(24);
            o.HeartbeatSend = o.HeartbeatReceive = TimeSpan.Zero;
        }, services: s => s.AddSingleton<TimeProvider>(time));
        var broker = (InProcessBroker)server.Services.GetRequiredService<IMessageBroker>();
        await using var producer = await ConnectAsync(server);
        await producer.PublishAsync("/queue/expiring", "old", ("receipt", "old"));
        await producer.ExpectReceiptAsync("old");
        time.Advance(TimeSpan.FromHours(12));
        await producer.PublishAsync("/queue/kept", "kept", ("receipt", "kept"));
        await producer.ExpectReceiptAsync("kept");

        time.Advance(TimeSpan.FromHours(12) + TimeSpan.FromMinutes(2));
        Assert.That(broker.QueueCount, Is.EqualTo(1), "only the queue idle for 24 h went");

        await using var consumer = await ConnectAsync(server);
        await consumer.SubscribeAndWaitAsync("e", "/queue/expiring");
        await producer.PublishAsync("/queue/expiring", "new", ("receipt", "new"));
        await producer.ExpectReceiptAsync("new");
        Assert.That((await consumer.ReceiveAsync()).BodyText, Is.EqualTo("new"), "the expired message is gone; a new one arrives");
        await consumer.SubscribeAsync("k", "/queue/kept");
        Assert.That((await consumer.ReceiveAsync()).BodyText, Is.EqualTo("kept"), "the queue with recent activity kept its message");
        await AssertRoundTripAsync(server);
    }

    [Test]
    public async Task A_queue_with_a_consumer_does_not_expire()
    {
        var time = new FakeTimeProvider();
        await using var server = await TestServer.StartAsync(o =>
        {
            o.QueueExpiry = TimeSpan.FromHours(1);
            o.HeartbeatSend = o.HeartbeatReceive = TimeSpan.Zero;
        }, services: s => s.AddSingleton<TimeProvider>(time));
        await using var consumer = await ConnectAsync(server);
        await consumer.SubscribeAndWaitAsync("q", "/queue/watched", "client");
        time.Advance(TimeSpan.FromHours(3));
        await using var producer = await ConnectAsync(server);
        await producer.PublishAsync("/queue/watched", "still here");
        Assert.That((await consumer.ReceiveAsync()).BodyText, Is.EqualTo("still here"));
    }

    [Test]
    public async Task A_user_queue_goes_when_its_session_disconnects()
    {
        await using var server = await TestServer.StartAsync();
        var broker = (InProcessBroker)server.Services.GetRequiredService<IMessageBroker>();
        var user = await ConnectAsync(server);
        await user.SubscribeAndWaitAsync("inbox", "/user/queue/inbox");
        Assert.That(broker.QueueCount, Is.EqualTo(1));
        await user.SendFrameAsync(StompCommand.Disconnect, ("receipt", "bye"));
        await user.ExpectReceiptAsync("bye");
        await user.DisposeAsync();
        await Eventually.That(() => broker.QueueCount == 0, "the session's /user/ queue deleted");
    }

    [Test]
    public async Task A_nacked_queue_message_is_marked_redelivered_and_moves_to_the_dead_letter_queue_after_max_redeliveries()
    {
        await using var server = await TestServer.StartAsync(o => o.MaxRedeliveries = 2);
        await using var consumer = await ConnectAsync(server);
        await consumer.SubscribeAndWaitAsync("q", "/queue/poison", "client-individual");
        await using var dead = await ConnectAsync(server);
        await dead.SubscribeAndWaitAsync("d", "/queue/poison.dlq");
        await using var producer = await ConnectAsync(server);
        await producer.PublishAsync("/queue/poison", "bad", ("x-id", "1"));

        var first = await consumer.ReceiveAsync();
        Assert.That(first["redelivered"], Is.Null, "a first delivery is not marked");
        await consumer.SendFrameAsync(StompCommand.Nack, ("id", first["ack"]!));
        for (var i = 0; i < 2; i++)
        {
            var again = await consumer.ReceiveAsync();
            Assert.That(again.BodyText, Is.EqualTo("bad"));
            Assert.That(again["redelivered"], Is.EqualTo("true"));
            await consumer.SendFrameAsync(StompCommand.Nack, ("id", again["ack"]!));
        }

        var letter = await dead.ReceiveAsync();
        Assert.That(letter.BodyText, Is.EqualTo("bad"));
        Assert.That(letter["destination"], Is.EqualTo("/queue/poison.dlq"));
        Assert.That(letter["original-destination"], Is.EqualTo("/queue/poison"));
        Assert.That(letter["x-id"], Is.EqualTo("1"));
        Assert.That(await consumer.TryReceiveAsync(TimeSpan.FromMilliseconds(200)), Is.Null, "no third redelivery");
        await AssertRoundTripAsync(server);
    }

    [Test]
    public async Task A_message_whose_consumers_keep_leaving_is_dead_lettered_too()
    {
        await using var server = await TestServer.StartAsync(o => o.MaxRedeliveries = 1);
        await using var dead = await ConnectAsync(server);
        await dead.SubscribeAndWaitAsync("d", "/queue/crasher.dlq");
        await using var producer = await ConnectAsync(server);
        await producer.PublishAsync("/queue/crasher", "crash", ("receipt", "p"));
        await producer.ExpectReceiptAsync("p");
        for (var i = 0; i < 2; i++)
        {
            var consumer = await ConnectAsync(server);
            await consumer.SubscribeAsync("q", "/queue/crasher", "client");
            Assert.That((await consumer.ReceiveAsync()).BodyText, Is.EqualTo("crash"));
            await consumer.SendFrameAsync(StompCommand.Disconnect);
            await consumer.DisposeAsync();
        }

        Assert.That((await dead.ReceiveAsync()).BodyText, Is.EqualTo("crash"));
    }

    internal static async Task<StompTestClient> ConnectAsync(TestServer server)
    {
        var client = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await client.ConnectAsync();
        return client;
    }

    /// <summary>Receives up to the ERROR (skipping what came before it) and checks that it names <paramref name="limit"/>; the connection then closes.</summary>
    internal static async Task ExpectErrorAsync(StompTestClient client, string limit)
    {
        while (true)
        {
            var frame = await client.ReceiveAsync();
            if (frame.Command == StompCommand.Error)
            {
                Assert.That(frame["message"], Does.Contain(limit));
                Assert.That(await client.WaitClosedAsync(), Is.True, "the connection closes after the ERROR");
                return;
            }
        }
    }

    /// <summary>A fresh client subscribes, publishes and gets its message: the server still serves everyone else.</summary>
    internal static async Task AssertRoundTripAsync(TestServer server)
    {
        await using var bystander = await ConnectAsync(server);
        var topic = "/topic/round-trip-" + Guid.NewGuid().ToString("N")[..8];
        await bystander.SubscribeAndWaitAsync("rt", topic);
        await bystander.PublishAsync(topic, "ping", ("receipt", "rt"));
        var frames = new[] { await bystander.ReceiveAsync(), await bystander.ReceiveAsync() };
        Assert.That(frames.Select(f => f.Command), Is.EquivalentTo(new[] { StompCommand.Message, StompCommand.Receipt }));
        Assert.That(frames.Single(f => f.Command == StompCommand.Message).BodyText, Is.EqualTo("ping"));
    }
}
