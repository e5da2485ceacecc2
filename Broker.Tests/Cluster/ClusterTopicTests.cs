using System.Globalization;
using Broker.Protocol;
using Broker.Tests.Durability;
using NUnit.Framework;
using StackExchange.Redis;
using static Broker.Tests.Relay.RelayTesting;

namespace Broker.Tests.Cluster;

/// <summary>
/// Topics across two in-process nodes sharing a real redis-server (<c>AddRedisCluster</c>): a SEND on one
/// node reaches matching subscriptions on every node, once, in order; a node is sent only what its clients
/// subscribe to; a session resumes on the other node with every message it missed.
/// </summary>
[TestFixture]
public sealed class ClusterTopicTests
{
    private RedisServer _redis = null!;

    [OneTimeSetUp]
    public async Task StartRedis() => _redis = await RedisServer.GetSharedAsync();

    [Test]
    public async Task A_SEND_on_one_node_reaches_exact_and_wildcard_subscriptions_on_both_once()
    {
        var p = Unique();
        await using var cluster = await TestCluster.StartAsync(_redis);
        var exactOnB = await cluster.ConnectAsync(cluster.B);
        await exactOnB.SubscribeAndWaitAsync("eur", $"/topic/{p}.prices.eur");
        var starOnB = await cluster.ConnectAsync(cluster.B);
        await starOnB.SubscribeAndWaitAsync("prices", $"/topic/{p}.prices.*");
        var hashOnB = await cluster.ConnectAsync(cluster.B);
        await hashOnB.SubscribeAndWaitAsync("all", $"/topic/{p}.#");
        var onA = await cluster.ConnectAsync(cluster.A);
        await onA.SubscribeAndWaitAsync("news", $"/topic/{p}.news.*");
        await onA.SubscribeAndWaitAsync("eur-too", $"/topic/{p}.prices.eur");

        var publisherOnA = await cluster.ConnectAsync(cluster.A);
        await publisherOnA.PublishConfirmedAsync($"/topic/{p}.prices.eur", "1.08", ("source", "ecb"));
        await publisherOnA.PublishConfirmedAsync($"/topic/{p}.prices.usd", "1.00");
        await publisherOnA.PublishConfirmedAsync($"/topic/{p}.prices.eur.old", "0.90");
        var publisherOnB = await cluster.ConnectAsync(cluster.B);
        await publisherOnB.PublishConfirmedAsync($"/topic/{p}.news.eu", "headline");

        var eur = await exactOnB.NextMessageAsync();
        Assert.That((eur["destination"], eur["subscription"], eur.BodyText, eur["source"]), Is.EqualTo(($"/topic/{p}.prices.eur", "eur", "1.08", "ecb")),
            "a SEND on A reaches an exact subscription on B, with its headers");

        var star = new[] { await starOnB.NextMessageAsync(), await starOnB.NextMessageAsync() };
        Assert.That(star.Select(m => (m["destination"], m.BodyText)), Is.EqualTo(new[] { ($"/topic/{p}.prices.eur", "1.08"), ($"/topic/{p}.prices.usd", "1.00") }),
            "a '*' subscription on B gets one-word matches only (prices.eur.old matches the glob Redis is given, not the pattern)");

        var hash = new List<string>();
        for (var i = 0; i < 4; i++)
        {
            hash.Add((await hashOnB.NextMessageAsync()).BodyText);
        }

        Assert.That(hash, Is.EquivalentTo(new[] { "1.08", "1.00", "0.90", "headline" }), "a '#' subscription on B gets the SENDs of both nodes");

        var onAGot = new[] { await onA.NextMessageAsync(), await onA.NextMessageAsync() };
        Assert.That(onAGot.Select(m => (m["subscription"], m.BodyText)), Is.EquivalentTo(new[] { ("eur-too", "1.08"), ("news", "headline") }),
            "A's own subscribers get A's SEND once, and B's SEND");

        foreach (var client in new[] { exactOnB, starOnB, hashOnB, onA })
        {
            await publisherOnA.PublishConfirmedAsync($"/topic/{p}-marker", "marker");
            Assert.That(await client.TryReceiveAsync(TimeSpan.FromMilliseconds(300)), Is.Null, "nothing twice");
        }
    }

    [Test]
    public async Task One_publishers_messages_arrive_on_the_other_node_in_order_with_increasing_offsets()
    {
        const int Count = 500;
        var destination = $"/topic/{Unique()}.seq";
        await using var cluster = await TestCluster.StartAsync(_redis);
        var subscriber = await cluster.ConnectAsync(cluster.B);
        await subscriber.SubscribeAndWaitAsync("s", destination);
        var local = await cluster.ConnectAsync(cluster.A);
        await local.SubscribeAndWaitAsync("s", destination);
        var publisher = await cluster.ConnectAsync(cluster.A);

        // Without receipts: pipelined, many in flight to Redis at once.
        for (var i = 1; i <= Count; i++)
        {
            await publisher.PublishAsync(destination, i.ToString(CultureInfo.InvariantCulture));
        }

        foreach (var client in new[] { subscriber, local })
        {
            var got = new List<int>();
            for (var i = 0; i < Count; i++)
            {
                got.Add(int.Parse((await client.NextMessageAsync()).BodyText, CultureInfo.InvariantCulture));
            }

            Assert.That(got, Is.EqualTo(Enumerable.Range(1, Count)), "once each, in the publisher's order");
        }
    }

    [Test]
    public async Task A_node_subscribes_only_to_the_channels_of_topics_its_clients_subscribe_to()
    {
        var p = Unique();
        await using var cluster = await TestCluster.StartAsync(_redis);
        var onB = await cluster.ConnectAsync(cluster.B);
        await onB.SubscribeAndWaitAsync("x", $"/topic/{p}.x");
        await onB.SubscribeAndWaitAsync("w", $"/topic/{p}.*.c");
        var onA = await cluster.ConnectAsync(cluster.A);
        await onA.SubscribeAndWaitAsync("y", $"/topic/{p}.y");

        await using var inspector = await ConnectionMultiplexer.ConnectAsync(_redis.Configuration);
        var server = inspector.GetServer(inspector.GetEndPoints()[0]);
        var numsub = (RedisResult[])(await server.ExecuteAsync("PUBSUB", "NUMSUB", $"{cluster.Prefix}t:{p}.x", $"{cluster.Prefix}t:{p}.y", $"{cluster.Prefix}t:{p}.z"))!;
        Assert.That(numsub.Select(r => r.ToString()), Is.EqualTo(new[] { $"{cluster.Prefix}t:{p}.x", "1", $"{cluster.Prefix}t:{p}.y", "1", $"{cluster.Prefix}t:{p}.z", "0" }),
            "one node's subscription per exact key with subscribers there, none for a key nobody subscribes to");
        var patterns = (RedisResult[])(await server.ExecuteAsync("PUBSUB", "CHANNELS", $"{cluster.Prefix}t:{p}*"))!;
        Assert.That(patterns.Select(r => r.ToString()), Is.EquivalentTo(new[] { $"{cluster.Prefix}t:{p}.x", $"{cluster.Prefix}t:{p}.y" }));
        Assert.That((long)await server.ExecuteAsync("PUBSUB", "NUMPAT"), Is.GreaterThanOrEqualTo(1), "the wildcard pattern ships as a PSUBSCRIBE glob");

        // After the last subscriber leaves, the node lets the channel go (when it sweeps).
        await onB.SendFrameAsync(StompCommand.Unsubscribe, ("id", "x"), ("receipt", "u"));
        await onB.ExpectReceiptAsync("u");
        TestCluster.Broker(cluster.B).Sweep();
        await Eventually.That(async () =>
        {
            var counts = (RedisResult[])(await server.ExecuteAsync("PUBSUB", "NUMSUB", $"{cluster.Prefix}t:{p}.x"))!;
            return counts[1].ToString() == "0";
        }, "node B unsubscribed the channel", Eventually.Relaxed);
    }

    [Test]
    public async Task A_session_dropped_on_one_node_resumes_on_the_other_with_every_missed_message_once_in_order()
    {
        const int Missed = 100;
        var p = Unique();
        await using var cluster = await TestCluster.StartAsync(_redis);
        var (client, connected) = await cluster.ConnectWithAsync(cluster.A);
        await client.SubscribeAndWaitAsync("a", $"/topic/{p}.a");
        await client.SubscribeAndWaitAsync("b", $"/topic/{p}.b");
        var publisher = await cluster.ConnectAsync(cluster.B);
        await publisher.PublishConfirmedAsync($"/topic/{p}.a", "before");
        Assert.That((await client.NextMessageAsync()).BodyText, Is.EqualTo("before"));

        await client.DisposeAsync();
        await cluster.A.WaitSessionGoneAsync(connected["session"]!);
        for (var i = 1; i <= Missed; i++)
        {
            await publisher.PublishAsync($"/topic/{p}.{(i % 2 == 0 ? "a" : "b")}", i.ToString(CultureInfo.InvariantCulture));
        }

        await publisher.PublishConfirmedAsync($"/topic/{p}.a", "last");
        await WaitSessionSavedAsync(cluster);

        var (resumed, again) = await cluster.ConnectWithAsync(cluster.B, token: connected["session-token"]);
        Assert.That((again["resumed"], again["recovered"], again["session"]), Is.EqualTo(("true", "true", connected["session"])));
        var got = new Dictionary<string, List<string>> { ["a"] = [], ["b"] = [] };
        for (var i = 0; i < Missed + 1; i++)
        {
            var message = await resumed.NextMessageAsync();
            got[message["subscription"]!].Add(message.BodyText);
        }

        Assert.That(got["a"], Is.EqualTo(Enumerable.Range(1, Missed).Where(i => i % 2 == 0).Select(i => i.ToString(CultureInfo.InvariantCulture)).Append("last")));
        Assert.That(got["b"], Is.EqualTo(Enumerable.Range(1, Missed).Where(i => i % 2 == 1).Select(i => i.ToString(CultureInfo.InvariantCulture))));

        // Live again, on B: a new message comes once, after the replayed ones.
        await publisher.PublishConfirmedAsync($"/topic/{p}.b", "live");
        Assert.That((await resumed.NextMessageAsync()).BodyText, Is.EqualTo("live"));
        Assert.That(await resumed.TryReceiveAsync(TimeSpan.FromMilliseconds(300)), Is.Null, "nothing twice");
    }

    [Test]
    public async Task A_resume_after_history_was_trimmed_past_the_position_says_not_recovered()
    {
        var p = Unique();
        await using var cluster = await TestCluster.StartAsync(_redis, broker: o => o.HistorySize = 5);
        var (client, connected) = await cluster.ConnectWithAsync(cluster.A);
        await client.SubscribeAndWaitAsync("s", $"/topic/{p}");
        await client.DisposeAsync();
        await cluster.A.WaitSessionGoneAsync(connected["session"]!);

        var publisher = await cluster.ConnectAsync(cluster.B);
        for (var i = 1; i <= 10; i++)
        {
            await publisher.PublishConfirmedAsync($"/topic/{p}", i.ToString(CultureInfo.InvariantCulture));
        }

        await WaitSessionSavedAsync(cluster);
        var (resumed, again) = await cluster.ConnectWithAsync(cluster.B, token: connected["session-token"]);
        Assert.That((again["resumed"], again["recovered"]), Is.EqualTo(("true", "false")), "5 of the 10 missed messages are gone from history");
        await publisher.PublishConfirmedAsync($"/topic/{p}", "live");
        Assert.That((await resumed.NextMessageAsync()).BodyText, Is.EqualTo("live"), "the subscription is back, from now on");
    }

    [Test]
    public async Task Subscribing_and_resuming_during_a_flood_on_the_other_node_loses_and_repeats_nothing()
    {
        const int Count = 2000;
        var destination = $"/topic/{Unique()}";
        await using var cluster = await TestCluster.StartAsync(_redis, broker: o => o.HistorySize = Count);
        var (first, connected) = await cluster.ConnectOverPipesAsync(cluster.A);
        await first.SubscribeAndWaitAsync("s", destination);
        var publisher = await cluster.ConnectAsync(cluster.B);
        var flood = Task.Run(async () =>
        {
            for (var i = 1; i <= Count; i++)
            {
                await publisher.PublishAsync(destination, i.ToString(CultureInfo.InvariantCulture));
            }
        });

        // Take some, drop, and resume on the other node while the flood goes on.
        var seen = new List<int>();
        while (seen.Count < 200)
        {
            seen.Add(int.Parse((await first.NextMessageAsync()).BodyText, CultureInfo.InvariantCulture));
        }

        await first.DisposeAsync(); // over pipes: everything node A wrote before the drop is still read
        while (first.TryTake() is { } late)
        {
            if (late.Command == StompCommand.Message)
            {
                seen.Add(int.Parse(late.BodyText, CultureInfo.InvariantCulture));
            }
        }

        await cluster.A.WaitSessionGoneAsync(connected["session"]!);
        await WaitSessionSavedAsync(cluster);
        var (resumed, again) = await cluster.ConnectOverPipesAsync(cluster.B, token: connected["session-token"]);
        await flood;
        while (seen[^1] < Count)
        {
            seen.Add(int.Parse((await resumed.NextMessageAsync()).BodyText, CultureInfo.InvariantCulture));
        }

        Assert.That(again["recovered"], Is.EqualTo("true"));
        Assert.That(seen, Is.EqualTo(Enumerable.Range(seen[0], Count - seen[0] + 1)), "contiguous from the first message seen, across both nodes, none twice");
        Assert.That(await resumed.TryReceiveAsync(TimeSpan.FromMilliseconds(300)), Is.Null);
    }

    /// <summary>The session store is written behind: wait until the dropped sessions' records are in Redis.</summary>
    internal static async Task WaitSessionSavedAsync(TestCluster cluster)
    {
        foreach (var node in cluster.Nodes)
        {
            await ((Broker.Durability.SessionPersistence)node.Services.GetService(typeof(Broker.Durability.SessionPersistence))!).FlushAsync(TimeSpan.FromSeconds(10));
        }
    }
}
