using System.Globalization;
using Broker.Protocol;
using Broker.Tests.Durability;
using NUnit.Framework;
using static Broker.Tests.Relay.RelayTesting;

namespace Broker.Tests.Cluster;

/// <summary>
/// <c>/queue/</c> destinations across two in-process nodes sharing a real redis-server: one queue for the
/// cluster, competing consumers on both nodes, each message to one consumer once; NACK, a consumer leaving and
/// a node going away give its messages to another; the length limit holds cluster-wide.
/// </summary>
[TestFixture]
public sealed class ClusterQueueTests
{
    private RedisServer _redis = null!;

    [OneTimeSetUp]
    public async Task StartRedis() => _redis = await RedisServer.GetSharedAsync();

    [Test]
    public async Task Consumers_on_two_nodes_share_a_queue_with_none_lost_or_doubled()
    {
        const int Count = 100;
        var queue = $"/queue/{Unique()}-jobs";
        await using var cluster = await TestCluster.StartAsync(_redis);
        var workerOnA = await cluster.ConnectAsync(cluster.A);
        await workerOnA.SubscribeAndWaitAsync("jobs", queue, "client-individual");
        var workerOnB = await cluster.ConnectAsync(cluster.B);
        await workerOnB.SubscribeAndWaitAsync("jobs", queue, "client-individual");
        var publisherOnA = await cluster.ConnectAsync(cluster.A);
        var publisherOnB = await cluster.ConnectAsync(cluster.B);
        for (var i = 1; i <= Count; i++)
        {
            await (i % 2 == 0 ? publisherOnB : publisherOnA).PublishConfirmedAsync(queue, i.ToString(CultureInfo.InvariantCulture));
        }

        var shares = await TakeAllAsync(Count, workerOnA, workerOnB);
        TestContext.Out.WriteLine($"consumer on A took {shares[0].Count}, consumer on B took {shares[1].Count}");
        Assert.That(shares[0].Concat(shares[1]), Is.EquivalentTo(Enumerable.Range(1, Count)), "every message once");
        Assert.That(shares[0], Is.Not.Empty, "the consumer on A competed");
        Assert.That(shares[1], Is.Not.Empty, "the consumer on B competed");
        Assert.That(shares[0], Is.Ordered, "one consumer sees the queue's order");
        Assert.That(shares[1], Is.Ordered);
    }

    [Test]
    public async Task Messages_sent_on_one_node_wait_in_the_queue_for_a_consumer_on_the_other()
    {
        var queue = $"/queue/{Unique()}";
        await using var cluster = await TestCluster.StartAsync(_redis);
        var producer = await cluster.ConnectAsync(cluster.A);
        await producer.PublishConfirmedAsync(queue, "kept", ("content-type", "text/plain"));

        var consumer = await cluster.ConnectAsync(cluster.B);
        await consumer.SubscribeAsync("q", queue);
        var message = await consumer.NextMessageAsync();
        Assert.That((message.BodyText, message["destination"], message["content-type"]), Is.EqualTo(("kept", queue, "text/plain")));
    }

    [Test]
    public async Task A_message_NACKed_by_the_only_consumer_on_its_node_goes_back_to_the_cluster_and_is_settled_once()
    {
        var queue = $"/queue/{Unique()}";
        await using var cluster = await TestCluster.StartAsync(_redis);
        var rejecter = await cluster.ConnectAsync(cluster.A);
        await rejecter.SubscribeAndWaitAsync("q", queue, "client-individual");
        var producer = await cluster.ConnectAsync(cluster.A);
        await producer.PublishConfirmedAsync(queue, "job");
        var first = await rejecter.NextMessageAsync();
        Assert.That(first.BodyText, Is.EqualTo("job"));
        var taker = await cluster.ConnectAsync(cluster.B);
        await taker.SubscribeAndWaitAsync("q", queue, "client-individual");

        // Back to the cluster: a consumer on either node takes it over at once (not after the redelivery timeout).
        await rejecter.SendFrameAsync(StompCommand.Nack, ("id", first["ack"]!));
        var (got, again, other) = await FirstOfAsync(rejecter, taker);
        Assert.That((again.BodyText, again["message-id"]), Is.EqualTo(("job", first["message-id"])));
        await got.SendFrameAsync(StompCommand.Ack, ("id", again["ack"]!), ("receipt", "a"));
        await got.ExpectReceiptAsync("a");
        Assert.That(await other.TryReceiveAsync(TimeSpan.FromSeconds(3)), Is.Null, "acknowledged: not delivered again, even after the redelivery timeout");
        Assert.That(await got.TryReceiveAsync(TimeSpan.FromMilliseconds(100)), Is.Null);
    }

    [Test]
    public async Task A_NACK_with_two_consumers_on_the_node_goes_to_the_other_one()
    {
        var queue = $"/queue/{Unique()}";
        await using var cluster = await TestCluster.StartAsync(_redis);
        var a = await cluster.ConnectAsync(cluster.A);
        await a.SubscribeAndWaitAsync("q", queue, "client-individual");
        var b = await cluster.ConnectAsync(cluster.A);
        await b.SubscribeAndWaitAsync("q", queue, "client-individual");
        var producer = await cluster.ConnectAsync(cluster.B);
        await producer.PublishConfirmedAsync(queue, "job");

        var (got, message, other) = await FirstOfAsync(a, b);
        await got.SendFrameAsync(StompCommand.Nack, ("id", message["ack"]!));
        Assert.That((await other.NextMessageAsync()).BodyText, Is.EqualTo("job"));
    }

    [Test]
    public async Task Unacknowledged_messages_of_a_consumer_that_leaves_go_to_a_consumer_on_the_other_node()
    {
        var queue = $"/queue/{Unique()}";
        await using var cluster = await TestCluster.StartAsync(_redis);
        var leaver = await cluster.ConnectAsync(cluster.A);
        await leaver.SubscribeAndWaitAsync("q", queue, "client");
        var producer = await cluster.ConnectAsync(cluster.A);
        for (var i = 1; i <= 3; i++)
        {
            await producer.PublishConfirmedAsync(queue, $"m{i}");
        }

        for (var i = 1; i <= 3; i++)
        {
            Assert.That((await leaver.NextMessageAsync()).BodyText, Is.EqualTo($"m{i}"));
        }

        var stayer = await cluster.ConnectAsync(cluster.B);
        await stayer.SubscribeAndWaitAsync("q", queue, "client");
        await leaver.DisposeAsync();

        Assert.That(new[] { (await stayer.NextMessageAsync()).BodyText, (await stayer.NextMessageAsync()).BodyText, (await stayer.NextMessageAsync()).BodyText },
            Is.EqualTo(new[] { "m1", "m2", "m3" }), "in their order, well before the redelivery timeout");
    }

    [Test]
    public async Task The_deliveries_of_a_node_that_stopped_renewing_them_go_to_another_node_after_the_redelivery_timeout()
    {
        var queue = $"/queue/{Unique()}";
        await using var cluster = await TestCluster.StartAsync(_redis, nodes: 1);
        var holder = await cluster.ConnectAsync(cluster.A);
        await holder.SubscribeAndWaitAsync("q", queue, "client-individual");
        var producer = await cluster.ConnectAsync(cluster.A);
        await producer.PublishConfirmedAsync(queue, "held");
        Assert.That((await holder.NextMessageAsync()).BodyText, Is.EqualTo("held"));

        // Node A goes silent without giving the delivery back (its Redis connection is cut, as by a SIGKILL).
        var taker = await cluster.StartNodeAsync();
        var consumer = await cluster.ConnectAsync(taker);
        await consumer.SubscribeAndWaitAsync("q", queue, "client-individual");
        Assert.That(await consumer.TryReceiveAsync(TimeSpan.FromSeconds(3)), Is.Null, "node A renews what its consumer holds");
        await TestCluster.Broker(cluster.A).DisposeAsync();

        var redelivered = await consumer.NextMessageAsync(TimeSpan.FromSeconds(15));
        Assert.That(redelivered.BodyText, Is.EqualTo("held"));
    }

    [Test]
    public async Task The_length_limit_holds_for_the_whole_cluster_dropping_the_oldest()
    {
        var queue = $"/queue/{Unique()}";
        await using var cluster = await TestCluster.StartAsync(_redis, broker: o => o.MaxQueueLength = 5);
        var onA = await cluster.ConnectAsync(cluster.A);
        var onB = await cluster.ConnectAsync(cluster.B);
        for (var i = 1; i <= 8; i++)
        {
            await (i % 2 == 0 ? onB : onA).PublishConfirmedAsync(queue, i.ToString(CultureInfo.InvariantCulture));
        }

        var consumer = await cluster.ConnectAsync(cluster.B);
        await consumer.SubscribeAndWaitAsync("q", queue);
        var got = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            got.Add((await consumer.NextMessageAsync()).BodyText);
        }

        Assert.That(got, Is.EqualTo(new[] { "4", "5", "6", "7", "8" }));
        Assert.That(await consumer.TryReceiveAsync(TimeSpan.FromMilliseconds(300)), Is.Null);
    }

    [Test]
    public async Task Client_mode_ACK_settles_every_earlier_delivery_of_the_subscription()
    {
        var queue = $"/queue/{Unique()}";
        await using var cluster = await TestCluster.StartAsync(_redis);
        var consumer = await cluster.ConnectAsync(cluster.A);
        await consumer.SubscribeAndWaitAsync("q", queue, "client");
        var producer = await cluster.ConnectAsync(cluster.B);
        for (var i = 1; i <= 3; i++)
        {
            await producer.PublishConfirmedAsync(queue, $"m{i}");
        }

        var messages = new[] { await consumer.NextMessageAsync(), await consumer.NextMessageAsync(), await consumer.NextMessageAsync() };
        await consumer.SendFrameAsync(StompCommand.Ack, ("id", messages[2]["ack"]!), ("receipt", "a"));
        await consumer.ExpectReceiptAsync("a");
        var other = await cluster.ConnectAsync(cluster.B);
        await other.SubscribeAndWaitAsync("q", queue, "client");
        await consumer.DisposeAsync();
        Assert.That(await other.TryReceiveAsync(TimeSpan.FromSeconds(3)), Is.Null, "all three were settled by the one ACK");
    }

    /// <summary>Receives, acknowledging each, until <paramref name="count"/> messages were taken by the workers together.</summary>
    private static async Task<List<int>[]> TakeAllAsync(int count, params StompTestClient[] workers)
    {
        var taken = 0;
        async Task<List<int>> WorkAsync(StompTestClient worker)
        {
            var got = new List<int>();
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            while (Volatile.Read(ref taken) < count && DateTime.UtcNow < deadline)
            {
                if (await worker.TryReceiveAsync(TimeSpan.FromMilliseconds(200)) is not { } frame || frame.Command == StompCommand.Receipt)
                {
                    continue;
                }

                Assert.That(frame.Command, Is.EqualTo(StompCommand.Message), frame.ToString());
                got.Add(int.Parse(frame.BodyText, CultureInfo.InvariantCulture));
                await worker.SendFrameAsync(StompCommand.Ack, ("id", frame["ack"]!));
                Interlocked.Increment(ref taken);
            }

            return got;
        }

        return await Task.WhenAll(workers.Select(WorkAsync));
    }

    private static async Task<(StompTestClient Got, ReceivedFrame Message, StompTestClient Other)> FirstOfAsync(StompTestClient a, StompTestClient b)
    {
        var deadline = DateTime.UtcNow + StompTestClient.DefaultTimeout;
        while (DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
            if (a.TryTake() is { Command: StompCommand.Message } fromA)
            {
                return (a, fromA, b);
            }

            if (b.TryTake() is { Command: StompCommand.Message } fromB)
            {
                return (b, fromB, a);
            }
        }

        throw new TimeoutException("neither consumer got the message");
    }
}
