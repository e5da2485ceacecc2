using Broker.Relay.RabbitMq;
using NUnit.Framework;

namespace Broker.Tests.Relay;

/// <summary>
/// The relay's ack coalescing on a shared consumer channel: a cumulative ack may only name a tag when every
/// tag up to it was acked (or already sent on its own); what waits behind a held delivery goes out on its own.
/// </summary>
[TestFixture]
public sealed class AckCoalescerTests
{
    [Test]
    public void Acks_in_any_order_become_one_cumulative_ack_once_the_lowest_is_in()
    {
        var coalescer = new AckCoalescer();
        foreach (var tag in new ulong[] { 3, 1, 4 })
        {
            Assert.That(coalescer.TryAck(tag), Is.True);
        }

        Assert.That(coalescer.TakeCumulative(latestDelivered: 5), Is.EqualTo(1UL), "2 is not settled: only 1 is covered");
        Assert.That(coalescer.TryAck(2), Is.True);
        Assert.That(coalescer.TakeCumulative(latestDelivered: 5), Is.EqualTo(4UL));
        Assert.That(coalescer.HasPending, Is.False);
    }

    [Test]
    public void A_held_delivery_is_never_covered_and_the_acks_behind_it_go_out_on_their_own()
    {
        var coalescer = new AckCoalescer();
        coalescer.TryAck(1);
        coalescer.TryAck(3); // 2 is held by a client-ack subscription
        coalescer.TryAck(4);
        Assert.That(coalescer.TakeCumulative(latestDelivered: 4), Is.EqualTo(1UL));
        Assert.That(coalescer.HasPending, Is.True);
        Assert.That(coalescer.TakeStragglers(), Is.EqualTo(new ulong[] { 3, 4 }));
        Assert.That(coalescer.HasPending, Is.False);

        // When 2 is finally acked, one cumulative ack of 2 is enough: 3 and 4 are settled already.
        coalescer.TryAck(2);
        Assert.That(coalescer.TakeCumulative(latestDelivered: 4), Is.EqualTo(2UL));
        coalescer.TryAck(5);
        Assert.That(coalescer.TakeCumulative(latestDelivered: 5), Is.EqualTo(5UL));
    }

    [Test]
    public void A_nack_is_sent_on_its_own_and_the_cumulative_ack_passes_over_it()
    {
        var coalescer = new AckCoalescer();
        coalescer.Settled(1); // nacked
        Assert.That(coalescer.TakeCumulative(latestDelivered: 3), Is.EqualTo(0UL), "nothing acked here yet");
        coalescer.TryAck(3);
        coalescer.Settled(2);
        Assert.That(coalescer.TakeCumulative(latestDelivered: 3), Is.EqualTo(3UL));

        coalescer.TryAck(4);
        coalescer.Settled(5);
        Assert.That(coalescer.TakeCumulative(latestDelivered: 5), Is.EqualTo(4UL), "names the last acked tag, not the nacked one after it");
    }

    [Test]
    public void Far_beyond_a_held_delivery_acks_go_out_untracked_and_coalescing_resumes_once_all_are_settled()
    {
        var coalescer = new AckCoalescer();
        const ulong far = (1UL << 20) + 10;
        for (ulong tag = 2; tag <= far; tag++)
        {
            if (!coalescer.TryAck(tag))
            {
                Assert.That(tag, Is.GreaterThan(1UL << 20), "only tags past the tracked range go out at once");
            }
        }

        Assert.That(coalescer.TakeCumulative(latestDelivered: far), Is.EqualTo(0UL), "tag 1 is still held");
        coalescer.TakeStragglers();
        coalescer.TryAck(1);
        Assert.That(coalescer.TakeCumulative(latestDelivered: far), Is.EqualTo(1UL));

        // Every delivery is settled now: the next acks coalesce again.
        coalescer.TryAck(far + 2);
        coalescer.TryAck(far + 1);
        Assert.That(coalescer.TakeCumulative(latestDelivered: far + 2), Is.EqualTo(far + 2));
    }
}
