using Broker.Routing;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace Broker.Tests.Limits;

/// <summary>
/// What a topic keeps for resumed subscriptions (issue 11, topics): history only for durable subscribers (present,
/// or gone less than HistoryMaxAge ago), bounded by bytes as well as count and age.
/// </summary>
[TestFixture]
public sealed class TopicHistoryTests
{
    private readonly FakeTimeProvider _time = new();

    [Test]
    public void History_is_bounded_by_bytes_the_oldest_going_first()
    {
        var router = new TopicRouter(new HistoryOptions(Size: 1000, MaxAge: TimeSpan.FromHours(1), MaxBytes: 10_000), _time);
        var live = new Sink();
        using var durable = router.Subscribe("h", live, null, durable: true);
        Publish(router, "h", 100);

        var recent = new Sink();
        using (var resumed = router.Subscribe("h", recent, new StreamPosition(live.Epoch!, 95), durable: true))
        {
            Assert.That(resumed.Recovered, Is.True);
            Assert.That(recent.Offsets, Is.EqualTo(new long[] { 96, 97, 98, 99, 100 }));
        }

        // 100 messages of ~1 KB are past 10,000 bytes long before the count limit of 1000.
        using var older = router.Subscribe("h", new Sink(), new StreamPosition(live.Epoch!, 80), durable: true);
        Assert.That(older.Recovered, Is.False, "the 81st message was dropped to stay within HistoryMaxBytes");
    }

    [Test]
    public void A_topic_with_only_non_durable_subscribers_keeps_no_history()
    {
        var router = new TopicRouter(new HistoryOptions(1000, TimeSpan.FromHours(1), long.MaxValue), _time);
        var live = new Sink();
        using var plain = router.Subscribe("p", live, null, durable: false);
        Publish(router, "p", 5);
        Assert.That(live.Offsets, Has.Count.EqualTo(5));

        using var resumed = router.Subscribe("p", new Sink(), new StreamPosition(live.Epoch!, 3), durable: true);
        Assert.That(resumed.Recovered, Is.False, "nothing was kept: no one could have resumed");
    }

    [Test]
    public void History_is_kept_while_a_durable_subscriber_is_gone_less_than_history_max_age()
    {
        var router = new TopicRouter(new HistoryOptions(1000, TimeSpan.FromHours(1), long.MaxValue), _time);
        var first = new Sink();
        router.Subscribe("d", first, null, durable: true).Dispose();
        _time.Advance(TimeSpan.FromMinutes(30));
        Publish(router, "d", 3);

        var back = new Sink();
        using var resumed = router.Subscribe("d", back, new StreamPosition(first.Epoch!, 0), durable: true);
        Assert.That(resumed.Recovered, Is.True);
        Assert.That(back.Offsets, Is.EqualTo(new long[] { 1, 2, 3 }));
    }

    [Test]
    public void A_topic_whose_durable_subscriber_left_more_than_history_max_age_ago_keeps_nothing_and_is_swept()
    {
        var router = new TopicRouter(new HistoryOptions(1000, TimeSpan.FromHours(1), long.MaxValue), _time);
        var first = new Sink();
        router.Subscribe("gone", first, null, durable: true).Dispose();
        _time.Advance(TimeSpan.FromHours(2));
        Publish(router, "gone", 3);
        Assert.That(router.TopicCount, Is.EqualTo(1));

        Assert.That(router.Sweep(), Is.EqualTo(1), "no subscriber and no history: swept");
        Assert.That(router.TopicCount, Is.Zero);
    }

    [Test]
    public void A_send_to_a_key_nobody_subscribes_to_reaches_wildcards_and_makes_no_topic()
    {
        var router = new TopicRouter(new HistoryOptions(1000, TimeSpan.FromHours(1), long.MaxValue), _time);
        var wildcard = new Sink();
        using var pattern = router.Subscribe("news.#", wildcard, null, durable: true);
        router.Publish(new BrokerMessage("/topic/news.a", "1", [], new byte[10]), "news.a");
        router.Publish(new BrokerMessage("/topic/other", "2", [], new byte[10]), "other");

        Assert.That(wildcard.Ids, Is.EqualTo(new[] { "1" }));
        Assert.That(router.TopicCount, Is.Zero);
    }

    private static void Publish(TopicRouter router, string key, int count)
    {
        for (var i = 0; i < count; i++)
        {
            router.Publish(new BrokerMessage("/topic/" + key, "m" + i, [], new byte[1000]), key);
        }
    }

    private sealed class Sink : IMessageSink
    {
        public string? Epoch { get; private set; }

        public List<long> Offsets { get; } = [];

        public List<string> Ids { get; } = [];

        public void Start(StreamPosition? after) => Epoch = after?.Epoch;

        public bool TryDeliver(BrokerMessage message, ulong deliveryTag)
        {
            Epoch ??= message.Epoch;
            Offsets.Add(message.Offset);
            Ids.Add(message.MessageId);
            return true;
        }
    }
}
