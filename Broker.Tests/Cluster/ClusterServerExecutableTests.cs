using System.Globalization;
using Broker.Protocol;
using Broker.Tests.Durability;
using Broker.Tests.EndToEnd;
using NUnit.Framework;
using static Broker.Tests.Relay.RelayTesting;

namespace Broker.Tests.Cluster;

/// <summary>
/// The shape "several nodes, Redis only": two Broker.Server processes configured as README "Clustering" says
/// (<c>Broker:Cluster:Kind=redis</c>, Redis sessions), and a node SIGKILLed under its clients.
/// </summary>
[TestFixture]
public sealed class ClusterServerExecutableTests
{
    private RedisServer _redis = null!;

    [OneTimeSetUp]
    public async Task StartRedis() => _redis = await RedisServer.GetSharedAsync();

    [Test]
    public async Task Topic_queue_and_user_messages_cross_two_server_processes()
    {
        var p = Unique();
        await using var cluster = await ServerNodes.StartAsync(_redis);
        var starOnB = await cluster.ConnectAsync(cluster.B);
        await starOnB.SubscribeAndWaitAsync("w", $"/topic/{p}.*");
        var workerOnB = await cluster.ConnectAsync(cluster.B);
        await workerOnB.SubscribeAndWaitAsync("q", $"/queue/{p}");
        var publisherOnA = await cluster.ConnectAsync(cluster.A);
        await publisherOnA.PublishConfirmedAsync($"/topic/{p}.x", "topic");
        await publisherOnA.PublishConfirmedAsync($"/queue/{p}", "queue");

        Assert.That((await starOnB.NextMessageAsync()).BodyText, Is.EqualTo("topic"));
        Assert.That((await workerOnB.NextMessageAsync()).BodyText, Is.EqualTo("queue"));
        Assert.That(cluster.A.Output, Does.Contain("Redis cluster: connected to"), "the log says the cluster is on");
    }

    [Test]
    public async Task A_durable_session_whose_node_was_SIGKILLed_resumes_on_the_other_with_every_message_published_meanwhile()
    {
        const int Count = 200;
        var topic = $"/topic/{Unique()}.seq";
        await using var cluster = await ServerNodes.StartAsync(_redis);
        var onA = await cluster.OpenAsync(cluster.A);
        var connected = await onA.ConnectAsync();
        await onA.SubscribeAndWaitAsync("seq", topic);
        var publisher = await cluster.ConnectAsync(cluster.B);
        await publisher.PublishConfirmedAsync(topic, "0");
        Assert.That((await onA.NextMessageAsync()).BodyText, Is.EqualTo("0"), "published on B, delivered on A");
        await cluster.WaitSessionStoredAsync(connected["session-token"]!);
        await cluster.WaitWrittenPositionAsync(connected["session"]!, "seq");

        await cluster.A.KillAsync();
        for (var i = 1; i <= Count; i++)
        {
            await publisher.PublishAsync(topic, i.ToString(CultureInfo.InvariantCulture));
        }

        await publisher.PublishConfirmedAsync(topic, "end");
        var resumed = await cluster.OpenAsync(cluster.B);
        var again = await resumed.ConnectAsync(sessionToken: connected["session-token"]);
        Assert.That((again["session"], again["resumed"], again["recovered"]), Is.EqualTo((connected["session"], "true", "true")), cluster.B.Output);

        // The session store has the position the SUBSCRIBE saved (a SIGKILL saves nothing more); node A had
        // also recorded in Redis that "0" was written, so it does not come again.
        var received = new List<string>();
        while (received.Count == 0 || received[^1] != "end")
        {
            var message = await resumed.NextMessageAsync();
            Assert.That((message["subscription"], message["destination"]), Is.EqualTo(("seq", topic)));
            received.Add(message.BodyText);
        }

        Assert.That(received.SkipLast(1), Is.EqualTo(Enumerable.Range(1, Count).Select(i => i.ToString(CultureInfo.InvariantCulture))), "1..200, once, in order");
        Assert.That(await resumed.TryReceiveAsync(TimeSpan.FromMilliseconds(300)), Is.Null, "none twice");
    }

    [Test]
    public async Task The_unacknowledged_queue_deliveries_of_a_SIGKILLed_node_go_to_a_consumer_on_the_other()
    {
        var queue = $"/queue/{Unique()}";
        await using var cluster = await ServerNodes.StartAsync(_redis);
        var holder = await cluster.ConnectAsync(cluster.A);
        await holder.SubscribeAndWaitAsync("q", queue, "client-individual");
        var publisher = await cluster.ConnectAsync(cluster.B);
        for (var i = 1; i <= 3; i++)
        {
            await publisher.PublishConfirmedAsync(queue, $"m{i}");
        }

        for (var i = 1; i <= 3; i++)
        {
            Assert.That((await holder.NextMessageAsync()).BodyText, Is.EqualTo($"m{i}"));
        }

        var taker = await cluster.ConnectAsync(cluster.B);
        await taker.SubscribeAndWaitAsync("q", queue, "client-individual");
        await cluster.A.KillAsync();

        var taken = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            var message = await taker.NextMessageAsync(TimeSpan.FromSeconds(20));
            taken.Add(message.BodyText);
            await taker.SendFrameAsync(StompCommand.Ack, ("id", message["ack"]!));
        }

        Assert.That(taken, Is.EqualTo(new[] { "m1", "m2", "m3" }), "after the redelivery timeout, in order");
        Assert.That(await taker.TryReceiveAsync(TimeSpan.FromSeconds(3)), Is.Null, "once");
    }
}
