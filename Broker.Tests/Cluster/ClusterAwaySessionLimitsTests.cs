using Broker.Cluster;
using Broker.Durability;
using Broker.Protocol;
using Broker.Tests.Durability;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace Broker.Tests.Cluster;

/// <summary>
/// <c>max-away-sessions-per-user</c> over two in-process nodes sharing a real redis-server: the limit holds for a user's
/// dropped sessions on both nodes together, and the oldest beyond it end for good wherever they dropped, as on one node.
/// </summary>
[TestFixture]
public sealed class ClusterAwaySessionLimitsTests
{
    private const string Limit = "broker.limits.exceeded{limit=max-away-sessions-per-user}";

    private RedisServer _redis = null!;

    [OneTimeSetUp]
    public async Task StartRedis() => _redis = await RedisServer.GetSharedAsync();

    [TestCase(true)]
    [TestCase(false)]
    public async Task Past_MaxAwayPerUser_on_both_nodes_together_the_users_oldest_dropped_sessions_no_longer_resume_wherever_they_dropped(bool withCluster)
    {
        await using var cluster = await TestCluster.StartAsync(_redis, withCluster: withCluster, services: s => s.Configure<DurableSessionOptions>(o => o.MaxAwayPerUser = 2));
        using var meterA = new BrokerMeter(cluster.A.Services);
        using var meterB = new BrokerMeter(cluster.B.Services);
        var bob = await DropAsync(cluster, cluster.A, "bob");
        var first = await DropAsync(cluster, cluster.A, "alice");
        var second = await DropAsync(cluster, cluster.B, "alice");
        Assert.That(meterA[Limit] + meterB[Limit], Is.Zero, "two away sessions: within the limit");

        // The third, on node B, ends the oldest, on node A; the fourth, on node A, ends the next oldest, on node B.
        var third = await DropAsync(cluster, cluster.B, "alice");
        await Eventually.That(() => meterB[Limit] == 1, "node B counted the limit", Eventually.Relaxed);
        var fourth = await DropAsync(cluster, cluster.A, "alice");
        await Eventually.That(() => meterA[Limit] == 1, "node A counted the limit", Eventually.Relaxed);

        Assert.That(meterA[Limit] + meterB[Limit], Is.EqualTo(2));
        var directory = cluster.B.Services.GetRequiredService<IClusterControl>();
        Assert.That((await directory.AwayOfUserAsync("alice")).Select(a => a.SessionId).Order(), Is.EqualTo(new[] { third.Id, fourth.Id }.Order()));
        foreach (var ended in new[] { first, second })
        {
            // The count comes just before the log line, on another thread.
            await WaitEndedLogAsync(cluster, ended, max: 2);
        }

        await ClusterTopicTests.WaitSessionSavedAsync(cluster);
        Assert.That(await ResumedAsync(cluster, cluster.B, "alice", first), Is.EqualTo("false"), "the oldest, dropped on node A");
        Assert.That(await ResumedAsync(cluster, cluster.A, "alice", second), Is.EqualTo("false"), "the next, dropped on node B");
        foreach (var (node, login, kept) in new[] { (cluster.A, "alice", third), (cluster.B, "alice", fourth), (cluster.B, "bob", bob) })
        {
            Assert.That(await ResumedAsync(cluster, node, login, kept), Is.EqualTo("true"), $"{login}'s {kept.Id}");
        }
    }

    [Test]
    public async Task A_resume_on_node_B_that_read_its_record_just_before_the_limit_took_the_session_gets_a_fresh_session()
    {
        var lookups = new HeldTokenLookups();
        await using var cluster = await TestCluster.StartAsync(_redis, nodes: 0, services: s => s.Configure<DurableSessionOptions>(o => o.MaxAwayPerUser = 1));
        await cluster.StartNodeAsync();
        await cluster.StartNodeAsync(lookups.Install);
        var taken = await DropAsync(cluster, cluster.A, "alice");
        await ClusterTopicTests.WaitSessionSavedAsync(cluster);

        // The resume on node B has read the record from Redis (the session away, listed on node A) and is held there.
        lookups.Hold(taken.Token);
        await using var resuming = await StompTestClient.ConnectTcpAsync(cluster.B.TcpPort);
        await resuming.SendFrameAsync(StompCommand.Connect, ("accept-version", "1.2"), ("host", "localhost"), ("login", "alice"), ("passcode", "alice"), ("session-token", taken.Token));
        await Eventually.That(() => lookups.Holding, "node B's resume read the record", Eventually.Relaxed);
        Assert.That(lookups.Read?.Id, Is.EqualTo(taken.Id), "the record it read");

        // Meanwhile another of alice's sessions drops on node B: past the limit, the older one (on node A) is taken and ended.
        var kept = await DropAsync(cluster, cluster.B, "alice");
        await WaitEndedLogAsync(cluster, taken, max: 1);
        lookups.Release();

        var connected = await resuming.ReceiveAsync(Eventually.Relaxed);
        Assert.That((connected.Command, connected["resumed"]), Is.EqualTo((StompCommand.Connected, "false")), "the session it read was ended meanwhile: a fresh one");
        Assert.That(connected["session"], Is.Not.EqualTo(taken.Id));
        await resuming.SendFrameAsync(StompCommand.Begin, ("transaction", "t"), ("receipt", "alive"));
        await resuming.ExpectReceiptAsync("alive");
        Assert.That(await ResumedAsync(cluster, cluster.A, "alice", kept), Is.EqualTo("true"), "the newer away session still resumes");
        Assert.That(await ResumedAsync(cluster, cluster.A, "alice", taken), Is.EqualTo("false"), "the taken one is gone on every node");
    }

    [Test]
    public async Task A_session_that_dropped_on_node_A_and_resumed_on_node_B_is_left_connected_when_node_As_own_limit_picks_it()
    {
        await using var cluster = await TestCluster.StartAsync(_redis, services: s => s.Configure<DurableSessionOptions>(o => o.MaxAwayPerUser = 1));
        var moved = await DropAsync(cluster, cluster.A, "alice");
        await ClusterTopicTests.WaitSessionSavedAsync(cluster);
        var (client, resumed) = await cluster.ConnectWithAsync(cluster.B, "alice", moved.Token);
        Assert.That(resumed["resumed"], Is.EqualTo("true"));
        await ClusterTopicTests.WaitSessionSavedAsync(cluster);

        // Another session drops on node A, whose own table still lists the moved one as alice's oldest away session there.
        await DropAsync(cluster, cluster.A, "alice");
        await Eventually.That(() => cluster.Logs.Lines.Any(l => l.Contains($"Durable session {moved.Id} of alice, the oldest away on this node past max-away-sessions-per-user, is left")),
            "node A left the session that resumed on node B", Eventually.Relaxed);

        Assert.That(cluster.Logs.Lines, Has.None.Contains($"Durable session {moved.Id} of alice ended for good"));
        await ClusterTopicTests.WaitSessionSavedAsync(cluster);
        var registered = await cluster.A.Services.GetRequiredService<IUserRegistry>().GetSessionsAsync("alice");
        Assert.That(registered.Select(u => (u.SessionId, u.Node)), Does.Contain((moved.Id, NodeId(cluster.B))), "still listed connected on node B");
        await client.SendFrameAsync(StompCommand.Begin, ("transaction", "t"), ("receipt", "alive"));
        await client.ExpectReceiptAsync("alive");
        await client.DisposeAsync();
        await cluster.B.WaitSessionGoneAsync(moved.Id);
        await ClusterTopicTests.WaitSessionSavedAsync(cluster);
        Assert.That(await ResumedAsync(cluster, cluster.A, "alice", moved), Is.EqualTo("true"), "its token still resumes");
    }

    private static string NodeId(TestServer node) => node.Services.GetRequiredService<Broker.Sessions.StompSessionServices>().NodeId;

    private static Task WaitEndedLogAsync(TestCluster cluster, Dropped ended, int max) =>
        Eventually.That(() => cluster.Logs.Lines.Any(l => l.Contains($"Durable session {ended.Id} of alice ended for good: its owner went past max-away-sessions-per-user ({max}) away sessions on all nodes together")),
            $"the log says {ended.Id} ended for good", Eventually.Relaxed);

    // Connects a durable session to node, subscribes, drops the connection, and waits until both nodes can see it away.
    private static async Task<Dropped> DropAsync(TestCluster cluster, TestServer node, string login)
    {
        var (client, connected) = await cluster.ConnectWithAsync(node, login);
        await client.SubscribeAndWaitAsync("s", "/topic/away-limits");
        await client.DisposeAsync();
        var id = connected["session"]!;
        await node.WaitSessionGoneAsync(id);
        var directory = cluster.B.Services.GetRequiredService<IClusterControl>();
        await Eventually.That(async () => (await directory.AwayOfUserAsync(login)).Any(a => a.SessionId == id), $"session {id} listed away", Eventually.Relaxed);
        return new Dropped(id, connected["session-token"]!);
    }

    private static async Task<string?> ResumedAsync(TestCluster cluster, TestServer node, string login, Dropped dropped)
    {
        var (_, connected) = await cluster.ConnectWithAsync(node, login, dropped.Token);
        return connected["resumed"];
    }

    private sealed record Dropped(string Id, string Token);
}
