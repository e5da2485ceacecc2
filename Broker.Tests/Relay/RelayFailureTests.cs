using System.Globalization;
using Broker.Protocol;
using NUnit.Framework;
using static Broker.Tests.Relay.RelayTesting;

namespace Broker.Tests.Relay;

/// <summary>
/// RabbitMQ going away under the relay: connections closed during traffic, the RabbitMQ application
/// stopped and started, RabbitMQ unreachable when the relay starts. STOMP clients stay connected and
/// subscribed; durable subscriptions lose nothing (a message may come twice: delivery is at least once).
/// These tests stop and start the shared node, so they run alone (NUnit runs unmarked fixtures one at a time).
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class RelayFailureTests
{
    private RabbitMqServer _server = null!;

    [OneTimeSetUp]
    public async Task StartServer() => _server = await RabbitMqServer.GetSharedAsync();

    [Test]
    public async Task Connections_closed_during_traffic_are_reopened_and_nothing_is_lost()
    {
        var p = Unique();
        var topic = $"/topic/{p}.ticks";
        var queue = $"/queue/{p}-work";
        await using var durable = await StartAsync(_server, durable: true);
        await using var plain = await StartAsync(_server);
        var subscriber = await durable.OpenConnectedAsync();
        await subscriber.SubscribeAndWaitAsync("ticks", topic);
        var worker = await durable.OpenConnectedAsync();
        await worker.SubscribeAndWaitAsync("work", queue, "client-individual");
        var transient = await plain.OpenConnectedAsync();
        await transient.SubscribeAndWaitAsync("ticks", topic);
        var publisher = await durable.OpenConnectedAsync();

        var published = 0;
        var closed = false;
        var afterClose = 0;
        var publishing = Task.Run(async () =>
        {
            while (!Volatile.Read(ref closed) || afterClose < 100)
            {
                var n = published.ToString(CultureInfo.InvariantCulture);
                await publisher.PublishConfirmedAsync(topic, n);
                await publisher.PublishConfirmedAsync(queue, n);
                published++;
                if (Volatile.Read(ref closed))
                {
                    afterClose++;
                }
            }
        });
        await Eventually.That(() => Volatile.Read(ref published) >= 50 || publishing.IsCompleted, "traffic flowing", RelayTesting.Patience);
        await _server.CloseAllConnectionsAsync();
        Volatile.Write(ref closed, true);
        await publishing.WaitAsync(TimeSpan.FromSeconds(60));

        var expected = Enumerable.Range(0, published).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToList();
        var ticks = await ReceiveAllAsync(subscriber, expected, ack: false);
        var work = await ReceiveAllAsync(worker, expected, ack: true);
        TestContext.Out.WriteLine($"published {published}; topic deliveries {ticks.Count}, queue deliveries {work.Count} (duplicates are redeliveries)");

        Assert.That(ticks.Distinct(), Is.EquivalentTo(expected), "the durable subscriber lost nothing");
        Assert.That(work.Distinct(), Is.EquivalentTo(expected), "the queue lost nothing");

        // A subscription of a non-durable session lives in an exclusive queue, made again on reconnect:
        // it may miss what was sent while it was gone, but it receives again without re-subscribing.
        await publisher.PublishConfirmedAsync(topic, "after");
        Assert.That(await ReceiveUntilAsync(transient, "after"), Is.True);
        Assert.That(subscriber.TryTake()?.Command, Is.Not.EqualTo(StompCommand.Error));
    }

    [Test]
    public async Task RabbitMQ_stopped_and_started_SEND_gets_an_ERROR_meanwhile_and_subscribers_carry_on()
    {
        var topic = $"/topic/{Unique()}.events";
        await using var harness = await StartAsync(_server, durable: true, relay: o => o.UnavailableWait = TimeSpan.FromSeconds(1));
        var live = await harness.OpenConnectedAsync();
        await live.SubscribeAndWaitAsync("events", topic);
        var (away, connected) = await harness.OpenConnectedAsync("1.2", "guest");
        await away.SubscribeAndWaitAsync("events", topic, "client");
        await away.DisposeAsync();
        await Eventually.That(() => harness.Registry.Find(connected["session"]!) is null, "session released", RelayTesting.Patience);
        var publisher = await harness.OpenConnectedAsync();
        for (var i = 1; i <= 10; i++)
        {
            await publisher.PublishConfirmedAsync(topic, $"e{i}");
        }

        for (var i = 1; i <= 10; i++)
        {
            Assert.That((await live.ReceiveAsync()).BodyText, Is.EqualTo($"e{i}"));
        }

        await _server.StopAppAsync();
        try
        {
            await publisher.PublishAsync(topic, "lost cause", ("receipt", "r"));
            var error = await publisher.ReceiveAsync();
            Assert.That(error.Command, Is.EqualTo(StompCommand.Error));
            Assert.That(error["message"], Does.StartWith("broker unavailable"));
            Assert.That(error["receipt-id"], Is.EqualTo("r"));
            Assert.That(await publisher.WaitClosedAsync(), Is.True);
        }
        finally
        {
            await _server.StartAppAsync();
        }

        Assert.That(await RelayTesting.Relay(harness).WaitConnectedAsync(TimeSpan.FromSeconds(30)), Is.True, "reconnected");
        var again = await harness.OpenConnectedAsync();
        for (var i = 11; i <= 20; i++)
        {
            await again.PublishConfirmedAsync(topic, $"e{i}");
        }

        // The live subscriber never re-subscribed.
        for (var i = 11; i <= 20; i++)
        {
            Assert.That((await live.NextMessageAsync(TimeSpan.FromSeconds(20))).BodyText, Is.EqualTo($"e{i}"));
        }

        // The absent one's queue and its persistent messages came through the restart.
        var (resumed, back) = await harness.OpenConnectedAsync("1.2", "guest", connected["session-token"]);
        Assert.That(back["recovered"], Is.EqualTo("true"));
        var received = new List<string>();
        for (var i = 1; i <= 20; i++)
        {
            received.Add((await resumed.ReceiveAsync()).BodyText);
        }

        Assert.That(received, Is.EqualTo(Enumerable.Range(1, 20).Select(i => $"e{i}")));
    }

    // A RECEIPT for SUBSCRIBE means the subscription's queue is bound: a SEND after it is delivered, even while one of
    // the relay's connections is down and reconnecting (the SEND goes out on another, which is up).
    [Test]
    public async Task A_SUBSCRIBE_receipt_while_one_connection_is_reconnecting_means_a_SEND_after_it_is_delivered()
    {
        var topic = $"/topic/{Unique()}.receipt";
        await using var harness = await StartAsync(_server, relay: o =>
        {
            o.Connections = 2;
            o.ReconnectDelay = TimeSpan.FromSeconds(60);
            o.MaxReconnectDelay = TimeSpan.FromSeconds(60);
        });
        var relay = RelayTesting.Relay(harness);
        var connections = await _server.CtlAsync("list_connections", "-q", "pid", "client_properties");
        var name = $"broker-relay-{Environment.MachineName}-{Environment.ProcessId}-0";
        var pids = connections.Split('\n').Where(l => l.Contains(name, StringComparison.Ordinal)).Select(l => l.Split('\t')[0].Trim()).ToList();
        Assert.That(pids, Is.Not.Empty, connections);
        foreach (var pid in pids)
        {
            await _server.CtlAsync("close_connection", pid, "closed by a test");
        }

        await Eventually.That(async () => (await relay.CheckHealthAsync(new())).Status == Microsoft.Extensions.Diagnostics.HealthChecks.HealthStatus.Degraded,
            "connection 0 is down, connection 1 up", RelayTesting.Patience);

        // Round robin would put one of these on the connection that is down.
        var subscribers = new List<StompTestClient>();
        for (var i = 0; i < 2; i++)
        {
            var subscriber = await harness.OpenConnectedAsync();
            await subscriber.SubscribeAndWaitAsync($"s{i}", topic);
            subscribers.Add(subscriber);
        }

        var publisher = await harness.OpenConnectedAsync();
        await publisher.PublishConfirmedAsync(topic, "after the receipt");

        foreach (var subscriber in subscribers)
        {
            Assert.That((await subscriber.NextMessageAsync()).BodyText, Is.EqualTo("after the receipt"));
        }
    }

    [Test]
    public async Task Unreachable_at_start_is_retried_in_the_background_and_connects_later()
    {
        var topic = $"/topic/{Unique()}.late";
        await _server.StopAppAsync();
        SessionHarness harness;
        StompTestClient subscriber;
        try
        {
            harness = await StartAsync(_server, relay: o =>
            {
                o.UnavailableWait = TimeSpan.FromMilliseconds(300);
                o.MaxReconnectDelay = TimeSpan.FromMilliseconds(500);
            }, waitConnected: false);
            Assert.That(RelayTesting.Relay(harness).IsConnected, Is.False);

            // STOMP works without RabbitMQ: CONNECT and SUBSCRIBE succeed; a SEND says the broker is unavailable.
            subscriber = await harness.OpenConnectedAsync();
            await subscriber.SubscribeAndWaitAsync("late", topic);
            var publisher = await harness.OpenConnectedAsync();
            await publisher.PublishAsync(topic, "too early", ("receipt", "early"));
            var error = await publisher.ReceiveAsync();
            Assert.That(error.Command, Is.EqualTo(StompCommand.Error));
            Assert.That(error["message"], Does.Contain("broker unavailable"));

            // A SEND without a receipt is not pipelined while there is no connection: the same ERROR.
            var another = await harness.OpenConnectedAsync();
            await another.PublishAsync(topic, "too early as well");
            error = await another.ReceiveAsync();
            Assert.That(error.Command, Is.EqualTo(StompCommand.Error));
            Assert.That(error["message"], Does.Contain("broker unavailable"));
            Assert.That(error["receipt-id"], Is.Null);
        }
        finally
        {
            await _server.StartAppAsync();
        }

        await using (harness)
        {
            Assert.That(await RelayTesting.Relay(harness).WaitConnectedAsync(TimeSpan.FromSeconds(30)), Is.True, "connected once RabbitMQ was there");
            var publisher = await harness.OpenConnectedAsync();
            await publisher.PublishConfirmedAsync(topic, "on time");
            Assert.That((await subscriber.NextMessageAsync()).BodyText, Is.EqualTo("on time"), "the subscription made while unreachable was attached");
        }
    }

    // Receives until every expected body has been seen (duplicates kept); acknowledges each when asked.
    private static async Task<List<string>> ReceiveAllAsync(StompTestClient client, List<string> expected, bool ack)
    {
        var missing = new HashSet<string>(expected);
        var received = new List<string>();
        while (missing.Count > 0)
        {
            var frame = await client.ReceiveAsync(TimeSpan.FromSeconds(20));
            Assert.That(frame.Command, Is.EqualTo(StompCommand.Message), frame.ToString());
            received.Add(frame.BodyText);
            missing.Remove(frame.BodyText);
            if (ack)
            {
                await client.SendFrameAsync(StompCommand.Ack, ("id", frame["ack"]!));
            }
        }

        return received;
    }

    private static async Task<bool> ReceiveUntilAsync(StompTestClient client, string body)
    {
        while (await client.TryReceiveAsync(TimeSpan.FromSeconds(20)) is { } frame)
        {
            if (frame.Command == StompCommand.Message && frame.BodyText == body)
            {
                return true;
            }
        }

        return false;
    }
}
