using System.Net;
using System.Text.Json;
using Broker.Protocol;
using Broker.Tests.Browser;
using Broker.Tests.Durability;
using Broker.Tests.EndToEnd;
using NUnit.Framework;
using static Broker.Tests.Relay.RelayTesting;

namespace Broker.Tests.Cluster;

/// <summary>
/// The executable's HTTP API across two Broker.Server processes sharing one real redis-server with the Redis cluster on
/// (as README "Clustering" says, with <c>Broker:Api:Key</c>): a request to node B acts on a session connected to node A.
/// </summary>
[TestFixture]
public sealed class ClusterAdminApiProcessTests
{
    private const string Key = "cluster-api-key-0123456789abcdef";

    private RedisServer _redis = null!;

    [OneTimeSetUp]
    public async Task StartRedis() => _redis = await RedisServer.GetSharedAsync();

    [Test]
    public async Task DELETE_api_sessions_id_on_node_B_ends_the_session_connected_on_node_A_and_its_token_no_longer_resumes()
    {
        await using var nodes = await StartAsync(_redis);
        var (alice, connected) = await nodes.ConnectAsync(nodes.A, "alice");
        await alice.SubscribeAndWaitAsync("n", $"/topic/{Unique()}");
        using var apiB = new AdminApiClient(nodes.B.HttpUri, Key);
        await apiB.WaitForSessionsAsync("?user=alice", s => s.Length == 1, "alice's session on A, listed on B");

        var (status, body, _) = await apiB.SendAsync(HttpMethod.Delete, $"/api/sessions/{connected["session"]}?reason={Uri.EscapeDataString("your account was suspended")}");

        Assert.That(status, Is.EqualTo(HttpStatusCode.OK), body.ToString());
        Assert.That((body.GetProperty("id").GetString(), body.GetProperty("connected").GetBoolean()), Is.EqualTo((connected["session"], true)), "found connected on node A");
        var error = await alice.ReceiveAsync();
        Assert.That((error.Command, error["message"]), Is.EqualTo((StompCommand.Error, "your account was suspended")));
        Assert.That(await alice.WaitClosedAsync(), Is.True);
        foreach (var node in new[] { nodes.A, nodes.B })
        {
            var (_, again) = await nodes.ConnectAsync(node, "alice", connected["session-token"]);
            Assert.That(again["resumed"], Is.EqualTo("false"));
        }
    }

    [Test]
    public async Task DELETE_api_users_login_sessions_on_node_B_ends_the_users_sessions_on_both_nodes()
    {
        await using var nodes = await StartAsync(_redis);
        var (onA, connectedA) = await nodes.ConnectAsync(nodes.A, "alice");
        var (onB, connectedB) = await nodes.ConnectAsync(nodes.B, "alice");
        var (bob, _) = await nodes.ConnectAsync(nodes.A, "bob");
        using var apiB = new AdminApiClient(nodes.B.HttpUri, Key);
        await apiB.WaitForSessionsAsync("?user=alice", s => s.Length == 2, "alice's sessions on A and B");

        var (status, body, _) = await apiB.SendAsync(HttpMethod.Delete, $"/api/users/alice/sessions?reason={Uri.EscapeDataString("signed out everywhere")}");

        Assert.That((status, body.GetProperty("ended").GetInt32()), Is.EqualTo((HttpStatusCode.OK, 2)), body.ToString());
        foreach (var client in new[] { onA, onB })
        {
            var error = await client.ReceiveAsync();
            Assert.That((error.Command, error["message"]), Is.EqualTo((StompCommand.Error, "signed out everywhere")));
            Assert.That(await client.WaitClosedAsync(), Is.True);
        }

        foreach (var token in new[] { connectedA["session-token"], connectedB["session-token"] })
        {
            var (_, again) = await nodes.ConnectAsync(nodes.A, "alice", token);
            Assert.That(again["resumed"], Is.EqualTo("false"));
        }

        await bob.SendFrameAsync(StompCommand.Begin, ("transaction", "t"), ("receipt", "alive"));
        await bob.ExpectReceiptAsync("alive");
    }

    [Test]
    public async Task GET_api_sessions_user_on_node_B_lists_the_session_on_node_A_with_node_As_id()
    {
        await using var nodes = await StartAsync(_redis);
        var topic = $"/topic/{Unique()}";
        var (alice, connected) = await nodes.ConnectAsync(nodes.A, "alice");
        await alice.SubscribeAndWaitAsync("n", topic);
        using var apiA = new AdminApiClient(nodes.A.HttpUri, Key);
        using var apiB = new AdminApiClient(nodes.B.HttpUri, Key);
        var nodeA = (await apiA.GetOkAsync("/api/sessions")).GetProperty("node").GetString();
        var nodeB = (await apiB.GetOkAsync("/api/sessions")).GetProperty("node").GetString();

        var sessions = await apiB.WaitForSessionsAsync("?user=alice", s => s.Length == 1, "alice's session on A, listed on B");

        var session = sessions[0];
        Assert.That(nodeA, Is.Not.EqualTo(nodeB));
        Assert.That(
            (session.GetProperty("id").GetString(), session.GetProperty("user").GetString(), session.GetProperty("node").GetString(), session.GetProperty("connected").GetBoolean()),
            Is.EqualTo((connected["session"], "alice", nodeA, true)));
        Assert.That(session.GetProperty("subscriptions").EnumerateArray().Select(s => s.GetProperty("destination").GetString()), Is.EqualTo(new[] { topic }), "as node A describes it");
    }

    private static Task<ServerNodes> StartAsync(RedisServer redis) =>
        ServerNodes.StartAsync(redis, $"--Broker:Api:Key={Key}", "--Broker:Users:alice=alice", "--Broker:Users:bob=bob");
}
