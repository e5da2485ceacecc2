using Broker.Application;
using Broker.Durability;
using Broker.Protocol;
using Broker.Relay.RabbitMq;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using NUnit.Framework;
using static Broker.Tests.Relay.RelayTesting;

namespace Broker.Tests.Relay;

/// <summary>
/// What a durable subscription's queue drops while its client is away, over real sockets against the real RabbitMQ
/// node: the queue dead-letters every drop (by <c>max-queue-bytes</c> as by <c>max-queue-length</c>) to a drops queue
/// of its own, and a resume that finds a mark there says <c>recovered:false</c>. A passive declare tells only a
/// message count, so without the mark a drop by bytes would resume <c>recovered:true</c>.
/// </summary>
[TestFixture]
public sealed class RelayDropMarkTests
{
    private const int MaxQueueBytes = 1000;

    private RabbitMqServer _server = null!;

    [OneTimeSetUp]
    public async Task StartServer() => _server = await RabbitMqServer.GetSharedAsync();

    [Test]
    public async Task A_resume_after_its_queue_dropped_by_max_queue_bytes_says_recovered_false_and_gets_the_newest()
    {
        await using var server = await StartRelayServerAsync();
        var topic = $"/topic/{Unique()}.bytes";
        var (_, token, _) = await SubscribeAndGoAwayAsync(server, topic);

        // 3,000 bytes of bodies for a queue of 1,000: each message is under the limit, and ten are far under
        // max-queue-length, so it is the byte limit that drops (the oldest seven; three of 300 bytes fit).
        await using var publisher = await ConnectAsync(server);
        for (var i = 1; i <= 10; i++)
        {
            await publisher.PublishConfirmedAsync(topic, Body(i));
        }

        await using var resumed = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        var again = await resumed.ConnectAsync(login: "guest", passcode: "guest", sessionToken: token);

        Assert.That(again["resumed"], Is.EqualTo("true"));
        Assert.That(again["recovered"], Is.EqualTo("false"), "seven messages were dropped by max-queue-bytes");
        Assert.That(await BodiesAsync(resumed, 3), Is.EqualTo(new[] { Body(8), Body(9), Body(10) }), "the newest, in order");
        Assert.That(await resumed.TryReceiveAsync(TimeSpan.FromMilliseconds(300)), Is.Null, "nothing more");
    }

    [Test]
    public async Task A_resume_whose_queue_stayed_under_both_limits_says_recovered_true_and_gets_everything()
    {
        await using var server = await StartRelayServerAsync();
        var topic = $"/topic/{Unique()}.under";
        var (_, token, _) = await SubscribeAndGoAwayAsync(server, topic);
        await using var publisher = await ConnectAsync(server);
        for (var i = 1; i <= 3; i++)
        {
            await publisher.PublishConfirmedAsync(topic, Body(i)); // 900 bytes: under max-queue-bytes
        }

        await using var resumed = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        var again = await resumed.ConnectAsync(login: "guest", passcode: "guest", sessionToken: token);

        Assert.That(again["resumed"], Is.EqualTo("true"));
        Assert.That(again["recovered"], Is.EqualTo("true"));
        Assert.That(await BodiesAsync(resumed, 3), Is.EqualTo(new[] { Body(1), Body(2), Body(3) }));
        Assert.That(await resumed.TryReceiveAsync(TimeSpan.FromMilliseconds(300)), Is.Null, "nothing twice");
    }

    // RabbitMQ takes a message bigger than the queue's byte limit and drops it at once, with every older one: the
    // drops queue has no byte limit, so even that drop leaves a mark.
    [Test]
    public async Task A_message_bigger_than_max_queue_bytes_still_leaves_a_mark()
    {
        await using var server = await StartRelayServerAsync();
        var topic = $"/topic/{Unique()}.big";
        var (_, token, _) = await SubscribeAndGoAwayAsync(server, topic);
        await using var publisher = await ConnectAsync(server);
        await publisher.PublishConfirmedAsync(topic, new string('B', 3 * MaxQueueBytes));

        await using var resumed = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        var again = await resumed.ConnectAsync(login: "guest", passcode: "guest", sessionToken: token);
        await publisher.PublishConfirmedAsync(topic, "after");

        Assert.That(again["recovered"], Is.EqualTo("false"));
        Assert.That((await resumed.NextMessageAsync(Patience)).BodyText, Is.EqualTo("after"), "the one that fits, and nothing of the one that did not");
    }

    // Queues declared before drops queues existed have no dead-letter target, and RabbitMQ refuses a declare that
    // would add one. The first resume finds no drops queue and promises nothing (it declares one); later resumes tell
    // by length only, as before; and the relay's channels stay up throughout.
    [Test]
    public async Task A_queue_declared_without_a_drops_queue_resumes_recovered_false_once_then_as_before_and_the_relay_stays_up()
    {
        await using var server = await StartRelayServerAsync();
        var key = $"{Unique()}.legacy";
        var topic = $"/topic/{key}";
        var (session, token, queue) = await SubscribeAndGoAwayAsync(server, topic);
        var drops = RelayDestinations.DropsQueueName(queue);
        await ReplaceQueueAsync(queue, key, new Dictionary<string, object?>
        {
            // As the relay declared a durable subscription's queue before it had a drops queue.
            ["x-max-length"] = 100_000,
            ["x-overflow"] = "drop-head",
            ["x-max-length-bytes"] = (long)MaxQueueBytes,
            ["x-expires"] = (long)TimeSpan.FromHours(24).TotalMilliseconds,
            ["x-single-active-consumer"] = true,
        });

        await using var publisher = await ConnectAsync(server);
        await publisher.PublishConfirmedAsync(topic, "l1");
        await publisher.PublishConfirmedAsync(topic, "l2");
        var resumed = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        var again = await resumed.ConnectAsync(login: "guest", passcode: "guest", sessionToken: token);

        Assert.That(again["resumed"], Is.EqualTo("true"));
        Assert.That(again["recovered"], Is.EqualTo("false"), "no drops queue: a drop by bytes would have left no mark");
        Assert.That(await BodiesAsync(resumed, 2), Is.EqualTo(new[] { "l1", "l2" }));
        await publisher.PublishConfirmedAsync(topic, "l3");
        Assert.That((await resumed.NextMessageAsync(Patience)).BodyText, Is.EqualTo("l3"), "the relay's channels were not touched");
        Assert.That(await QueueExistsAsync(_server, drops), Is.True, "its drops queue is declared for next time");

        await resumed.DisposeAsync();
        await server.WaitSessionGoneAsync(session);
        await publisher.PublishConfirmedAsync(topic, "l4");
        await using var later = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        var afterwards = await later.ConnectAsync(login: "guest", passcode: "guest", sessionToken: token);

        Assert.That(afterwards["recovered"], Is.EqualTo("true"), "under its length limit, as before");
        Assert.That((await later.NextMessageAsync(Patience)).BodyText, Is.EqualTo("l4"));
        var listed = Names(await _server.CtlAsync("list_queues", "-q", "name", "arguments")).Single(line => line.StartsWith(queue + "\t", StringComparison.Ordinal));
        Assert.That(listed, Does.Contain("x-single-active-consumer").And.Not.Contain("x-dead-letter"), "the queue kept its own arguments");
    }

    // A queue declared with other limits than this node's (another node's settings, or changed ones) is refused a
    // declare with this node's arguments just as a queue from before drops queues is: with its drops queue gone, a drop
    // by bytes left no mark, and the resume must not promise anything.
    [Test]
    public async Task A_queue_with_other_limits_whose_drops_queue_is_gone_says_recovered_false_after_a_drop_by_bytes()
    {
        await using var server = await StartRelayServerAsync();
        var key = $"{Unique()}.otherlimits";
        var topic = $"/topic/{key}";
        var (_, token, queue) = await SubscribeAndGoAwayAsync(server, topic);
        var drops = RelayDestinations.DropsQueueName(queue);
        await ReplaceQueueAsync(queue, key, new Dictionary<string, object?>
        {
            // As this version declares it, on a node whose Broker:MaxQueueBytes is 600, not 1,000.
            ["x-max-length"] = 100_000,
            ["x-overflow"] = "drop-head",
            ["x-max-length-bytes"] = 600L,
            ["x-expires"] = (long)TimeSpan.FromHours(24).TotalMilliseconds,
            ["x-single-active-consumer"] = true,
            ["x-dead-letter-exchange"] = string.Empty,
            ["x-dead-letter-routing-key"] = drops,
        });

        // 900 bytes for a queue of 600: the oldest is dropped by bytes, and dead-lettered to a drops queue that is not there.
        await using var publisher = await ConnectAsync(server);
        for (var i = 1; i <= 3; i++)
        {
            await publisher.PublishConfirmedAsync(topic, Body(i));
        }

        await using var resumed = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        var again = await resumed.ConnectAsync(login: "guest", passcode: "guest", sessionToken: token);

        Assert.That(again["resumed"], Is.EqualTo("true"));
        Assert.That(again["recovered"], Is.EqualTo("false"), "one message was dropped by max-queue-bytes and nothing marked it");
        Assert.That(await BodiesAsync(resumed, 2), Is.EqualTo(new[] { Body(2), Body(3) }), "the newest, in order");
        Assert.That(await QueueExistsAsync(_server, drops), Is.True, "its drops queue is declared for next time");
    }

    // Its drops queue was deleted (or expired): a drop meanwhile would have left no mark, so nothing can be promised.
    [Test]
    public async Task A_resume_whose_drops_queue_is_gone_says_recovered_false_and_still_delivers()
    {
        await using var server = await StartRelayServerAsync();
        var topic = $"/topic/{Unique()}.nodrops";
        var (_, token, queue) = await SubscribeAndGoAwayAsync(server, topic);
        var (connection, channel) = await OpenAmqpAsync(_server);
        await using (connection)
        {
            await channel.QueueDeleteAsync(RelayDestinations.DropsQueueName(queue), ifUnused: false, ifEmpty: false);
        }

        await using var publisher = await ConnectAsync(server);
        await publisher.PublishConfirmedAsync(topic, "kept");
        await using var resumed = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        var again = await resumed.ConnectAsync(login: "guest", passcode: "guest", sessionToken: token);

        Assert.That(again["resumed"], Is.EqualTo("true"));
        Assert.That(again["recovered"], Is.EqualTo("false"));
        Assert.That((await resumed.NextMessageAsync(Patience)).BodyText, Is.EqualTo("kept"));
        Assert.That(await QueueExistsAsync(_server, RelayDestinations.DropsQueueName(queue)), Is.True, "declared again, for the next resume");
    }

    // A drops queue has no consumer, so RabbitMQ would expire it while its client stays connected (its queue is kept
    // by the consumer): the relay renews it. Seen from the side (rabbitmqctl), since a passive declare would renew it.
    [Test]
    public async Task A_drops_queue_outlives_its_expiry_while_the_client_stays_and_the_resume_after_says_recovered_true()
    {
        // Long enough for the resume after the client leaves (the queue expires this long after its consumer went: the
        // drop, the publish and the resume must fit in it on a loaded machine), short enough for the witness to expire
        // within the test: 1.5 times as long.
        var expiry = TimeSpan.FromSeconds(10);
        await using var server = await StartRelayServerAsync(relay: o => o.DurableQueueExpiry = expiry);
        var topic = $"/topic/{Unique()}.stays";
        var (first, connected) = await ConnectDurableAsync(server);
        await first.SubscribeAndWaitAsync("s", topic);
        var drops = RelayDestinations.DropsQueueName(RelayDestinations.DurableQueueName(Prefix(server), connected["session"]!, "s"));

        // A queue with the drops queue's expiry, declared after it and never used: once RabbitMQ has expired it, the
        // drops queue has outlived its own expiry too.
        var witness = Unique();
        var (connection, channel) = await OpenAmqpAsync(_server);
        await using (connection)
        {
            await channel.QueueDeclareAsync(witness, durable: false, exclusive: false, autoDelete: false,
                new Dictionary<string, object?> { ["x-expires"] = (long)(expiry * 1.5).TotalMilliseconds });
        }

        await Eventually.That(async () => !Names(await _server.CtlAsync("list_queues", "-q", "name")).Contains(witness), "the witness queue expired", expiry * 1.5 + Patience);
        Assert.That(Names(await _server.CtlAsync("list_queues", "-q", "name")), Does.Contain(drops), "renewed while the subscription is attached");

        await first.DisposeAsync();
        await server.WaitSessionGoneAsync(connected["session"]!);
        await using var publisher = await ConnectAsync(server);
        await publisher.PublishConfirmedAsync(topic, "while away");
        await using var resumed = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        var again = await resumed.ConnectAsync(login: "guest", passcode: "guest", sessionToken: connected["session-token"]);

        Assert.That(again["recovered"], Is.EqualTo("true"));
        Assert.That((await resumed.NextMessageAsync(Patience)).BodyText, Is.EqualTo("while away"));
    }

    [Test]
    public async Task UNSUBSCRIBE_deletes_the_drops_queue_with_the_subscription_queue()
    {
        await using var server = await StartRelayServerAsync();
        var (client, connected) = await ConnectDurableAsync(server);
        await using (client)
        {
            await client.SubscribeAndWaitAsync("s", $"/topic/{Unique()}.gone");
            var queue = RelayDestinations.DurableQueueName(Prefix(server), connected["session"]!, "s");
            Assert.That(await QueueExistsAsync(_server, RelayDestinations.DropsQueueName(queue)), Is.True);

            await client.SendFrameAsync(StompCommand.Unsubscribe, ("id", "s"), ("receipt", "u"));
            await client.ExpectReceiptAsync("u");

            await Eventually.That(async () => !await QueueExistsAsync(_server, queue) && !await QueueExistsAsync(_server, RelayDestinations.DropsQueueName(queue)),
                "UNSUBSCRIBE deleted both queues", Patience);
        }
    }

    // An away session ended for good will not resume: its queue and its drops queue go at once, not at their expiry.
    [Test]
    public async Task Terminating_an_away_session_deletes_its_queue_and_drops_queue()
    {
        await using var server = await StartRelayServerAsync();
        var (session, _, queue) = await SubscribeAndGoAwayAsync(server, $"/topic/{Unique()}.terminated");
        Assert.That(await QueueExistsAsync(_server, queue) && await QueueExistsAsync(_server, RelayDestinations.DropsQueueName(queue)), Is.True, "kept while it is away");

        Assert.That(await server.Services.GetRequiredService<IStompSessionControl>().TerminateAsync(session, "account closed"), Is.True);

        await Eventually.That(async () => !await QueueExistsAsync(_server, queue) && !await QueueExistsAsync(_server, RelayDestinations.DropsQueueName(queue)),
            "terminating the away session deleted both queues", Patience);
    }

    [Test]
    public async Task An_away_session_found_expired_has_its_queue_and_drops_queue_deleted()
    {
        // The queues themselves would expire only after an hour: what deletes them here is the session's expiry.
        await using var server = await StartRelayServerAsync(
            relay: o => o.DurableQueueExpiry = TimeSpan.FromHours(1),
            services: s => s.Configure<DurableSessionOptions>(o =>
            {
                o.Ttl = TimeSpan.FromSeconds(2);
                o.CleanupInterval = TimeSpan.FromMilliseconds(500);
            }));
        var (client, connected) = await ConnectDurableAsync(server);
        await client.SubscribeAndWaitAsync("s", $"/topic/{Unique()}.expired");
        var queue = RelayDestinations.DurableQueueName(Prefix(server), connected["session"]!, "s");
        Assert.That(await QueueExistsAsync(_server, RelayDestinations.DropsQueueName(queue)), Is.True);
        await client.DisposeAsync();

        await Eventually.That(async () => !await QueueExistsAsync(_server, queue) && !await QueueExistsAsync(_server, RelayDestinations.DropsQueueName(queue)),
            "the session's expiry deleted both queues", Patience);
    }

    private async Task ReplaceQueueAsync(string queue, string key, Dictionary<string, object?> arguments)
    {
        var (connection, channel) = await OpenAmqpAsync(_server);
        await using (connection)
        {
            await channel.QueueDeleteAsync(queue, ifUnused: false, ifEmpty: false);
            await channel.QueueDeleteAsync(RelayDestinations.DropsQueueName(queue), ifUnused: false, ifEmpty: false);
            await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false, arguments);
            await channel.QueueBindAsync(queue, RelayDestinations.TopicExchange, key);
        }
    }

    private static string Body(int i) => $"b{i:00}".PadRight(300, 'x');

    private static string[] Names(string listing) => listing.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static string Prefix(TestServer server) => server.Services.GetRequiredService<IOptions<RabbitMqRelayOptions>>().Value.QueuePrefix;

    private static async Task<string[]> BodiesAsync(StompTestClient client, int count)
    {
        var bodies = new string[count];
        for (var i = 0; i < count; i++)
        {
            var message = await client.NextMessageAsync(Patience);
            Assert.That(message.Command, Is.EqualTo(StompCommand.Message));
            bodies[i] = message.BodyText;
        }

        return bodies;
    }

    // A durable session subscribes to the topic as "s", then its connection drops (no DISCONNECT): its id, its token,
    // and the name of the subscription's queue.
    private static async Task<(string Session, string Token, string Queue)> SubscribeAndGoAwayAsync(TestServer server, string topic)
    {
        var (client, connected) = await ConnectDurableAsync(server);
        await client.SubscribeAndWaitAsync("s", topic);
        await client.DisposeAsync();
        var session = connected["session"]!;
        await server.WaitSessionGoneAsync(session);
        return (session, connected["session-token"]!, RelayDestinations.DurableQueueName(Prefix(server), session, "s"));
    }

    private static async Task<(StompTestClient Client, ReceivedFrame Connected)> ConnectDurableAsync(TestServer server)
    {
        var client = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        var connected = await client.ConnectAsync(login: "guest", passcode: "guest");
        Assert.That(connected["session-token"], Is.Not.Null, "a durable session");
        return (client, connected);
    }

    private static async Task<StompTestClient> ConnectAsync(TestServer server)
    {
        var client = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await client.ConnectAsync(login: "guest", passcode: "guest");
        return client;
    }

    private async Task<TestServer> StartRelayServerAsync(Action<RabbitMqRelayOptions>? relay = null, Action<IServiceCollection>? services = null)
    {
        var server = await TestServer.StartAsync(o => o.MaxQueueBytes = MaxQueueBytes, services: s =>
        {
            new StompBrokerBuilder(s).AddRabbitMqRelay(o =>
            {
                o.Uri = _server.Uri;
                relay?.Invoke(o);
            });
            services?.Invoke(s);
        });
        if (!await server.Services.GetRequiredService<RabbitMqRelay>().WaitConnectedAsync(Patience))
        {
            await server.DisposeAsync();
            throw new TimeoutException("the relay did not connect to RabbitMQ");
        }

        return server;
    }
}
