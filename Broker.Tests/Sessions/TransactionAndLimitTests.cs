using Broker.Protocol;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace Broker.Tests.Sessions;

[TestFixture]
public sealed class TransactionAndLimitTests
{
    [Test]
    public async Task Commit_applies_sends_in_order_and_abort_discards()
    {
        await using var harness = new SessionHarness();
        var subscriber = await harness.OpenConnectedAsync();
        await subscriber.SubscribeAndWaitAsync("s", "/topic/tx");
        var client = await harness.OpenConnectedAsync();

        await client.SendFrameAsync(StompCommand.Begin, ("transaction", "keep"));
        await client.SendFrameAsync(StompCommand.Begin, ("transaction", "drop"));
        await client.PublishAsync("/topic/tx", "1", ("transaction", "keep"));
        await client.PublishAsync("/topic/tx", "dropped", ("transaction", "drop"));
        await client.PublishAsync("/topic/tx", "2", ("transaction", "keep"));
        await client.SendFrameAsync(StompCommand.Abort, ("transaction", "drop"));
        Assert.That(await subscriber.TryReceiveAsync(TimeSpan.FromMilliseconds(200)), Is.Null, "nothing before COMMIT");

        await client.SendFrameAsync(StompCommand.Commit, ("transaction", "keep"), ("receipt", "c"));
        await client.ExpectReceiptAsync("c");

        Assert.That((await subscriber.ReceiveAsync()).BodyText, Is.EqualTo("1"));
        Assert.That((await subscriber.ReceiveAsync()).BodyText, Is.EqualTo("2"));
        Assert.That(await subscriber.TryReceiveAsync(TimeSpan.FromMilliseconds(200)), Is.Null);
    }

    [Test]
    public async Task Acks_in_a_transaction_take_effect_on_commit()
    {
        await using var harness = new SessionHarness();
        var consumer = await harness.OpenConnectedAsync();
        await consumer.SubscribeAndWaitAsync("q", "/queue/txack", "client-individual");
        var producer = await harness.OpenConnectedAsync();
        await producer.PublishAsync("/queue/txack", "a");
        await producer.PublishAsync("/queue/txack", "b");
        var a = await consumer.ReceiveAsync();
        var b = await consumer.ReceiveAsync();

        await consumer.SendFrameAsync(StompCommand.Begin, ("transaction", "t1"));
        await consumer.SendFrameAsync(StompCommand.Ack, ("id", a["ack"]!), ("transaction", "t1"));
        await consumer.SendFrameAsync(StompCommand.Commit, ("transaction", "t1"));
        await consumer.SendFrameAsync(StompCommand.Begin, ("transaction", "t2"));
        await consumer.SendFrameAsync(StompCommand.Ack, ("id", b["ack"]!), ("transaction", "t2"));
        await consumer.SendFrameAsync(StompCommand.Abort, ("transaction", "t2"), ("receipt", "aborted"));
        await consumer.ExpectReceiptAsync("aborted");
        await consumer.DisposeAsync();

        var next = await harness.OpenConnectedAsync();
        await next.SubscribeAsync("q", "/queue/txack", "client-individual");

        Assert.That((await next.ReceiveAsync()).BodyText, Is.EqualTo("b"), "the aborted ACK did not count");
        Assert.That(await next.TryReceiveAsync(TimeSpan.FromMilliseconds(200)), Is.Null, "the committed ACK did");
    }

    [Test]
    public async Task A_commit_whose_ack_is_no_longer_pending_applies_nothing()
    {
        await using var harness = new SessionHarness();
        var subscriber = await harness.OpenConnectedAsync();
        await subscriber.SubscribeAndWaitAsync("watch", "/topic/commit-guard");
        var consumer = await harness.OpenConnectedAsync();
        await consumer.SubscribeAndWaitAsync("q", "/queue/commit-guard", "client");
        var producer = await harness.OpenConnectedAsync();
        await producer.PublishAsync("/queue/commit-guard", "a");
        await producer.PublishAsync("/queue/commit-guard", "b");
        var a = await consumer.ReceiveAsync();
        var b = await consumer.ReceiveAsync();

        await consumer.SendFrameAsync(StompCommand.Begin, ("transaction", "t"));
        await consumer.PublishAsync("/topic/commit-guard", "inside the transaction", ("transaction", "t"));
        await consumer.SendFrameAsync(StompCommand.Ack, ("id", a["ack"]!), ("transaction", "t"));
        await consumer.SendFrameAsync(StompCommand.Ack, ("id", b["ack"]!)); // cumulative: settles a too
        await consumer.SendFrameAsync(StompCommand.Commit, ("transaction", "t"));
        var error = await consumer.ReceiveAsync();

        Assert.That(error.Command, Is.EqualTo(StompCommand.Error));
        Assert.That(error["message"], Does.Contain("no longer pending"));
        Assert.That(await subscriber.TryReceiveAsync(TimeSpan.FromMilliseconds(200)), Is.Null, "the transaction's SEND was not applied");
    }

    [Test]
    public async Task An_open_transaction_is_aborted_when_the_connection_drops()
    {
        await using var harness = new SessionHarness();
        var subscriber = await harness.OpenConnectedAsync();
        await subscriber.SubscribeAndWaitAsync("s", "/topic/dropped-tx");
        var client = await harness.OpenConnectedAsync();
        await client.SendFrameAsync(StompCommand.Begin, ("transaction", "t"));
        await client.PublishAsync("/topic/dropped-tx", "never", ("transaction", "t"), ("receipt", "queued"));
        await client.ExpectReceiptAsync("queued");

        await client.DisposeAsync();

        Assert.That(await subscriber.TryReceiveAsync(TimeSpan.FromMilliseconds(300)), Is.Null);
    }

    [TestCase("COMMIT")]
    [TestCase("ABORT")]
    [TestCase("SEND")]
    public async Task Naming_an_unknown_transaction_is_an_error(string command)
    {
        await using var harness = new SessionHarness();
        var client = await harness.OpenConnectedAsync();

        await client.SendRawAsync($"{command}\ntransaction:nope\ndestination:/topic/x\nreceipt:r9\n\n\0");
        var error = await client.ReceiveAsync();

        Assert.That(error.Command, Is.EqualTo(StompCommand.Error));
        Assert.That(error["message"], Does.Contain("no open transaction"));
        Assert.That(error["receipt-id"], Is.EqualTo("r9"));
    }

    [Test]
    public async Task Disconnect_with_a_receipt_sends_it_then_closes()
    {
        await using var harness = new SessionHarness();
        var client = await harness.OpenConnectedAsync();

        await client.SendFrameAsync(StompCommand.Disconnect, ("receipt", "bye"));

        await client.ExpectReceiptAsync("bye");
        Assert.That(await client.WaitClosedAsync(), Is.True);
    }

    [Test]
    public async Task Every_client_frame_but_CONNECT_may_ask_for_a_receipt()
    {
        await using var harness = new SessionHarness();
        var client = await harness.OpenConnectedAsync();
        await client.SendFrameAsync(StompCommand.Subscribe, ("id", "s"), ("destination", "/queue/r"), ("ack", "client"), ("receipt", "1"));
        await client.SendFrameAsync(StompCommand.Send, [("destination", "/queue/r"), ("receipt", "2")], "x"u8.ToArray());
        await client.ExpectReceiptAsync("1");
        var message = await client.ReceiveAsync();
        await client.ExpectReceiptAsync("2");
        await client.SendFrameAsync(StompCommand.Ack, ("id", message["ack"]!), ("receipt", "3"));
        await client.SendFrameAsync(StompCommand.Begin, ("transaction", "t"), ("receipt", "4"));
        await client.SendFrameAsync(StompCommand.Abort, ("transaction", "t"), ("receipt", "5"));
        await client.SendFrameAsync(StompCommand.Unsubscribe, ("id", "s"), ("receipt", "6"));

        foreach (var id in new[] { "3", "4", "5", "6" })
        {
            await client.ExpectReceiptAsync(id);
        }

        Assert.That(message.BodyText, Is.EqualTo("x"));
    }

    [Test]
    public async Task Each_limit_is_named_in_the_error()
    {
        await using var harness = new SessionHarness(o =>
        {
            o.MaxFrameSize = 1024;
            o.MaxHeaders = 4;
            o.MaxHeaderLineLength = 100;
            o.MaxSubscriptionsPerConnection = 2;
            o.MaxTransactionSize = 2;
            o.MaxTransactionsPerConnection = 1;
        });

        async Task<string?> ErrorAfter(Func<StompTestClient, Task> act)
        {
            var client = await harness.OpenConnectedAsync();
            await act(client);
            var error = await client.ReceiveAsync();
            Assert.That(error.Command, Is.EqualTo(StompCommand.Error), error.ToString());
            Assert.That(await client.WaitClosedAsync(), Is.True);
            return error["message"];
        }

        Assert.That(await ErrorAfter(c => c.PublishAsync("/topic/big", new string('x', 2000))), Does.Contain("max-frame-size"));
        Assert.That(await ErrorAfter(c => c.PublishAsync("/topic/h", "x", ("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"))), Does.Contain("max-headers"));
        Assert.That(await ErrorAfter(c => c.PublishAsync("/topic/h", "x", ("long", new string('y', 200)))), Does.Contain("max-header-line-length"));
        Assert.That(await ErrorAfter(async c =>
        {
            for (var i = 0; i < 3; i++)
            {
                await c.SubscribeAsync($"s{i}", "/topic/many");
            }
        }), Does.Contain("max-subscriptions"));
        Assert.That(await ErrorAfter(async c =>
        {
            await c.SendFrameAsync(StompCommand.Begin, ("transaction", "t"));
            for (var i = 0; i < 3; i++)
            {
                await c.PublishAsync("/topic/tx", "x", ("transaction", "t"));
            }
        }), Does.Contain("max-transaction-size"));
        Assert.That(await ErrorAfter(async c =>
        {
            await c.SendFrameAsync(StompCommand.Begin, ("transaction", "t1"));
            await c.SendFrameAsync(StompCommand.Begin, ("transaction", "t2"));
        }), Does.Contain("max-transactions"));
    }

    [Test]
    public async Task A_client_ack_subscriber_that_never_acks_is_stopped_at_max_unacked()
    {
        await using var harness = new SessionHarness(o => o.MaxUnackedPerSubscription = 3);
        var lazy = await harness.OpenConnectedAsync();
        await lazy.SubscribeAndWaitAsync("t", "/topic/never-acked", "client");
        var publisher = await harness.OpenConnectedAsync();
        for (var i = 0; i < 5; i++)
        {
            await publisher.PublishAsync("/topic/never-acked", $"m{i}");
        }

        var frames = new List<ReceivedFrame>();
        while (frames.Count == 0 || frames[^1].Command != StompCommand.Error)
        {
            frames.Add(await lazy.ReceiveAsync());
        }

        // Up to the limit may have been written before the cut; the unwritten backlog is dropped.
        Assert.That(frames.Count(f => f.Command == StompCommand.Message), Is.LessThanOrEqualTo(3));
        Assert.That(frames[^1]["message"], Does.Contain("max-unacked"));
        Assert.That(await lazy.WaitClosedAsync(), Is.True);
    }

    [Test]
    public async Task Idle_empty_queues_are_swept_and_come_back_when_used()
    {
        await using var harness = new SessionHarness();
        var broker = (Broker.Routing.InProcessBroker)harness.Services.GetRequiredService<Broker.Routing.IMessageBroker>();
        var client = await harness.OpenConnectedAsync();
        await client.PublishAsync("/queue/sweep-me", "kept while unread", ("receipt", "sent"));
        await client.ExpectReceiptAsync("sent");
        var before = broker.QueueCount;

        broker.Sweep();
        Assert.That(broker.QueueCount, Is.EqualTo(before), "a queue holding a message stays");
        await client.SubscribeAsync("q", "/queue/sweep-me");
        Assert.That((await client.ReceiveAsync()).BodyText, Is.EqualTo("kept while unread"));
        await client.SendFrameAsync(StompCommand.Unsubscribe, ("id", "q"), ("receipt", "gone"));
        await client.ExpectReceiptAsync("gone");
        broker.Sweep();

        Assert.That(broker.QueueCount, Is.EqualTo(before - 1));
        await client.PublishAsync("/queue/sweep-me", "again");
        await client.SubscribeAsync("q2", "/queue/sweep-me");
        Assert.That((await client.ReceiveAsync()).BodyText, Is.EqualTo("again"));
    }

    [Test]
    public async Task A_frame_without_its_end_larger_than_the_limit_is_refused_without_waiting()
    {
        await using var harness = new SessionHarness(o => o.MaxFrameSize = 4096);
        var client = await harness.OpenConnectedAsync();

        await client.SendRawAsync("SEND\ndestination:/topic/x\n\n" + new string('z', 8192));
        var error = await client.ReceiveAsync();

        Assert.That(error["message"], Does.Contain("max-frame-size"));
    }

    [Test]
    public async Task Malformed_frames_get_an_error_saying_why()
    {
        await using var harness = new SessionHarness();
        var cases = new Dictionary<string, string>
        {
            ["FLY\n\n\0"] = "unknown command",
            ["SEND\ndestination:/topic/x\ncontent-length:2\n\nabc\0"] = "content-length",
            ["SEND\ndestination:/topic/x\ncontent-length:-1\n\n\0"] = "content-length",
            ["SUBSCRIBE\nid:1\ndestination:/topic/x\n\nbody\0"] = "must not have a body",
            ["SEND\ndestination\n\n\0"] = "without ':'",
            ["SUBSCRIBE\nid:1\ndestination:/topic/x\nack:sometimes\n\n\0"] = "invalid ack mode",
            ["MESSAGE\ndestination:/topic/x\n\n\0"] = "server frame",
        };

        foreach (var (input, expected) in cases)
        {
            var client = await harness.OpenConnectedAsync();
            await client.SendRawAsync(input);
            var error = await client.ReceiveAsync();
            Assert.That(error["message"], Does.Contain(expected), input);
        }
    }

    [Test]
    public async Task Server_shutdown_tells_every_client()
    {
        await using var harness = new SessionHarness();
        var a = await harness.OpenConnectedAsync();
        var b = await harness.OpenConnectedAsync();

        harness.Registry.CloseAll("server shutting down");

        Assert.That((await a.ReceiveAsync())["message"], Is.EqualTo("server shutting down"));
        Assert.That((await b.ReceiveAsync())["message"], Is.EqualTo("server shutting down"));
        Assert.That(await a.WaitClosedAsync(), Is.True);
    }
}
