using System.Text;
using Broker.Protocol;
using NUnit.Framework;

namespace Broker.Tests.Sessions;

[TestFixture]
public sealed class MessagingTests
{
    [Test]
    public async Task A_topic_message_reaches_every_subscriber_with_its_headers()
    {
        await using var harness = new SessionHarness();
        var a = await harness.OpenConnectedAsync();
        var b = await harness.OpenConnectedAsync();
        await a.SubscribeAndWaitAsync("s1", "/topic/prices.eur");
        await b.SubscribeAndWaitAsync("s2", "/topic/prices.eur");
        var publisher = await harness.OpenConnectedAsync();

        await publisher.PublishAsync("/topic/prices.eur", "1.08", ("content-type", "text/plain"), ("x-trace", "  spaced value  "), ("x-trace", "second"), ("x-trace", "third"));

        foreach (var (client, id) in new[] { (a, "s1"), (b, "s2") })
        {
            var message = await client.ReceiveAsync();
            Assert.That(message.Command, Is.EqualTo(StompCommand.Message));
            Assert.That(message["destination"], Is.EqualTo("/topic/prices.eur"));
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

    [TestCase("/topic/a.*.c", "/topic/a.b.c", true)]
    [TestCase("/topic/a.*.c", "/topic/a.b.b.c", false)]
    [TestCase("/topic/a.#", "/topic/a", true)]
    [TestCase("/topic/a.#", "/topic/a.b.c", true)]
    [TestCase("/topic/#.c", "/topic/a.b.c", true)]
    [TestCase("/topic/a.#.c", "/topic/a.c", true)]
    [TestCase("/topic/*", "/topic/a.b", false)]
    [TestCase("/topic/a.b", "/topic/a.b.c", false)]
    public async Task Wildcards_match_as_in_a_topic_exchange(string pattern, string destination, bool delivered)
    {
        await using var harness = new SessionHarness();
        var subscriber = await harness.OpenConnectedAsync();
        await subscriber.SubscribeAndWaitAsync("w", pattern);

        await subscriber.PublishAsync(destination, "x", ("receipt", "sent"));
        var first = await subscriber.ReceiveAsync();

        // In-order handling: a matching MESSAGE is queued before the SEND's RECEIPT.
        Assert.That(first.Command, Is.EqualTo(delivered ? StompCommand.Message : StompCommand.Receipt));
        if (delivered)
        {
            Assert.That(first["destination"], Is.EqualTo(destination));
        }
    }

    [Test]
    public async Task Unsubscribe_stops_delivery()
    {
        await using var harness = new SessionHarness();
        var client = await harness.OpenConnectedAsync();
        await client.SubscribeAndWaitAsync("s", "/topic/t");
        await client.SendFrameAsync(StompCommand.Unsubscribe, ("id", "s"), ("receipt", "u"));
        await client.ExpectReceiptAsync("u");

        await client.PublishAsync("/topic/t", "x", ("receipt", "sent"));

        await client.ExpectReceiptAsync("sent");
    }

    [Test]
    public async Task Subscription_ids_are_required_and_unique()
    {
        await using var harness = new SessionHarness();
        var missing = await harness.OpenConnectedAsync();
        await missing.SendFrameAsync(StompCommand.Subscribe, ("destination", "/topic/t"));
        var duplicate = await harness.OpenConnectedAsync();
        await duplicate.SubscribeAndWaitAsync("s", "/topic/t");
        await duplicate.SubscribeAsync("s", "/topic/u");

        Assert.That((await missing.ReceiveAsync())["message"], Does.Contain("'id'"));
        Assert.That((await duplicate.ReceiveAsync())["message"], Does.Contain("already in use"));
    }

    [Test]
    public async Task Queue_messages_go_round_robin_to_competing_consumers()
    {
        await using var harness = new SessionHarness();
        var a = await harness.OpenConnectedAsync();
        var b = await harness.OpenConnectedAsync();
        await a.SubscribeAndWaitAsync("q", "/queue/work");
        await b.SubscribeAndWaitAsync("q", "/queue/work");
        var producer = await harness.OpenConnectedAsync();

        for (var i = 0; i < 6; i++)
        {
            await producer.PublishAsync("/queue/work", $"job-{i}");
        }

        var gotA = new[] { await a.ReceiveAsync(), await a.ReceiveAsync(), await a.ReceiveAsync() }.Select(m => m.BodyText);
        var gotB = new[] { await b.ReceiveAsync(), await b.ReceiveAsync(), await b.ReceiveAsync() }.Select(m => m.BodyText);

        Assert.That(gotA.Concat(gotB), Is.EquivalentTo(Enumerable.Range(0, 6).Select(i => $"job-{i}")));
        Assert.That(await a.TryReceiveAsync(TimeSpan.FromMilliseconds(100)), Is.Null);
    }

    [Test]
    public async Task Queue_messages_wait_for_a_consumer()
    {
        await using var harness = new SessionHarness();
        var producer = await harness.OpenConnectedAsync();
        await producer.PublishAsync("/queue/later", "kept", ("receipt", "r"));
        await producer.ExpectReceiptAsync("r");

        var consumer = await harness.OpenConnectedAsync();
        await consumer.SubscribeAsync("q", "/queue/later");

        Assert.That((await consumer.ReceiveAsync()).BodyText, Is.EqualTo("kept"));
    }

    [Test]
    public async Task A_NACKed_queue_message_is_redelivered_to_another_consumer()
    {
        await using var harness = new SessionHarness();
        var a = await harness.OpenConnectedAsync();
        await a.SubscribeAndWaitAsync("q", "/queue/nack", "client-individual");
        var b = await harness.OpenConnectedAsync();
        await b.SubscribeAndWaitAsync("q", "/queue/nack", "client-individual");
        var producer = await harness.OpenConnectedAsync();

        await producer.PublishAsync("/queue/nack", "only");
        var first = await a.ReceiveAsync();
        Assert.That(first["ack"], Is.Not.Empty);
        await a.SendFrameAsync(StompCommand.Nack, ("id", first["ack"]!));
        var second = await b.ReceiveAsync();
        await b.SendFrameAsync(StompCommand.Ack, ("id", second["ack"]!), ("receipt", "acked"));
        await b.ExpectReceiptAsync("acked");

        Assert.That(second.BodyText, Is.EqualTo("only"));
        Assert.That(second["message-id"], Is.EqualTo(first["message-id"]));
        Assert.That(await a.TryReceiveAsync(TimeSpan.FromMilliseconds(200)), Is.Null, "acked messages never come back");
    }

    [Test]
    public async Task Unacked_messages_of_a_consumer_that_leaves_go_to_another()
    {
        await using var harness = new SessionHarness();
        var leaver = await harness.OpenConnectedAsync();
        await leaver.SubscribeAndWaitAsync("q", "/queue/leave", "client-individual");
        var producer = await harness.OpenConnectedAsync();
        for (var i = 0; i < 3; i++)
        {
            await producer.PublishAsync("/queue/leave", $"m{i}");
        }

        var received = new[] { await leaver.ReceiveAsync(), await leaver.ReceiveAsync(), await leaver.ReceiveAsync() };
        await leaver.SendFrameAsync(StompCommand.Ack, ("id", received[1]["ack"]!), ("receipt", "one"));
        await leaver.ExpectReceiptAsync("one");
        await leaver.DisposeAsync();

        var stayer = await harness.OpenConnectedAsync();
        await stayer.SubscribeAsync("q", "/queue/leave", "client-individual");
        var redelivered = new[] { await stayer.ReceiveAsync(), await stayer.ReceiveAsync() }.Select(m => m.BodyText);

        Assert.That(redelivered, Is.EqualTo(new[] { "m0", "m2" }));
        Assert.That(await stayer.TryReceiveAsync(TimeSpan.FromMilliseconds(200)), Is.Null);
    }

    [Test]
    public async Task Client_mode_ACK_is_cumulative()
    {
        await using var harness = new SessionHarness();
        var consumer = await harness.OpenConnectedAsync();
        await consumer.SubscribeAndWaitAsync("q", "/queue/cumulative", "client");
        var producer = await harness.OpenConnectedAsync();
        for (var i = 0; i < 5; i++)
        {
            await producer.PublishAsync("/queue/cumulative", $"m{i}");
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
        await next.SubscribeAsync("q", "/queue/cumulative", "client");

        Assert.That((await next.ReceiveAsync()).BodyText, Is.EqualTo("m4"));
        Assert.That(await next.TryReceiveAsync(TimeSpan.FromMilliseconds(200)), Is.Null);
    }

    [Test]
    public async Task STOMP_1_1_ACK_names_message_id_and_subscription()
    {
        await using var harness = new SessionHarness();
        var consumer = await harness.OpenConnectedAsync("1.1");
        await consumer.SubscribeAndWaitAsync("q", "/queue/v11", "client-individual");
        var producer = await harness.OpenConnectedAsync();
        await producer.PublishAsync("/queue/v11", "a");
        await producer.PublishAsync("/queue/v11", "b");
        var a = await consumer.ReceiveAsync();
        var b = await consumer.ReceiveAsync();

        await consumer.SendFrameAsync(StompCommand.Ack, ("message-id", a["message-id"]!), ("subscription", "q"));
        await consumer.SendFrameAsync(StompCommand.Nack, ("message-id", b["message-id"]!), ("subscription", "q"));

        var again = await consumer.ReceiveAsync();
        Assert.That(a["ack"], Is.Null, "1.1 MESSAGE frames carry no ack header");
        Assert.That(again.BodyText, Is.EqualTo("b"));
    }

    [Test]
    public async Task An_ACK_for_an_unknown_message_is_an_error()
    {
        await using var harness = new SessionHarness();
        var client = await harness.OpenConnectedAsync();
        await client.SendFrameAsync(StompCommand.Ack, ("id", "12345"), ("receipt", "bad-ack"));

        var error = await client.ReceiveAsync();

        Assert.That(error.Command, Is.EqualTo(StompCommand.Error));
        Assert.That(error["receipt-id"], Is.EqualTo("bad-ack"));
        Assert.That(await client.WaitClosedAsync(), Is.True);
    }

    [Test]
    public async Task Binary_bodies_with_NULs_arrive_intact()
    {
        await using var harness = new SessionHarness();
        var client = await harness.OpenConnectedAsync();
        await client.SubscribeAndWaitAsync("s", "/topic/bin");
        var body = Enumerable.Range(0, 256).Select(i => (byte)i).ToArray();

        await client.SendFrameAsync(StompCommand.Send, [("destination", "/topic/bin"), ("content-type", "application/octet-stream")], body);

        Assert.That((await client.ReceiveAsync()).Body, Is.EqualTo(body));
    }

    [TestCase("1.2")]
    [TestCase("1.1")]
    public async Task Header_values_with_colons_and_newlines_round_trip(string version)
    {
        await using var harness = new SessionHarness();
        var client = await harness.OpenConnectedAsync(version);
        await client.SubscribeAndWaitAsync("id:with:colons", "/topic/a:b");

        await client.PublishAsync("/topic/a:b", "x", ("x-note", "line1\nline2 \\ c:d"));
        var message = await client.ReceiveAsync();

        Assert.That(message["destination"], Is.EqualTo("/topic/a:b"));
        Assert.That(message["subscription"], Is.EqualTo("id:with:colons"));
        Assert.That(message["x-note"], Is.EqualTo("line1\nline2 \\ c:d"));
    }

    [Test]
    public async Task Clients_cannot_forge_broker_headers()
    {
        await using var harness = new SessionHarness();
        var client = await harness.OpenConnectedAsync();
        await client.SubscribeAndWaitAsync("real", "/topic/forge");

        await client.PublishAsync("/topic/forge", "x", ("message-id", "forged"), ("subscription", "other"), ("ack", "1"));
        var message = await client.ReceiveAsync();

        Assert.That(message["subscription"], Is.EqualTo("real"));
        Assert.That(message["message-id"], Is.Not.EqualTo("forged"));
        Assert.That(message["ack"], Is.Null);
        Assert.That(message.HeaderList.Count(h => h.Key == "subscription"), Is.EqualTo(1));
    }

    [TestCase("/elsewhere/x")]
    [TestCase("/topic/")]
    [TestCase("/topic/a.*")]
    public async Task Sending_to_an_invalid_destination_is_an_error(string destination)
    {
        await using var harness = new SessionHarness();
        var client = await harness.OpenConnectedAsync();

        await client.PublishAsync(destination, "x");

        Assert.That((await client.ReceiveAsync()).Command, Is.EqualTo(StompCommand.Error));
    }

    [Test]
    public async Task A_bad_client_loses_nothing_for_the_others()
    {
        await using var harness = new SessionHarness();
        var good = await harness.OpenConnectedAsync();
        await good.SubscribeAndWaitAsync("s", "/topic/safe");
        var bad = await harness.OpenConnectedAsync();
        await bad.SendRawAsync("SEND\ndestination:/topic/safe\nbroken\\theader:x\n\nboom\0");
        Assert.That((await bad.ReceiveAsync()).Command, Is.EqualTo(StompCommand.Error));

        var publisher = await harness.OpenConnectedAsync();
        await publisher.PublishAsync("/topic/safe", "fine");

        Assert.That((await good.ReceiveAsync()).BodyText, Is.EqualTo("fine"));
    }

    [Test]
    public async Task Frames_split_at_every_byte_are_handled()
    {
        await using var harness = new SessionHarness();
        var client = harness.Open();
        var bytes = Encoding.UTF8.GetBytes("CONNECT\r\naccept-version:1.2\r\n\r\n\0\n\nSUBSCRIBE\nid:s\ndestination:/topic/split\nreceipt:r\n\n\0");
        foreach (var b in bytes)
        {
            await client.SendRawAsync([b]);
        }

        Assert.That((await client.ReceiveAsync()).Command, Is.EqualTo(StompCommand.Connected));
        await client.ExpectReceiptAsync("r");
    }
}
