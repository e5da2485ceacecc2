using System.Net.Http.Json;
using Broker.Application;
using Broker.Durability;
using Broker.Protocol;
using Broker.Tests.Durability;
using Broker.Tests.EndToEnd;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;
using static Broker.Tests.Relay.RelayTesting;

namespace Broker.Tests.Cluster;

/// <summary>
/// Session control and the messenger across processes: node A is the Broker.Server executable (configured as README
/// "Clustering" says), node B an ASP.NET app embedding Broker.Core with a minimal API endpoint over
/// <see cref="IStompMessenger"/>, both on one real redis-server with the cluster on. The same tests run in the relay
/// shape (<see cref="Relay.RelaySessionControlProcessTests"/>), where the nodes share only the Redis session store.
/// </summary>
[TestFixture]
public class ClusterSessionControlProcessTests
{
    private RedisServer _redis = null!;

    [OneTimeSetUp]
    public async Task StartRedis() => _redis = await RedisServer.GetSharedAsync();

    /// <summary>The RabbitMQ both nodes relay to instead of the Redis cluster; null for the cluster shape.</summary>
    private protected virtual Relay.RabbitMqServer? Rabbit => null;

    [Test]
    public async Task A_session_on_the_server_process_is_terminated_through_the_embedded_nodes_session_control()
    {
        await using var nodes = await Nodes.StartAsync(_redis, Rabbit);
        var (alice, connected) = await nodes.ConnectAsync(nodes.A.TcpPort, "alice");
        await alice.SubscribeAndWaitAsync("n", $"/topic/{Unique()}");
        await nodes.WaitRegisteredAsync("alice", 1);

        var ended = await nodes.B.Services.GetRequiredService<IStompSessionControl>().TerminateAsync(connected["session"]!, "your account was suspended");

        var error = await alice.ReceiveAsync();
        Assert.That((ended, error.Command, error["message"]), Is.EqualTo((true, StompCommand.Error, "your account was suspended")));
        Assert.That(await alice.WaitClosedAsync(), Is.True);
        foreach (var port in new[] { nodes.B.TcpPort, nodes.A.TcpPort })
        {
            var (_, again) = await nodes.ConnectAsync(port, "alice", connected["session-token"]);
            Assert.That(again["resumed"], Is.EqualTo("false"));
        }
    }

    [Test]
    public async Task FindAsync_on_the_embedded_node_finds_a_session_on_the_server_process_connected_then_away()
    {
        var topic = $"/topic/{Unique()}";
        await using var nodes = await Nodes.StartAsync(_redis, Rabbit);
        var (alice, connected) = await nodes.ConnectAsync(nodes.A.TcpPort, "alice");
        await alice.SubscribeAndWaitAsync("n", topic);
        await nodes.WaitRegisteredAsync("alice", 1);
        var control = nodes.B.Services.GetRequiredService<IStompSessionControl>();
        var self = nodes.B.Services.GetRequiredService<Broker.Sessions.StompSessionServices>().NodeId;

        // Found by id once node A's write-behind has stored the new session's record.
        await Eventually.That(async () => await control.FindAsync(connected["session"]!) is not null, "found from node B", Eventually.Relaxed);
        var live = await control.FindAsync(connected["session"]!);
        await alice.DisposeAsync();
        await nodes.WaitRegisteredAsync("alice", 0);
        await Eventually.That(async () => (await control.FindAsync(connected["session"]!))?.Connected == false, "seen away", Eventually.Relaxed);
        var away = await control.FindAsync(connected["session"]!);
        var unknown = await control.FindAsync("0123456789abcdef01234567");

        Assert.That((live?.Id, live?.Login, live?.Connected, live?.Version), Is.EqualTo((connected["session"], "alice", true, "1.2")), "as node A describes its connection");
        Assert.That(live!.Node, Is.Not.Null.And.Not.EqualTo(self));
        Assert.That(live.Subscriptions.Select(s => s.Destination), Is.EqualTo(new[] { topic }));
        Assert.That((away?.Connected, away?.Node), Is.EqualTo(((bool?)false, live.Node)), "away from node A");
        Assert.That(away!.Subscriptions.Select(s => s.Destination), Is.EqualTo(new[] { topic }));
        Assert.That(unknown, Is.Null);
    }

    [Test]
    public async Task With_MaxPerUser_1_a_CONNECT_on_the_embedded_node_ends_the_session_on_the_server_process()
    {
        await using var nodes = await Nodes.StartAsync(_redis, Rabbit, maxPerUser: 1);
        var (oldest, first) = await nodes.ConnectAsync(nodes.A.TcpPort, "alice");
        await nodes.WaitRegisteredAsync("alice", 1);

        var (newest, _) = await nodes.ConnectAsync(nodes.B.TcpPort, "alice");

        var error = await oldest.ReceiveAsync();
        Assert.That((error.Command, error["message"]), Is.EqualTo((StompCommand.Error, "session ended: 'alice' opened a newer session past max-sessions-per-user (1)")));
        Assert.That(await oldest.WaitClosedAsync(), Is.True);
        await newest.SendFrameAsync(StompCommand.Begin, ("transaction", "t"), ("receipt", "alive"));
        await newest.ExpectReceiptAsync("alive");
        var (_, again) = await nodes.ConnectAsync(nodes.A.TcpPort, "alice", first["session-token"]);
        Assert.That(again["resumed"], Is.EqualTo("false"), "its record was deleted");
    }

    [Test]
    public async Task A_token_presented_on_the_embedded_node_takes_over_the_session_open_on_the_server_process_with_its_missed_messages_once()
    {
        var topic = $"/topic/{Unique()}";
        await using var nodes = await Nodes.StartAsync(_redis, Rabbit);
        var (old, connected) = await nodes.ConnectAsync(nodes.A.TcpPort, "alice");
        await old.SubscribeAndWaitAsync("t", topic, "client-individual");
        var (publisher, _) = await nodes.ConnectAsync(nodes.B.TcpPort, "bob");
        await ClusterSessionControlTests.DeliverThreeAcknowledgeOneAsync(publisher, old, topic);
        await nodes.WaitRegisteredAsync("alice", 1);

        var (taker, resumed) = await nodes.ConnectAsync(nodes.B.TcpPort, "alice", connected["session-token"]);

        await ClusterSessionControlTests.AssertTakenOverAsync(old, (taker, resumed), connected["session"]!, publisher, topic);
    }

    [Test]
    public async Task SendToUserAsync_from_an_HTTP_endpoint_on_the_embedded_node_reaches_the_user_on_the_server_process_connected_and_dropped()
    {
        var inbox = Unique();
        await using var nodes = await Nodes.StartAsync(_redis, Rabbit, inbox: inbox);
        var (bob, _) = await nodes.ConnectAsync(nodes.A.TcpPort, "bob");
        await bob.SubscribeAndWaitAsync("in", $"/user/queue/{inbox}");
        var (away, dropped) = await nodes.ConnectAsync(nodes.A.TcpPort, "bob");
        await away.SubscribeAndWaitAsync("in", $"/user/queue/{inbox}");
        await away.DisposeAsync();
        await nodes.WaitRegisteredAsync("bob", 1);
        var directory = nodes.B.Services.GetRequiredService<Broker.Cluster.IClusterControl>();
        await Eventually.That(async () => (await directory.AwayOfUserAsync("bob")).Count == 1, "the dropped session is known to be away", Eventually.Relaxed);

        using var http = new HttpClient { BaseAddress = nodes.B.HttpUri };
        var response = await http.PostAsJsonAsync("/notify/bob", new { text = "hello bob" });

        Assert.That(await response.Content.ReadFromJsonAsync<int>(), Is.EqualTo(2), "the connected session and the dropped one");
        var message = await bob.NextMessageAsync();
        Assert.That((message["destination"], message["subscription"], message.BodyText), Is.EqualTo(($"/user/queue/{inbox}", "in", "{\"text\":\"hello bob\"}")));
        var (resumed, again) = await nodes.ConnectAsync(nodes.B.TcpPort, "bob", dropped["session-token"]);
        Assert.That(again["resumed"], Is.EqualTo("true"));
        Assert.That((await resumed.NextMessageAsync()).BodyText, Is.EqualTo("{\"text\":\"hello bob\"}"), "kept for the resume, on the other node");
        Assert.That(await bob.TryReceiveAsync(TimeSpan.FromMilliseconds(300)), Is.Null, "once");
    }

    /// <summary>
    /// Node A, a Broker.Server process; node B, an embedded app; one Redis, for sessions and the cluster (or only for
    /// sessions, with <paramref name="rabbit"/> as the relay of both), under a prefix of their own.
    /// </summary>
    private sealed class Nodes : IAsyncDisposable
    {
        private readonly List<StompTestClient> _clients = [];

        private Nodes(ServerProcess a, TestServer b, IUserRegistry users)
        {
            A = a;
            B = b;
            Users = users;
        }

        public ServerProcess A { get; }

        public TestServer B { get; }

        public IUserRegistry Users { get; }

        public static async Task<Nodes> StartAsync(RedisServer redis, Relay.RabbitMqServer? rabbit, int maxPerUser = 0, string inbox = "inbox")
        {
            var prefix = $"broker-{Unique()}:";
            string[] shape = rabbit is null
                ? ["--Broker:Cluster:Kind=redis", $"--Broker:Cluster:KeyPrefix={prefix}cluster:"]
                : ["--Broker:Relay:Kind=rabbitmq", $"--Broker:Relay:RabbitMq:Uri={rabbit.Uri}"];
            var a = await ServerProcess.StartAsync(
            [
                "--Broker:Sessions:Store=redis", $"--Broker:Sessions:Redis={redis.Configuration}", $"--Broker:Sessions:RedisKeyPrefix={prefix}",
                .. shape,
                "--Broker:Users:alice=alice", "--Broker:Users:bob=bob", $"--Broker:Sessions:MaxPerUser={maxPerUser}",
            ]);
            try
            {
                await a.WaitForOutputAsync(l => l.Contains("takes control requests", StringComparison.Ordinal), 1, "node A listens for control requests");
                if (rabbit is not null)
                {
                    await a.WaitRelayConnectedAsync(1);
                }

                var b = await TestServer.StartAsync(o =>
                {
                    o.Users["alice"] = "alice";
                    o.Users["bob"] = "bob";
                }, services =>
                {
                    services.Configure<DurableSessionOptions>(o => o.MaxPerUser = maxPerUser);
                    var broker = services.AddStompBroker()
                        .AddRedisSessionStore(o =>
                        {
                            o.Configuration = redis.Configuration;
                            o.KeyPrefix = prefix;
                        });
                    if (rabbit is null)
                    {
                        broker.AddRedisCluster(o =>
                        {
                            o.Redis = redis.Configuration;
                            o.KeyPrefix = prefix + "cluster:";
                        });
                    }
                    else
                    {
                        broker.AddRabbitMqRelay(o => o.Uri = rabbit.Uri);
                    }
                }, app => app.MapPost("/notify/{login}", async (string login, Notice notice, IStompMessenger messenger) =>
                    Results.Ok(await messenger.SendToUserAsync(login, $"/queue/{inbox}", notice))));
                await Eventually.That(() => b.Services.GetRequiredService<Broker.Cluster.RedisClusterControl>().IsEnabled, "node B listens for control requests", Eventually.Relaxed);
                if (rabbit is not null && !await b.Services.GetRequiredService<Broker.Relay.RabbitMq.RabbitMqRelay>().WaitConnectedAsync(TimeSpan.FromSeconds(20)))
                {
                    await b.DisposeAsync();
                    throw new TimeoutException("node B's relay did not connect to RabbitMQ");
                }
                return new Nodes(a, b, b.Services.GetRequiredService<IUserRegistry>());
            }
            catch
            {
                await a.DisposeAsync();
                throw;
            }
        }

        public async Task<(StompTestClient Client, ReceivedFrame Connected)> ConnectAsync(int port, string login, string? token = null)
        {
            var client = await StompTestClient.ConnectTcpAsync(port);
            _clients.Add(client);
            var connected = await client.ConnectAsync(login: login, passcode: login, sessionToken: token);
            Assert.That(connected.Command, Is.EqualTo(StompCommand.Connected), connected.ToString());
            return (client, connected);
        }

        /// <summary>Waits until the user registry lists <paramref name="count"/> live sessions of <paramref name="login"/> (it is written behind the CONNECT).</summary>
        public Task WaitRegisteredAsync(string login, int count) =>
            Eventually.That(async () => (await Users.GetSessionsAsync(login)).Count == count, $"{count} session(s) of {login} registered", Eventually.Relaxed);

        public async ValueTask DisposeAsync()
        {
            foreach (var client in _clients)
            {
                await client.DisposeAsync();
            }

            await B.DisposeAsync();
            await A.DisposeAsync();
        }
    }

    private sealed record Notice(string Text);
}
