using Broker.Durability;
using Broker.Tests.Durability;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;
using static Broker.Tests.Relay.RelayTesting;

namespace Broker.Tests.Cluster;

/// <summary>
/// <c>/user/&lt;login&gt;/queue/&lt;name&gt;</c> across nodes: each session's own queue behind <c>/user/queue/&lt;name&gt;</c>
/// is a cluster queue, so a SEND on any node reaches every session of the user the registry lists, wherever it is.
/// </summary>
[TestFixture]
public sealed class ClusterUserDestinationTests
{
    private RedisServer _redis = null!;

    [OneTimeSetUp]
    public async Task StartRedis() => _redis = await RedisServer.GetSharedAsync();

    [Test]
    public async Task A_SEND_on_one_node_reaches_every_session_of_the_user_on_both_nodes()
    {
        var inbox = Unique();
        await using var cluster = await TestCluster.StartAsync(_redis);
        var bobOnB = await cluster.ConnectAsync(cluster.B, "bob");
        await bobOnB.SubscribeAndWaitAsync("in", $"/user/queue/{inbox}");
        var bobOnA = await cluster.ConnectAsync(cluster.A, "bob");
        await bobOnA.SubscribeAndWaitAsync("in", $"/user/queue/{inbox}");
        var aliceOnB = await cluster.ConnectAsync(cluster.B, "alice");
        await aliceOnB.SubscribeAndWaitAsync("in", $"/user/queue/{inbox}");

        // The registry is written behind the CONNECT: wait until node A sees bob's session on B.
        var registry = cluster.A.Services.GetRequiredService<IUserRegistry>();
        await Eventually.That(async () => (await registry.GetSessionsAsync("bob")).Count == 2, "both of bob's sessions are registered", Eventually.Relaxed);

        var alice = await cluster.ConnectAsync(cluster.A, "alice");
        await alice.PublishConfirmedAsync($"/user/bob/queue/{inbox}", "hello bob", ("content-type", "text/plain"));

        foreach (var bob in new[] { bobOnB, bobOnA })
        {
            var message = await bob.NextMessageAsync();
            Assert.That((message.BodyText, message["destination"], message["subscription"], message["content-type"]),
                Is.EqualTo(("hello bob", $"/user/queue/{inbox}", "in", "text/plain")));
        }

        Assert.That(await aliceOnB.TryReceiveAsync(TimeSpan.FromMilliseconds(300)), Is.Null, "another user's session gets nothing");
        Assert.That(await bobOnB.TryReceiveAsync(TimeSpan.FromMilliseconds(300)), Is.Null, "once");
    }

    [Test]
    public async Task A_durable_session_dropped_on_its_node_gets_its_user_messages_when_it_resumes_on_the_other()
    {
        var inbox = Unique();
        await using var cluster = await TestCluster.StartAsync(_redis);
        var (bob, connected) = await cluster.ConnectWithAsync(cluster.A, "bob");
        await bob.SubscribeAndWaitAsync("in", $"/user/queue/{inbox}");
        await bob.DisposeAsync();
        await cluster.A.WaitSessionGoneAsync(connected["session"]!);

        // Sent on the node the session dropped from: that node knows the session may resume, and its queue
        // (in Redis) keeps the message for it, wherever it comes back.
        var alice = await cluster.ConnectAsync(cluster.A, "alice");
        await alice.PublishConfirmedAsync($"/user/bob/queue/{inbox}", "while you were away");
        await ClusterTopicTests.WaitSessionSavedAsync(cluster);

        var (resumed, again) = await cluster.ConnectWithAsync(cluster.B, "bob", connected["session-token"]);
        Assert.That((again["resumed"], again["recovered"]), Is.EqualTo(("true", "true")));
        var message = await resumed.NextMessageAsync();
        Assert.That((message.BodyText, message["destination"]), Is.EqualTo(("while you were away", $"/user/queue/{inbox}")));
    }
}
