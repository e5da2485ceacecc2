using System.Globalization;
using Broker.Protocol;
using Broker.Tests.Durability;
using NUnit.Framework;

namespace Broker.Tests.Cluster;

/// <summary>
/// A short, bounded chaos run on three in-process nodes: sequenced publishers on three topics, durable
/// subscribers that are dropped and resume on a random node, and nodes stopped and replaced under them.
/// Each subscriber checks every topic's sequence across all its connections: after <c>recovered:true</c>
/// the next message must be the one after the last received (no gap, no duplicate, no reordering); only
/// <c>recovered:false</c> may skip. Clients run over in-memory pipes, so what a node wrote before a drop is
/// read: there is no loss in a socket to excuse.
/// </summary>
[TestFixture]
public sealed class ClusterChaosTests
{
    private const int Topics = 3;
    private const int Subscribers = 9;
    private const int Rounds = 30;
    private const int Batch = 20;

    [Test]
    public async Task Drops_resumes_on_other_nodes_and_node_restarts_lose_repeat_and_reorder_nothing()
    {
        var redis = await RedisServer.GetSharedAsync();
        var random = new Random(20240901);
        var p = Relay.RelayTesting.Unique();
        await using var cluster = await TestCluster.StartAsync(redis, nodes: 3, broker: o => o.HistorySize = Rounds * Batch * 2);
        var publisherNode = cluster.Nodes[0]; // never stopped: the publishers stay connected
        var publishers = new List<StompTestClient>();
        for (var t = 0; t < Topics; t++)
        {
            publishers.Add((await cluster.ConnectOverPipesAsync(publisherNode)).Client);
        }

        var subscribers = new List<ChaosSubscriber>();
        for (var s = 0; s < Subscribers; s++)
        {
            var node = cluster.Nodes[random.Next(cluster.Nodes.Count)];
            var (client, connected) = await cluster.ConnectOverPipesAsync(node);
            var subscriber = new ChaosSubscriber(s, client, connected["session"]!, connected["session-token"]!, node);
            for (var t = 0; t < Topics; t++)
            {
                await client.SubscribeAsync($"t{t}", $"/topic/{p}.{t}", receipt: $"s{t}");
                subscriber.Take(await client.ReceiveAsync());
            }

            subscribers.Add(subscriber);
        }

        var sequence = new int[Topics];
        for (var round = 0; round < Rounds; round++)
        {
            for (var t = 0; t < Topics; t++)
            {
                for (var i = 0; i < Batch; i++)
                {
                    await publishers[t].PublishAsync($"/topic/{p}.{t}", (++sequence[t]).ToString(CultureInfo.InvariantCulture));
                }

                await Relay.RelayTesting.PublishConfirmedAsync(publishers[t], $"/topic/{p}.{t}-receipts", "sync");
            }

            foreach (var subscriber in subscribers)
            {
                subscriber.Drain();
            }

            switch (random.Next(4))
            {
                case 0 or 1:
                    // A connection drops; the client comes back to a random node with its token.
                    var dropped = subscribers[random.Next(subscribers.Count)];
                    await dropped.DropAsync();
                    await dropped.Node.WaitSessionGoneAsync(dropped.Session);
                    await ClusterTopicTests.WaitSessionSavedAsync(cluster);
                    await dropped.ResumeAsync(cluster, cluster.Nodes[random.Next(cluster.Nodes.Count)]);
                    break;
                case 2 when cluster.Nodes.Count > 1:
                    // A node (not the publishers') stops; its clients resume elsewhere, and a new node joins.
                    var victim = cluster.Nodes[1 + random.Next(cluster.Nodes.Count - 1)];
                    var onVictim = subscribers.Where(s => s.Node == victim).ToList();
                    await cluster.StopNodeAsync(victim);
                    await ClusterTopicTests.WaitSessionSavedAsync(cluster);
                    foreach (var subscriber in onVictim)
                    {
                        await subscriber.DropAsync();
                        await subscriber.ResumeAsync(cluster, cluster.Nodes[random.Next(cluster.Nodes.Count)]);
                    }

                    await cluster.StartNodeAsync();
                    break;
                default:
                    break;
            }
        }

        foreach (var subscriber in subscribers)
        {
            await subscriber.WaitForAsync(sequence);
        }

        var report = string.Join('\n', subscribers.Select(s => s.Report()));
        TestContext.Out.WriteLine($"published {sequence.Sum()} messages on {Topics} topics\n{report}");
        Assert.That(subscribers.SelectMany(s => s.Violations), Is.Empty, report);
        Assert.That(subscribers.Sum(s => s.Resumes), Is.GreaterThan(5), "the run resumed sessions");
        Assert.That(subscribers.Sum(s => s.Recovered), Is.GreaterThan(0), "and recovered some");
    }

    private sealed class ChaosSubscriber(int index, StompTestClient client, string session, string token, TestServer node)
    {
        private readonly int[] _next = new int[Topics]; // 0: nothing received yet (any first message is fine)
        private readonly bool[] _mayGap = new bool[Topics]; // after recovered:false, until the topic's next message

        public StompTestClient Client { get; private set; } = client;

        public string Session { get; } = session;

        public TestServer Node { get; private set; } = node;

        public List<string> Violations { get; } = [];

        public int Resumes { get; private set; }

        public int Recovered { get; private set; }

        public int Received { get; private set; }

        public void Drain()
        {
            while (Client.TryTake() is { } frame)
            {
                Take(frame);
            }
        }

        public void Take(ReceivedFrame frame)
        {
            if (frame.Command != StompCommand.Message)
            {
                return;
            }

            var topic = frame["subscription"]![1] - '0';
            var value = int.Parse(frame.BodyText, CultureInfo.InvariantCulture);
            Received++;
            if (_next[topic] != 0 && value != _next[topic] && !(_mayGap[topic] && value > _next[topic]))
            {
                Violations.Add($"subscriber {index}, topic {topic}: got {value}, expected {_next[topic]}");
            }

            _next[topic] = value + 1;
            _mayGap[topic] = false;
        }

        public async Task DropAsync()
        {
            await Client.DisposeAsync();
            Drain();
        }

        public async Task ResumeAsync(TestCluster cluster, TestServer to)
        {
            var (client, connected) = await cluster.ConnectOverPipesAsync(to, token: token);
            if (connected["resumed"] != "true")
            {
                Violations.Add($"subscriber {index}: not resumed ({connected})");
            }

            Resumes++;
            var recovered = connected["recovered"] == "true";
            Recovered += recovered ? 1 : 0;
            Array.Fill(_mayGap, !recovered);
            Client = client;
            Node = to;
        }

        public async Task WaitForAsync(int[] last)
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            while (Enumerable.Range(0, Topics).Any(t => _next[t] <= last[t]) && DateTime.UtcNow < deadline)
            {
                if (await Client.TryReceiveAsync(TimeSpan.FromMilliseconds(200)) is { } frame)
                {
                    Take(frame);
                }
            }

            for (var t = 0; t < Topics; t++)
            {
                if (_next[t] <= last[t])
                {
                    Violations.Add($"subscriber {index}, topic {t}: stopped at {_next[t] - 1} of {last[t]}");
                }
            }
        }

        public string Report() => $"subscriber {index}: {Received} messages, {Resumes} resumes ({Recovered} recovered), {Violations.Count} violations";
    }
}
