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
/// The RabbitMQ process stopped and started again (same ports, same data directory) while two
/// Broker.Server processes relay traffic through it: one with Redis durable sessions, one without
/// (<c>Store=none</c>: its subscriptions are plain, exclusive queues). Clients stay connected; the test
/// runs a RabbitMQ node of its own, so the shared one is not disturbed.
/// </summary>
[TestFixture]
public sealed class RabbitMqRestartTests
{
    private const string Topic = "ticks";

    [Test]
    public async Task RabbitMQ_restarted_during_traffic_subscribers_receive_again_without_resubscribing_and_durable_subscribers_lose_nothing()
    {
        await using var rabbit = await RabbitMqServer.StartAsync();
        var redis = await RedisServer.GetSharedAsync();
        var p = Unique();
        var topic = $"/topic/{p}.{Topic}";
        var keyPrefix = $"broker-{p}:";
        string[] relay =
        [
            "--Broker:Relay:Kind=rabbitmq", $"--Broker:Relay:RabbitMq:Uri={rabbit.Uri}",
            "--Broker:Relay:RabbitMq:UnavailableWait=00:00:01", "--Broker:Relay:RabbitMq:MaxReconnectDelay=00:00:00.5",
        ];
        await using var durableNode = await ServerProcess.StartAsync(
            ["--Broker:Sessions:Store=redis", $"--Broker:Sessions:Redis={redis.Configuration}", $"--Broker:Sessions:RedisKeyPrefix={keyPrefix}", .. relay]);
        await using var plainNode = await ServerProcess.StartAsync(["--Broker:Sessions:Store=none", .. relay]);
        await durableNode.WaitRelayConnectedAsync(1);
        await plainNode.WaitRelayConnectedAsync(1);

        // A durable subscriber connected throughout, one whose client is away during the restart, and a
        // plain subscriber (no session store on its node).
        await using var durable = await StompTestClient.ConnectTcpAsync(durableNode.TcpPort);
        await durable.ConnectAsync();
        await durable.SubscribeAndWaitAsync(Topic, topic);
        await using var plain = await StompTestClient.ConnectTcpAsync(plainNode.TcpPort);
        await plain.ConnectAsync();
        await plain.SubscribeAndWaitAsync(Topic, topic);
        var away = await StompTestClient.ConnectTcpAsync(durableNode.TcpPort);
        var awaySession = await away.ConnectAsync();
        await away.SubscribeAndWaitAsync(Topic, topic);
        using (var store = new RedisSessionStore(new RedisSessionStoreOptions { Configuration = redis.Configuration, KeyPrefix = keyPrefix }))
        {
            await Eventually.That(async () => (await store.FindByTokenHashAsync(Broker.Sessions.StompSession.HashToken(awaySession["session-token"]!)))?.Subscriptions.Count == 1, "the away session reached Redis", RelayTesting.Patience);
        }

        await away.DisposeAsync(); // the socket drops: the session stays resumable, its queue keeps what comes
        var awayQueue = RelayDestinations.DurableQueueName(new RabbitMqRelayOptions().QueuePrefix, awaySession["session"]!, Topic);
        await Eventually.That(async () => (await rabbit.CtlAsync("list_queues", "-q", "--no-table-headers", "name", "consumers"))
            .Split('\n').Any(line => line.StartsWith(awayQueue + "\t", StringComparison.Ordinal) && line.TrimEnd().EndsWith("\t0", StringComparison.Ordinal)), "the away session's queue without a consumer", RelayTesting.Patience);

        await using var publisher = new SequencedPublisher(plainNode, topic);
        await publisher.WaitConfirmedAsync(50);

        await rabbit.RestartAsync();
        var firstAfterRestart = publisher.Next;

        // The plain subscriber never re-subscribes: once its node's relay is back, it receives again.
        var plainAfter = new List<int>();
        while (plainAfter.Count == 0 || plainAfter[^1] < firstAfterRestart)
        {
            plainAfter.Add(Sequence(await plain.ReceiveAsync(TimeSpan.FromSeconds(60)), Topic));
        }

        var resumedAt = plainAfter[^1];
        await publisher.WaitConfirmedAsync(50, after: resumedAt);
        await publisher.StopAsync();
        var confirmed = publisher.Confirmed;
        var refused = publisher.Refused;
        TestContext.Out.WriteLine($"published {confirmed.Count} confirmed, {refused.Count} refused with ERROR while RabbitMQ was down; restart done before #{firstAfterRestart}, plain subscriber receiving again from #{resumedAt}");
        Assert.That(refused, Is.Not.Empty, "SENDs during the restart were answered with ERROR (the restart happened during traffic)");
        Assert.That(confirmed.Max(), Is.GreaterThan(resumedAt));

        // Everything confirmed after the plain subscriber received again reaches it.
        var plainExpected = confirmed.Where(n => n > resumedAt).ToHashSet();
        var plainReceived = await ReceiveUntilAllAsync(plain, plainExpected);
        Assert.That(plainReceived.Where(n => n > resumedAt).Distinct(), Is.EquivalentTo(plainExpected), "the plain subscriber receives again without re-subscribing");

        // The durable subscriber that stayed connected: every confirmed message (a redelivery may repeat one).
        var durableReceived = await ReceiveUntilAllAsync(durable, confirmed.ToHashSet());
        Assert.That(durableReceived.Distinct().Where(confirmed.Contains), Is.EquivalentTo(confirmed), "the connected durable subscriber lost nothing");
        Assert.That(durableReceived.Except(confirmed).Except(refused), Is.Empty, "and got nothing that was not sent");

        // The durable session that was away: its queue and persistent messages came through the restart.
        await using var resumed = await StompTestClient.ConnectTcpAsync(durableNode.TcpPort);
        var again = await resumed.ConnectAsync(sessionToken: awaySession["session-token"]);
        Assert.That(again["resumed"], Is.EqualTo("true"), again.ToString());
        Assert.That(again["recovered"], Is.EqualTo("true"), "its queue was still there after the restart");
        var awayReceived = await ReceiveUntilAllAsync(resumed, confirmed.ToHashSet());
        Assert.That(awayReceived.Distinct().Where(confirmed.Contains), Is.EquivalentTo(confirmed), "the away durable session lost nothing");
        Assert.That(awayReceived.Except(confirmed).Except(refused), Is.Empty, "and got nothing that was not sent");
    }

    // Receives MESSAGE frames until every expected sequence number was among them; returns all received.
    private static async Task<List<int>> ReceiveUntilAllAsync(StompTestClient client, HashSet<int> expected)
    {
        var missing = new HashSet<int>(expected);
        var received = new List<int>();
        while (missing.Count > 0)
        {
            ReceivedFrame frame;
            try
            {
                frame = await client.ReceiveAsync(TimeSpan.FromSeconds(20));
            }
            catch (TimeoutException)
            {
                Assert.Fail($"{missing.Count} message(s) never arrived: {string.Join(", ", missing.Order().Take(20))}…");
                throw;
            }

            var n = Sequence(frame, Topic);
            received.Add(n);
            missing.Remove(n);
        }

        return received;
    }

    private static int Sequence(ReceivedFrame frame, string subscription)
    {
        Assert.That(frame.Command, Is.EqualTo(StompCommand.Message), frame.ToString());
        Assert.That(frame["subscription"], Is.EqualTo(subscription));
        return int.Parse(frame.BodyText, CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Publishes 1, 2, 3… one at a time, each with a receipt, until stopped. A RECEIPT means RabbitMQ confirmed
    /// the message; an ERROR (RabbitMQ unreachable) means it was refused: the client reconnects and goes on
    /// with the next number, as an application would.
    /// </summary>
    private sealed class SequencedPublisher : IAsyncDisposable
    {
        private readonly ServerProcess _node;
        private readonly string _destination;
        private readonly List<int> _confirmed = [];
        private readonly List<int> _refused = [];
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _publishing;
        private int _last;

        public SequencedPublisher(ServerProcess node, string destination)
        {
            _node = node;
            _destination = destination;
            _publishing = Task.Run(PublishAsync);
        }

        /// <summary>The number the next SEND will carry (every lower one has been sent or is being sent).</summary>
        public int Next => Volatile.Read(ref _last) + 1;

        public IReadOnlyList<int> Confirmed
        {
            get
            {
                lock (_confirmed)
                {
                    return [.. _confirmed];
                }
            }
        }

        public IReadOnlyList<int> Refused
        {
            get
            {
                lock (_confirmed)
                {
                    return [.. _refused];
                }
            }
        }

        /// <summary>Waits until <paramref name="count"/> messages numbered above <paramref name="after"/> were confirmed.</summary>
        public async Task WaitConfirmedAsync(int count, int after = 0)
        {
            await Eventually.That(() => _publishing.IsCompleted || Confirmed.Count(n => n > after) >= count, $"{count} messages confirmed after #{after}", RelayTesting.Patience);
            if (_publishing.IsCompleted)
            {
                await _publishing; // the publisher failed: say why
                throw new InvalidOperationException("the publisher stopped");
            }
        }

        public async Task StopAsync()
        {
            await _stop.CancelAsync();
            await _publishing.WaitAsync(TimeSpan.FromSeconds(60));
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            try
            {
                await _publishing.WaitAsync(TimeSpan.FromSeconds(60));
            }
            catch (Exception)
            {
                // reported by StopAsync when the test got that far
            }

            _stop.Dispose();
        }

        private async Task PublishAsync()
        {
            StompTestClient? client = null;
            try
            {
                while (!_stop.IsCancellationRequested)
                {
                    if (client is null)
                    {
                        client = await StompTestClient.ConnectTcpAsync(_node.TcpPort);
                        await client.ConnectAsync();
                    }

                    var n = Volatile.Read(ref _last) + 1;
                    Volatile.Write(ref _last, n);
                    var receipt = "r" + n.ToString(CultureInfo.InvariantCulture);
                    await client.PublishAsync(_destination, n.ToString(CultureInfo.InvariantCulture), ("receipt", receipt));
                    var answer = await client.ReceiveAsync(TimeSpan.FromSeconds(30));
                    if (answer.Command == StompCommand.Receipt && answer["receipt-id"] == receipt)
                    {
                        lock (_confirmed)
                        {
                            _confirmed.Add(n);
                        }
                    }
                    else if (answer.Command == StompCommand.Error && answer["receipt-id"] == receipt && answer["message"]?.StartsWith("broker unavailable", StringComparison.Ordinal) == true)
                    {
                        lock (_confirmed)
                        {
                            _refused.Add(n);
                        }

                        await client.DisposeAsync();
                        client = null;
                    }
                    else
                    {
                        throw new InvalidOperationException($"SEND #{n} answered with {answer}");
                    }
                }
            }
            finally
            {
                if (client is not null)
                {
                    await client.DisposeAsync();
                }
            }
        }
    }
}
