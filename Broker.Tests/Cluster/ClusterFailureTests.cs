using Broker.Protocol;
using Broker.Tests.Durability;
using NUnit.Framework;
using static Broker.Tests.Relay.RelayTesting;

namespace Broker.Tests.Cluster;

/// <summary>
/// The cluster's Redis (a server of the test's own) stopped and started again, empty, on the same port, under
/// two nodes whose sessions live in another Redis: clients stay connected, each node keeps delivering to its own
/// subscribers, queue SENDs wait on their node, cross-node delivery comes back by itself, and a resume over
/// the outage says what it can prove.
/// </summary>
[TestFixture]
public sealed class ClusterFailureTests
{
    private RedisServer _sessions = null!;

    [OneTimeSetUp]
    public async Task StartRedis() => _sessions = await RedisServer.GetSharedAsync();

    [Test]
    public async Task Redis_restarted_under_two_nodes_local_delivery_goes_on_and_cross_node_delivery_comes_back()
    {
        var p = Unique();
        var redis = await RedisServer.StartAsync();
        var port = redis.Port;
        try
        {
            await using var cluster = await TestCluster.StartAsync(redis, sessions: _sessions, cluster: o => o.OperationTimeout = TimeSpan.FromSeconds(1));
            var onA = await cluster.ConnectAsync(cluster.A);
            await onA.SubscribeAndWaitAsync("t", $"/topic/{p}");
            var onB = await cluster.ConnectAsync(cluster.B);
            await onB.SubscribeAndWaitAsync("t", $"/topic/{p}");
            var workerOnB = await cluster.ConnectAsync(cluster.B);
            await workerOnB.SubscribeAndWaitAsync("q", $"/queue/{p}", "client-individual");
            var (away, awayConnected) = await cluster.ConnectWithAsync(cluster.A);
            await away.SubscribeAndWaitAsync("t", $"/topic/{p}");
            var publisher = await cluster.ConnectAsync(cluster.A);
            await publisher.PublishConfirmedAsync($"/topic/{p}", "before");
            foreach (var client in new[] { onA, onB, away })
            {
                Assert.That((await client.NextMessageAsync()).BodyText, Is.EqualTo("before"));
            }

            await away.DisposeAsync();
            await cluster.A.WaitSessionGoneAsync(awayConnected["session"]!);
            await ClusterTopicTests.WaitSessionSavedAsync(cluster);

            await redis.DisposeAsync();
            await Eventually.That(() => Task.FromResult(!TestCluster.Broker(cluster.A).IsAvailable && !TestCluster.Broker(cluster.B).IsAvailable), "both nodes noticed", Eventually.Relaxed);

            // Redis is gone: a SEND is still taken at once (its RECEIPT comes), and A's own subscriber gets it.
            await publisher.PublishConfirmedAsync($"/topic/{p}", "during");
            await publisher.PublishConfirmedAsync($"/queue/{p}", "job sent during the outage");
            Assert.That((await onA.NextMessageAsync()).BodyText, Is.EqualTo("during"), "local delivery goes on");
            var lateOnB = await cluster.ConnectAsync(cluster.B);
            await lateOnB.SubscribeAndWaitAsync("late", $"/topic/{p}-late");

            redis = await RedisServer.StartAsync(port);
            await Eventually.That(() => Task.FromResult(TestCluster.Broker(cluster.A).IsAvailable && TestCluster.Broker(cluster.B).IsAvailable), "both nodes reconnected", Eventually.Relaxed);

            // Cross-node delivery comes back by itself, for the subscriptions made before the outage and during it.
            var afterOnB = await ReceiveOnceFlowingAsync(publisher, $"/topic/{p}", onB);
            Assert.That(afterOnB, Does.StartWith("after"), "B never got the message published on A while Redis was away");
            await ReceiveOnceFlowingAsync(publisher, $"/topic/{p}-late", lateOnB);
            var job = await workerOnB.NextMessageAsync(TimeSpan.FromSeconds(20));
            Assert.That(job.BodyText, Is.EqualTo("job sent during the outage"), "the queue message waited on A and went to its queue once Redis was back");

            Assert.That(new[] { onA, onB, workerOnB, publisher, lateOnB }.Select(c => c.Closed.IsCompleted), Is.All.False, "every client stayed connected");

            // The session that was away over the outage: the history it would resume from went with Redis's data.
            var (resumed, again) = await cluster.ConnectWithAsync(cluster.B, token: awayConnected["session-token"]);
            Assert.That((again["resumed"], again["recovered"]), Is.EqualTo(("true", "false")));
            await ReceiveOnceFlowingAsync(publisher, $"/topic/{p}", resumed);

            var log = string.Join('\n', cluster.Logs.Lines);
            Assert.That(log, Does.Contain("is unreachable"), log);
            Assert.That(log, Does.Contain("is back; cross-node delivery resumes"), log);
        }
        finally
        {
            await redis.DisposeAsync();
        }
    }

    [Test]
    public async Task A_topic_whose_messages_were_delivered_only_locally_during_an_outage_gets_a_new_epoch_so_no_resume_promises_them()
    {
        var p = Unique();
        await using var snapshot = new RedisSnapshot();
        var redis = await snapshot.StartAsync();
        var port = redis.Port;
        try
        {
            await using var cluster = await TestCluster.StartAsync(redis, nodes: 1, sessions: _sessions, cluster: o => o.OperationTimeout = TimeSpan.FromSeconds(1));
            var (away, connected) = await cluster.ConnectWithAsync(cluster.A);
            await away.SubscribeAndWaitAsync("t", $"/topic/{p}");
            var local = await cluster.ConnectAsync(cluster.A);
            await local.SubscribeAndWaitAsync("t", $"/topic/{p}");
            var publisher = await cluster.ConnectAsync(cluster.A);
            await publisher.PublishConfirmedAsync($"/topic/{p}", "before");
            Assert.That((await away.NextMessageAsync()).BodyText, Is.EqualTo("before"));
            Assert.That((await local.NextMessageAsync()).BodyText, Is.EqualTo("before"));
            await away.DisposeAsync();
            await cluster.A.WaitSessionGoneAsync(connected["session"]!);
            await ClusterTopicTests.WaitSessionSavedAsync(cluster);

            // Redis unreachable, then back with its data (a network outage, not a restart).
            await RedisSnapshot.SaveAsync(redis);
            await redis.DisposeAsync();
            await Eventually.That(() => Task.FromResult(!TestCluster.Broker(cluster.A).IsAvailable), "the node noticed", Eventually.Relaxed);
            await publisher.PublishConfirmedAsync($"/topic/{p}", "only here");
            Assert.That((await local.NextMessageAsync()).BodyText, Is.EqualTo("only here"));
            redis = await snapshot.RestoreAsync(port);
            await Eventually.That(() => Task.FromResult(TestCluster.Broker(cluster.A).IsAvailable), "the node reconnected", Eventually.Relaxed);
            await Eventually.That(() => Task.FromResult(cluster.Logs.Lines.Any(l => l.Contains("has a new epoch", StringComparison.Ordinal))), "the topic's epoch was changed", Eventually.Relaxed);

            var (_, again) = await cluster.ConnectWithAsync(cluster.A, token: connected["session-token"]);
            Assert.That((again["resumed"], again["recovered"]), Is.EqualTo(("true", "false")), "\"only here\" was never in Redis: the resumed session cannot be promised it");
        }
        finally
        {
            await redis.DisposeAsync();
        }
    }

    // Publishes "after-N" until one reaches the subscriber (cross-node delivery is back); returns its body.
    private static async Task<string> ReceiveOnceFlowingAsync(StompTestClient publisher, string destination, StompTestClient subscriber)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        for (var i = 0; DateTime.UtcNow < deadline; i++)
        {
            await publisher.PublishConfirmedAsync(destination, $"after-{i}");
            if (await subscriber.TryReceiveAsync(TimeSpan.FromMilliseconds(200)) is { Command: StompCommand.Message } message)
            {
                return message.BodyText;
            }
        }

        throw new TimeoutException($"nothing sent to {destination} arrived within 20 s of Redis coming back");
    }
}

/// <summary>A Redis server whose data can be saved and loaded again by a server started later (Redis back after a network outage).</summary>
internal sealed class RedisSnapshot : IAsyncDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("broker-redis-").FullName;

    /// <summary>A server that keeps its snapshot in this object's directory.</summary>
    public Task<RedisServer> StartAsync(int? port = null) => RedisServer.StartAsync(port, ["--dir", _directory]);

    public static async Task SaveAsync(RedisServer server)
    {
        await using var connection = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(server.Configuration + ",allowAdmin=true");
        await connection.GetServer(connection.GetEndPoints()[0]).ExecuteAsync("SAVE");
    }

    public Task<RedisServer> RestoreAsync(int port) => StartAsync(port);

    public ValueTask DisposeAsync()
    {
        Directory.Delete(_directory, recursive: true);
        return ValueTask.CompletedTask;
    }
}
