using Broker.Application;
using Broker.Cluster;
using Broker.Durability;
using Broker.Protocol;
using Broker.Sessions;
using Broker.Tests.Durability;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;
using static Broker.Tests.Relay.RelayTesting;

namespace Broker.Tests.Cluster;

/// <summary>
/// Session control across nodes of the Redis cluster (in-process nodes, real redis-server): the node that holds a
/// session carries out what another node's <see cref="IStompSessionControl"/>, <c>max-sessions-per-user</c> or a
/// resume asks of it; a node that is gone is acted for on the shared store.
/// </summary>
[TestFixture]
public sealed class ClusterSessionControlTests
{
    private RedisServer _redis = null!;

    [OneTimeSetUp]
    public async Task StartRedis() => _redis = await RedisServer.GetSharedAsync();

    private static IStompSessionControl Control(TestServer node) => node.Services.GetRequiredService<IStompSessionControl>();

    private static string NodeId(TestServer node) => node.Services.GetRequiredService<StompSessionServices>().NodeId;

    private Task<TestCluster> StartAsync(int maxPerUser = 0, MaxSessionsPerUserPolicy policy = MaxSessionsPerUserPolicy.TerminateOldest) =>
        TestCluster.StartAsync(_redis, services: s => s.Configure<DurableSessionOptions>(o =>
        {
            o.MaxPerUser = maxPerUser;
            o.WhenMaxPerUser = policy;
        }));

    [Test]
    public async Task A_session_connected_to_node_A_is_terminated_through_node_B_and_its_token_no_longer_resumes()
    {
        await using var cluster = await StartAsync();
        var (alice, connected) = await cluster.ConnectWithAsync(cluster.A, "alice");
        await alice.SubscribeAndWaitAsync("n", $"/topic/{Unique()}");
        var (other, _) = await cluster.ConnectWithAsync(cluster.A, "bob");
        await ClusterTopicTests.WaitSessionSavedAsync(cluster);

        var ended = await Control(cluster.B).TerminateAsync(connected["session"]!, "your account was suspended");

        var error = await alice.ReceiveAsync();
        Assert.That((ended, error.Command, error["message"]), Is.EqualTo((true, StompCommand.Error, "your account was suspended")));
        Assert.That(await alice.WaitClosedAsync(), Is.True);
        foreach (var node in new[] { cluster.B, cluster.A })
        {
            var (_, again) = await cluster.ConnectWithAsync(node, "alice", connected["session-token"]);
            Assert.That(again["resumed"], Is.EqualTo("false"), "the record is gone on every node");
        }

        await other.SendFrameAsync(StompCommand.Begin, ("transaction", "t"), ("receipt", "alive"));
        await other.ExpectReceiptAsync("alive");
    }

    [Test]
    public async Task A_session_on_node_A_whose_record_is_not_stored_yet_is_found_and_terminated_through_node_B()
    {
        // Node A's reply waits for the session to close and for its held writes (up to a second): a generous timeout.
        var held = new HeldSessionWrites();
        await using var cluster = await TestCluster.StartAsync(_redis, nodes: 0, cluster: o => o.ControlTimeout = TimeSpan.FromSeconds(20));
        await cluster.StartNodeAsync(held.Install);
        await cluster.StartNodeAsync();
        try
        {
            var (alice, connected) = await cluster.ConnectWithAsync(cluster.A, "alice");
            var id = connected["session"]!;
            await Eventually.That(() => held.Holds(id), "node A's write-behind holds the session's first write");
            Assert.That(await cluster.B.Services.GetRequiredService<ISessionStore>().FindByIdAsync(id), Is.Null, "no record in Redis yet");
            Assert.That(await cluster.B.Services.GetRequiredService<IUserRegistry>().GetSessionsAsync("alice"), Is.Empty, "nor a registry entry");

            var found = await Control(cluster.B).FindAsync(id);
            var ended = await Control(cluster.B).TerminateAsync(id, "your account was suspended");

            Assert.That((found?.Id, found?.Node, found?.Connected), Is.EqualTo((id, NodeId(cluster.A), true)), "as node A describes it");
            var error = await alice.ReceiveAsync();
            Assert.That((ended, error.Command, error["message"]), Is.EqualTo((true, StompCommand.Error, "your account was suspended")));
            Assert.That(await alice.WaitClosedAsync(), Is.True);

            // Once node A's writes go through, the session's removal comes after its first write: no record is left.
            held.Release();
            await ClusterTopicTests.WaitSessionSavedAsync(cluster);
            var (_, again) = await cluster.ConnectWithAsync(cluster.B, "alice", connected["session-token"]);
            Assert.That(again["resumed"], Is.EqualTo("false"));
        }
        finally
        {
            held.Release();
        }
    }

    [Test]
    public async Task A_session_no_node_holds_is_neither_found_nor_terminated()
    {
        await using var cluster = await StartAsync();

        Assert.That(await Control(cluster.B).FindAsync(StompSessionServices.NewSessionId()), Is.Null);
        Assert.That(await Control(cluster.B).TerminateAsync(StompSessionServices.NewSessionId(), "no one"), Is.False);
    }

    [Test]
    public async Task A_lookup_for_a_session_no_record_names_asks_every_node_only_within_its_share_of_cluster_control_pending()
    {
        // Four pending requests at most, so requests to every node may hold one: node C has two others to ask.
        await using var cluster = await TestCluster.StartAsync(_redis, nodes: 3, cluster: o => o.MaxPendingControlRequests = 4);
        var (alice, connected) = await cluster.ConnectWithAsync(cluster.A, "alice");
        await ClusterTopicTests.WaitSessionSavedAsync(cluster);

        Assert.That(await Control(cluster.Nodes[2]).TerminateAsync(StompSessionServices.NewSessionId(), "no one"), Is.False);
        Assert.That(cluster.Logs.Lines, Has.Some.Contains("limit exceeded: cluster-control-pending (requests to every node may hold 1 of its 4 slots); 'terminate' to 2 node(s) is not sent"));

        // A session its record names is asked of its node alone, within the budget of single requests.
        Assert.That(await Control(cluster.Nodes[2]).TerminateAsync(connected["session"]!, "your account was suspended"), Is.True);
        Assert.That((await alice.ReceiveAsync())["message"], Is.EqualTo("your account was suspended"));
    }

    [Test]
    public async Task With_Redis_sessions_alone_and_no_cluster_a_session_on_node_A_is_terminated_through_node_B_and_a_token_takes_over_across_nodes()
    {
        await using var cluster = await TestCluster.StartAsync(_redis, withCluster: false);
        var (alice, ended) = await cluster.ConnectWithAsync(cluster.A, "alice");
        var (old, kept) = await cluster.ConnectWithAsync(cluster.A, "bob");
        await ClusterTopicTests.WaitSessionSavedAsync(cluster);

        Assert.That(await Control(cluster.B).TerminateAsync(ended["session"]!, "your account was suspended"), Is.True);
        var (taker, resumed) = await cluster.ConnectWithAsync(cluster.B, "bob", kept["session-token"]);

        Assert.That((await alice.ReceiveAsync())["message"], Is.EqualTo("your account was suspended"));
        Assert.That((await old.ReceiveAsync())["message"], Is.EqualTo("session resumed on another connection"));
        Assert.That((await alice.WaitClosedAsync(), await old.WaitClosedAsync()), Is.EqualTo((true, true)));
        Assert.That((resumed["resumed"], resumed["session"]), Is.EqualTo(("true", kept["session"])));
        var (_, again) = await cluster.ConnectWithAsync(cluster.B, "alice", ended["session-token"]);
        Assert.That(again["resumed"], Is.EqualTo("false"));
        await taker.SendFrameAsync(StompCommand.Begin, ("transaction", "t"), ("receipt", "alive"));
        await taker.ExpectReceiptAsync("alive");
    }

    [Test]
    public async Task A_Redis_session_store_replaced_by_another_store_leaves_no_control_plane()
    {
        var services = new ServiceCollection().AddLogging();
        services.AddStompBroker().AddRedisSessionStore().AddInMemorySessionStore();
        await using var provider = services.BuildServiceProvider();

        Assert.That(provider.GetRequiredService<StompSessionServices>().Cluster, Is.SameAs(LocalClusterControl.Instance));
        Assert.That(provider.GetService<RedisClusterControl>(), Is.Null);
    }

    [Test]
    public async Task TerminateUserAsync_on_node_B_ends_the_users_sessions_on_both_nodes_connected_and_away()
    {
        await using var cluster = await StartAsync();
        var (onA, first) = await cluster.ConnectWithAsync(cluster.A, "alice");
        var (away, second) = await cluster.ConnectWithAsync(cluster.A, "alice");
        await away.SubscribeAndWaitAsync("in", $"/user/queue/{Unique()}");
        await away.DisposeAsync();
        await cluster.A.WaitSessionGoneAsync(second["session"]!);
        var (onB, third) = await cluster.ConnectWithAsync(cluster.B, "alice");
        var (bob, _) = await cluster.ConnectWithAsync(cluster.A, "bob");
        await ClusterTopicTests.WaitSessionSavedAsync(cluster);

        var ended = await Control(cluster.B).TerminateUserAsync("alice", "signed out everywhere");

        Assert.That(ended, Is.EqualTo(3));
        foreach (var client in new[] { onA, onB })
        {
            Assert.That((await client.ReceiveAsync())["message"], Is.EqualTo("signed out everywhere"));
            Assert.That(await client.WaitClosedAsync(), Is.True);
        }

        foreach (var token in new[] { first, second, third }.Select(c => c["session-token"]))
        {
            var (_, again) = await cluster.ConnectWithAsync(cluster.B, "alice", token);
            Assert.That(again["resumed"], Is.EqualTo("false"));
        }

        await bob.SendFrameAsync(StompCommand.Begin, ("transaction", "t"), ("receipt", "alive"));
        await bob.ExpectReceiptAsync("alive");
    }

    [Test]
    public async Task FindByUserAsync_on_node_B_describes_the_session_on_node_A_with_its_subscriptions()
    {
        var topic = $"/topic/{Unique()}";
        await using var cluster = await StartAsync();
        var (alice, connected) = await cluster.ConnectWithAsync(cluster.A, "alice");
        await alice.SubscribeAndWaitAsync("n", topic);
        await ClusterTopicTests.WaitSessionSavedAsync(cluster);

        var sessions = await Control(cluster.B).FindByUserAsync("alice");

        var found = sessions.Single();
        Assert.That((found.Id, found.Node, found.Connected, found.Login), Is.EqualTo((connected["session"], NodeId(cluster.A), true, "alice")));
        Assert.That(found.Subscriptions.Select(s => (s.Id, s.Destination)), Is.EqualTo(new[] { ("n", topic) }));
        Assert.That((found.CreatedAt is null, found.LastSeenAt is null), Is.EqualTo((false, false)), "as node A describes it");
    }

    [Test]
    public async Task Past_MaxPerUser_a_CONNECT_on_node_B_ends_the_users_oldest_session_on_node_A()
    {
        await using var cluster = await StartAsync(maxPerUser: 1);
        var (oldest, first) = await cluster.ConnectWithAsync(cluster.A, "alice");
        await ClusterTopicTests.WaitSessionSavedAsync(cluster);

        var (newest, _) = await cluster.ConnectWithAsync(cluster.B, "alice");

        var error = await oldest.ReceiveAsync();
        Assert.That((error.Command, error["message"]), Is.EqualTo((StompCommand.Error, "session ended: 'alice' opened a newer session past max-sessions-per-user (1)")));
        Assert.That(await oldest.WaitClosedAsync(), Is.True);
        await newest.SendFrameAsync(StompCommand.Begin, ("transaction", "t"), ("receipt", "alive"));
        await newest.ExpectReceiptAsync("alive");
        var (_, again) = await cluster.ConnectWithAsync(cluster.A, "alice", first["session-token"]);
        Assert.That(again["resumed"], Is.EqualTo("false"), "its record was deleted");
    }

    [Test]
    public async Task Past_MaxPerUser_with_RefuseNew_a_CONNECT_on_node_B_is_refused_while_the_session_on_node_A_stays()
    {
        await using var cluster = await StartAsync(maxPerUser: 1, MaxSessionsPerUserPolicy.RefuseNew);
        var (first, connected) = await cluster.ConnectWithAsync(cluster.A, "alice");
        await ClusterTopicTests.WaitSessionSavedAsync(cluster);

        await using var refusedClient = await StompTestClient.ConnectTcpAsync(cluster.B.TcpPort);
        var refused = await refusedClient.ConnectAsync(login: "alice", passcode: "alice");

        Assert.That((refused.Command, refused["message"]), Is.EqualTo((StompCommand.Error, "limit exceeded: max-sessions-per-user (2 > 1)")));
        await first.SendFrameAsync(StompCommand.Begin, ("transaction", "t"), ("receipt", "alive"));
        await first.ExpectReceiptAsync("alive");

        // Its own token presented on node B takes it over: that is no second session.
        var (_, resumed) = await cluster.ConnectWithAsync(cluster.B, "alice", connected["session-token"]);
        Assert.That(resumed["resumed"], Is.EqualTo("true"));
    }

    [Test]
    public async Task A_token_presented_on_node_B_while_its_connection_is_open_on_node_A_takes_the_session_over_with_its_unacknowledged_messages_once()
    {
        var topic = $"/topic/{Unique()}";
        await using var cluster = await StartAsync();
        var (old, connected) = await cluster.ConnectWithAsync(cluster.A, "alice");
        await old.SubscribeAndWaitAsync("t", topic, "client-individual");
        var publisher = await cluster.ConnectAsync(cluster.B, "bob");
        await DeliverThreeAcknowledgeOneAsync(publisher, old, topic);
        await ClusterTopicTests.WaitSessionSavedAsync(cluster);

        var (taker, resumed) = await cluster.ConnectWithAsync(cluster.B, "alice", connected["session-token"]);

        await AssertTakenOverAsync(old, (taker, resumed), connected["session"]!, publisher, topic);
        var expected = (connected["session"]!, NodeId(cluster.B), true);
        await Eventually.That(async () => (await Control(cluster.A).FindByUserAsync("alice")).Select(s => (s.Id, s.Node, s.Connected)).SequenceEqual([expected]),
            "one live copy, on node B");
    }

    /// <summary>Publishes m1..m3 to <paramref name="topic"/>, each received by <paramref name="subscriber"/> (client-individual), which ACKs only m1.</summary>
    internal static async Task DeliverThreeAcknowledgeOneAsync(StompTestClient publisher, StompTestClient subscriber, string topic)
    {
        var acks = new List<string>();
        for (var i = 1; i <= 3; i++)
        {
            await publisher.PublishConfirmedAsync(topic, $"m{i}");
            var message = await subscriber.NextMessageAsync();
            Assert.That(message.BodyText, Is.EqualTo($"m{i}"));
            acks.Add(message["ack"]!);
        }

        await subscriber.SendFrameAsync(StompCommand.Ack, ("id", acks[0]), ("receipt", "acked"));
        await subscriber.ExpectReceiptAsync("acked");
    }

    /// <summary>The old connection got the take-over ERROR and closed; the new one resumed the session and gets m2, m3 (unacknowledged), then m4, once.</summary>
    internal static async Task AssertTakenOverAsync(StompTestClient old, (StompTestClient Client, ReceivedFrame Connected) taker, string sessionId, StompTestClient publisher, string topic)
    {
        var error = await old.ReceiveAsync();
        Assert.That((error.Command, error["message"]), Is.EqualTo((StompCommand.Error, "session resumed on another connection")));
        Assert.That(await old.WaitClosedAsync(), Is.True);
        Assert.That((taker.Connected["resumed"], taker.Connected["recovered"], taker.Connected["session"]), Is.EqualTo(("true", "true", sessionId)));
        await publisher.PublishConfirmedAsync(topic, "m4");
        var received = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            var message = await taker.Client.NextMessageAsync();
            Assert.That(message["subscription"], Is.EqualTo("t"));
            received.Add(message.BodyText);
        }

        Assert.That(received, Is.EqualTo(new[] { "m2", "m3", "m4" }), "the unacknowledged ones again, then the new one");
        Assert.That(await taker.Client.TryReceiveAsync(TimeSpan.FromMilliseconds(300)), Is.Null, "once");
    }

    [Test]
    public async Task A_session_whose_node_is_gone_is_ended_by_deleting_its_record_and_a_resume_goes_on_from_the_store()
    {
        await using var cluster = await StartAsync();
        var store = cluster.B.Services.GetRequiredService<ISessionStore>();
        var users = cluster.B.Services.GetRequiredService<IUserRegistry>();
        var ended = await GoneNodeSessionAsync(store, users, "gone-1");
        var resumable = await GoneNodeSessionAsync(store, users, "gone-2");

        Assert.That(await Control(cluster.B).TerminateAsync(ended.Id, "cleanup"), Is.True);
        Assert.That(await store.FindByTokenHashAsync(ended.TokenHash), Is.Null);
        Assert.That((await users.GetSessionsAsync("alice")).Select(u => u.SessionId), Does.Not.Contain(ended.Id));

        var (_, resumed) = await cluster.ConnectWithAsync(cluster.A, "alice", "gone-2");
        Assert.That((resumed["resumed"], resumed["session"]), Is.EqualTo(("true", resumable.Id)), "the node that held it does not listen: resumed from the store at once");
        Assert.That(cluster.Logs.Lines, Has.Some.Contains("control request 'terminate' to node gone-node: node_gone"));
    }

    // A record and a live registry entry left by a node that no longer listens (as after SIGKILL).
    private static async Task<SessionRecord> GoneNodeSessionAsync(ISessionStore store, IUserRegistry users, string token)
    {
        var record = new SessionRecord
        {
            Id = StompSessionServices.NewSessionId(),
            TokenHash = StompSession.HashToken(token),
            Principal = "alice",
            Node = "gone-node",
            CreatedAt = DateTimeOffset.UtcNow,
            LastSeenAt = DateTimeOffset.UtcNow,
        };
        await store.SaveAsync(record);
        await users.RegisterAsync("alice", record.Id, "gone-node");
        return record;
    }

    [Test]
    public async Task A_user_message_sent_on_node_B_waits_for_a_session_that_dropped_on_node_A_and_reaches_it_when_it_resumes()
    {
        var inbox = Unique();
        await using var cluster = await StartAsync();
        var (bob, connected) = await cluster.ConnectWithAsync(cluster.A, "bob");
        await bob.SubscribeAndWaitAsync("in", $"/user/queue/{inbox}");
        await bob.DisposeAsync();
        await cluster.A.WaitSessionGoneAsync(connected["session"]!);
        var directory = cluster.B.Services.GetRequiredService<IClusterControl>();
        await Eventually.That(async () => (await directory.AwayOfUserAsync("bob")).Any(a => a.SessionId == connected["session"]), "node B knows bob's session is away");

        var alice = await cluster.ConnectAsync(cluster.B, "alice");
        await alice.PublishConfirmedAsync($"/user/bob/queue/{inbox}", "while you were away");
        await ClusterTopicTests.WaitSessionSavedAsync(cluster);

        var (resumed, again) = await cluster.ConnectWithAsync(cluster.B, "bob", connected["session-token"]);
        Assert.That((again["resumed"], again["recovered"]), Is.EqualTo(("true", "true")));
        var message = await resumed.NextMessageAsync();
        Assert.That((message.BodyText, message["destination"], message["subscription"]), Is.EqualTo(("while you were away", $"/user/queue/{inbox}", "in")));
        Assert.That(await resumed.TryReceiveAsync(TimeSpan.FromMilliseconds(300)), Is.Null, "once");
        await Eventually.That(async () => (await directory.AwayOfUserAsync("bob")).Count == 0, "back: no longer away");
    }
}
