using System.Globalization;
using Broker.Durability;
using Broker.Protocol;
using Broker.Relay.RabbitMq;
using Broker.Tests.Durability;
using Broker.Tests.EndToEnd;
using NUnit.Framework;
using static Broker.Tests.Relay.RelayTesting;

namespace Broker.Tests.Relay;

/// <summary>
/// The full shape "several nodes, full": two Broker.Server processes configured with
/// <c>Broker:Relay:Kind=rabbitmq</c> and Redis sessions, as README "Clustering" runs them. Topic, queue
/// and user-destination messages cross nodes through RabbitMQ, and a session whose node was killed
/// resumes on the other with what was published meanwhile.
/// </summary>
[TestFixture]
public sealed class RelayServerExecutableTests
{
    private RabbitMqServer _rabbit = null!;
    private RedisServer _redis = null!;

    [OneTimeSetUp]
    public async Task StartServers()
    {
        _rabbit = await RabbitMqServer.GetSharedAsync();
        _redis = await RedisServer.GetSharedAsync();
    }

    [Test]
    public async Task Topic_messages_cross_nodes_to_exact_and_wildcard_subscriptions()
    {
        var p = Unique();
        await using var cluster = await Cluster.StartAsync(_rabbit, _redis);

        var exactOnB = await cluster.ConnectAsync(cluster.B);
        await exactOnB.SubscribeAndWaitAsync("eur", $"/topic/{p}.prices.eur");
        var starOnB = await cluster.ConnectAsync(cluster.B);
        await starOnB.SubscribeAndWaitAsync("prices", $"/topic/{p}.prices.*");
        var hashOnB = await cluster.ConnectAsync(cluster.B);
        await hashOnB.SubscribeAndWaitAsync("all", $"/topic/{p}.#");
        var onA = await cluster.ConnectAsync(cluster.A);
        await onA.SubscribeAndWaitAsync("news", $"/topic/{p}.news.*");

        var publisherOnA = await cluster.ConnectAsync(cluster.A);
        await publisherOnA.PublishConfirmedAsync($"/topic/{p}.prices.eur", "1.08", ("source", "ecb"));
        await publisherOnA.PublishConfirmedAsync($"/topic/{p}.prices.usd", "1.00");
        var publisherOnB = await cluster.ConnectAsync(cluster.B);
        await publisherOnB.PublishConfirmedAsync($"/topic/{p}.news.eu", "headline");

        var eur = await exactOnB.NextMessageAsync();
        Assert.That(eur.BodyText, Is.EqualTo("1.08"), "a SEND on A reaches an exact subscription on B");
        Assert.That(eur["destination"], Is.EqualTo($"/topic/{p}.prices.eur"));
        Assert.That(eur["subscription"], Is.EqualTo("eur"));
        Assert.That(eur["source"], Is.EqualTo("ecb"), "user headers cross nodes");

        var star = new[] { await starOnB.NextMessageAsync(), await starOnB.NextMessageAsync() };
        Assert.That(star.Select(m => (m["destination"], m.BodyText)), Is.EqualTo(new[]
        {
            ($"/topic/{p}.prices.eur", "1.08"),
            ($"/topic/{p}.prices.usd", "1.00"),
        }), "a SEND on A reaches a '*' subscription on B, with the destination it was sent to");
        Assert.That(star.Select(m => m["subscription"]), Is.All.EqualTo("prices"));

        var hash = new[] { await hashOnB.NextMessageAsync(), await hashOnB.NextMessageAsync(), await hashOnB.NextMessageAsync() };
        Assert.That(hash.Select(m => m.BodyText), Is.EquivalentTo(new[] { "1.08", "1.00", "headline" }), "a '#' subscription on B gets the SENDs of both nodes");

        var news = await onA.NextMessageAsync();
        Assert.That((news["destination"], news.BodyText), Is.EqualTo(($"/topic/{p}.news.eu", "headline")), "a SEND on B reaches a subscription on A");

        Assert.That(await NextFrameOrNullAsync(exactOnB), Is.Null, "the exact subscription got only its key, once");
        Assert.That(await NextFrameOrNullAsync(starOnB), Is.Null, "nothing twice");
        Assert.That(await NextFrameOrNullAsync(hashOnB), Is.Null, "nothing twice");
        Assert.That(await NextFrameOrNullAsync(onA), Is.Null, "nothing twice");
    }

    [Test]
    public async Task Queue_consumers_on_two_nodes_share_its_messages_with_none_lost_or_doubled()
    {
        const int Count = 100;
        var queue = $"/queue/{Unique()}-jobs";
        await using var cluster = await Cluster.StartAsync(_rabbit, _redis);
        var workerOnA = await cluster.ConnectAsync(cluster.A);
        await workerOnA.SubscribeAndWaitAsync("jobs", queue, "client-individual");
        var workerOnB = await cluster.ConnectAsync(cluster.B);
        await workerOnB.SubscribeAndWaitAsync("jobs", queue, "client-individual");

        // Sent from both nodes: the queue is one RabbitMQ queue, whichever node a SEND arrives at.
        var publisherOnA = await cluster.ConnectAsync(cluster.A);
        var publisherOnB = await cluster.ConnectAsync(cluster.B);
        for (var i = 1; i <= Count; i++)
        {
            await (i % 2 == 0 ? publisherOnB : publisherOnA).PublishConfirmedAsync(queue, i.ToString(CultureInfo.InvariantCulture));
        }

        var taken = 0;
        async Task<List<int>> WorkAsync(StompTestClient worker)
        {
            var got = new List<int>();
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            while (Volatile.Read(ref taken) < Count && DateTime.UtcNow < deadline)
            {
                if (await worker.TryReceiveAsync(TimeSpan.FromMilliseconds(200)) is not { } frame)
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

        var shares = await Task.WhenAll(WorkAsync(workerOnA), WorkAsync(workerOnB));
        var (onA, onB) = (shares[0], shares[1]);
        TestContext.Out.WriteLine($"consumer on A took {onA.Count}, consumer on B took {onB.Count}");

        Assert.That(onA.Concat(onB).Order(), Is.EqualTo(Enumerable.Range(1, Count)), "every message once, across both nodes");
        Assert.That(onA, Is.Not.Empty, "the consumer on A got a share");
        Assert.That(onB, Is.Not.Empty, "the consumer on B got a share");
        Assert.That(onA, Is.Ordered, "each consumer gets its share in queue order");
        Assert.That(onB, Is.Ordered, "each consumer gets its share in queue order");
        Assert.That(await NextFrameOrNullAsync(workerOnA), Is.Null, "nothing doubled");
        Assert.That(await NextFrameOrNullAsync(workerOnB), Is.Null, "nothing doubled");
    }

    [Test]
    public async Task A_user_destination_reaches_the_users_sessions_on_other_nodes()
    {
        var inbox = "/user/queue/" + Unique();
        await using var cluster = await Cluster.StartAsync(_rabbit, _redis);

        var (aliceOnB, aliceOnBSession) = await cluster.ConnectAsAsync(cluster.B, "alice");
        await aliceOnB.SubscribeAndWaitAsync("inbox", inbox);
        var (aliceOnA, aliceOnASession) = await cluster.ConnectAsAsync(cluster.A, "alice"); // her second tab
        await aliceOnA.SubscribeAndWaitAsync("inbox", inbox);
        var (bobOnB, _) = await cluster.ConnectAsAsync(cluster.B, "bob");
        await bobOnB.SubscribeAndWaitAsync("inbox", inbox);

        // A sends to alice's sessions on other nodes as the user registry lists them, and the registry
        // is written behind the CONNECT: wait until Redis lists her session on B.
        using (var registry = cluster.OpenStore())
        {
            await Eventually.That(async () => (await registry.GetSessionsAsync("alice")).Any(s => s.SessionId == aliceOnBSession), "alice's session on B registered", RelayTesting.Patience);
        }

        var (bobOnA, _) = await cluster.ConnectAsAsync(cluster.A, "bob");
        await bobOnA.PublishConfirmedAsync("/user/alice" + inbox["/user".Length..], "hi alice", ("from", "bob"));

        var onB = await aliceOnB.NextMessageAsync();
        Assert.That(onB.BodyText, Is.EqualTo("hi alice"), "bob's SEND on A reached alice's session on B");
        Assert.That(onB["destination"], Is.EqualTo(inbox), "what she subscribed to; the per-session queue never shows");
        Assert.That(onB["subscription"], Is.EqualTo("inbox"));
        Assert.That(onB["from"], Is.EqualTo("bob"));

        var onA = await aliceOnA.NextMessageAsync();
        Assert.That((onA.BodyText, onA["destination"]), Is.EqualTo(("hi alice", inbox)), "and her session on A");
        Assert.That(onA["message-id"], Is.EqualTo(onB["message-id"]), "one message, one copy per session");
        Assert.That(aliceOnASession, Is.Not.EqualTo(aliceOnBSession));

        Assert.That(await NextFrameOrNullAsync(aliceOnB), Is.Null, "once");
        Assert.That(await NextFrameOrNullAsync(aliceOnA), Is.Null, "once");
        Assert.That(await NextFrameOrNullAsync(bobOnB), Is.Null, "another user's inbox of the same name gets nothing");
    }

    [Test]
    public async Task A_durable_session_whose_node_was_SIGKILLed_resumes_on_another_node_with_all_200_messages_in_order()
    {
        const int Count = 200;
        var topic = $"/topic/{Unique()}.seq";
        await using var cluster = await Cluster.StartAsync(_rabbit, _redis);

        var onA = await cluster.OpenAsync(cluster.A);
        var connected = await onA.ConnectAsync();
        await onA.SubscribeAndWaitAsync("seq", topic);
        var publisher = await cluster.ConnectAsync(cluster.B);
        await publisher.PublishConfirmedAsync(topic, "0");
        Assert.That((await onA.NextMessageAsync()).BodyText, Is.EqualTo("0"), "published on B, delivered on A");

        // The session reaches Redis behind the client's back, and its delivery is acknowledged to
        // RabbitMQ once written; wait for both, as the test is about what comes after.
        using (var store = cluster.OpenStore())
        {
            await Eventually.That(async () => (await store.FindByTokenHashAsync(Broker.Sessions.StompSession.HashToken(connected["session-token"]!)))?.Subscriptions.Count == 1, "the session reached Redis", RelayTesting.Patience);
        }

        var queue = RelayDestinations.DurableQueueName(new RabbitMqRelayOptions().QueuePrefix, connected["session"]!, "seq");
        await Eventually.That(async () => (await _rabbit.CtlAsync("list_queues", "-q", "--no-table-headers", "name", "messages_unacknowledged"))
            .Split('\n').Any(line => line.StartsWith(queue, StringComparison.Ordinal) && line.TrimEnd().EndsWith("\t0", StringComparison.Ordinal)), "the delivery on A acknowledged", RelayTesting.Patience);
        await cluster.A.KillAsync();

        for (var i = 1; i <= Count; i++)
        {
            await publisher.PublishConfirmedAsync(topic, i.ToString(CultureInfo.InvariantCulture));
        }

        var resumed = await cluster.OpenAsync(cluster.B);
        var again = await resumed.ConnectAsync(sessionToken: connected["session-token"]);

        Assert.That(again.Command, Is.EqualTo(StompCommand.Connected), again.ToString());
        Assert.That(again["session"], Is.EqualTo(connected["session"]));
        Assert.That(again["resumed"], Is.EqualTo("true"), cluster.B.Output);
        Assert.That(again["recovered"], Is.EqualTo("true"), "the session's queue kept what was published while its node was dead");
        var received = new List<string>();
        for (var i = 1; i <= Count; i++)
        {
            var message = await resumed.ReceiveAsync();
            Assert.That(message.Command, Is.EqualTo(StompCommand.Message), message.ToString());
            Assert.That(message["subscription"], Is.EqualTo("seq"));
            Assert.That(message["destination"], Is.EqualTo(topic));
            received.Add(message.BodyText);
        }

        Assert.That(received, Is.EqualTo(Enumerable.Range(1, Count).Select(i => i.ToString(CultureInfo.InvariantCulture))), "1..200, in order, none twice");
        Assert.That(await NextFrameOrNullAsync(resumed), Is.Null, "nothing after 200: none twice");
    }

    // What a subscriber receives beyond what it should: nothing within a moment (not a timing assertion:
    // a late duplicate would be caught by any later check just as well).
    private static Task<ReceivedFrame?> NextFrameOrNullAsync(StompTestClient client) => client.TryReceiveAsync(TimeSpan.FromMilliseconds(300));

    /// <summary>Two Broker.Server processes sharing the RabbitMQ node and Redis, each with its relay connected.</summary>
    private sealed class Cluster : IAsyncDisposable
    {
        private readonly string _redisConfiguration;
        private readonly List<StompTestClient> _clients = [];

        private Cluster(ServerProcess a, ServerProcess b, string redisConfiguration, string keyPrefix)
        {
            A = a;
            B = b;
            _redisConfiguration = redisConfiguration;
            KeyPrefix = keyPrefix;
        }

        public ServerProcess A { get; }

        public ServerProcess B { get; }

        public string KeyPrefix { get; }

        public static async Task<Cluster> StartAsync(RabbitMqServer rabbit, RedisServer redis)
        {
            var keyPrefix = $"broker-{Unique()}:";
            string[] args =
            [
                "--Broker:Sessions:Store=redis", $"--Broker:Sessions:Redis={redis.Configuration}", $"--Broker:Sessions:RedisKeyPrefix={keyPrefix}",
                "--Broker:Relay:Kind=rabbitmq", $"--Broker:Relay:RabbitMq:Uri={rabbit.Uri}",
                "--Broker:Users:alice=alice-secret", "--Broker:Users:bob=bob-secret",
                // Users are configured and the tests also connect anonymously, which must then be allowed outright.
                "--Broker:AllowAnonymous=true",
            ];
            var a = await ServerProcess.StartAsync(args);
            ServerProcess? b = null;
            try
            {
                b = await ServerProcess.StartAsync(args);
                await a.WaitRelayConnectedAsync(1);
                await b.WaitRelayConnectedAsync(1);
                return new Cluster(a, b, redis.Configuration, keyPrefix);
            }
            catch
            {
                await a.DisposeAsync();
                if (b is not null)
                {
                    await b.DisposeAsync();
                }

                throw;
            }
        }

        /// <summary>An anonymous client of <paramref name="node"/>, closed with the cluster.</summary>
        public async Task<StompTestClient> ConnectAsync(ServerProcess node)
        {
            var client = await OpenAsync(node);
            var connected = await client.ConnectAsync();
            Assert.That(connected.Command, Is.EqualTo(StompCommand.Connected), connected.ToString());
            return client;
        }

        /// <summary>A client of <paramref name="node"/> logged in as <paramref name="login"/>, and its session id.</summary>
        public async Task<(StompTestClient Client, string Session)> ConnectAsAsync(ServerProcess node, string login)
        {
            var client = await OpenAsync(node);
            var connected = await client.ConnectAsync(login: login, passcode: login + "-secret");
            Assert.That(connected["user-name"], Is.EqualTo(login), connected.ToString());
            return (client, connected["session"]!);
        }

        /// <summary>The Redis store and user registry the nodes share, opened by the test.</summary>
        public RedisSessionStore OpenStore() => new(new RedisSessionStoreOptions { Configuration = _redisConfiguration, KeyPrefix = KeyPrefix });

        /// <summary>A socket to <paramref name="node"/>, not yet CONNECTed, closed with the cluster.</summary>
        public async Task<StompTestClient> OpenAsync(ServerProcess node)
        {
            var client = await StompTestClient.ConnectTcpAsync(node.TcpPort);
            _clients.Add(client);
            return client;
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var client in _clients)
            {
                await client.DisposeAsync();
            }

            await A.DisposeAsync();
            await B.DisposeAsync();
        }
    }
}
