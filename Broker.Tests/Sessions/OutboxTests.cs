using Broker.Resources;
using Broker.Sessions;
using NUnit.Framework;

namespace Broker.Tests.Sessions;

/// <summary>
/// The outbox between a session's producers and its writer loop: one item alone waits without an array, and
/// items keep their order and their count against the memory budget however the outbox holds them.
/// </summary>
[TestFixture]
public sealed class OutboxTests
{
    [Test]
    public void One_item_alone_needs_no_array_and_a_second_one_keeps_the_order()
    {
        var outbox = new Outbox<Outbound>();
        outbox.TryWrite(Frame(1));
        Assert.That(outbox.HoldsArray, Is.False, "a lone heart-beat or RECEIPT allocates no array");
        Assert.That(outbox.TryRead(out var alone), Is.True);
        Assert.That(alone.Bytes, Is.EqualTo(Frame(1).Bytes));
        Assert.That(outbox.TryRead(out _), Is.False);

        for (var i = 1; i <= 20; i++)
        {
            outbox.TryWrite(Frame(i));
            if (i == 2)
            {
                Assert.That(outbox.HoldsArray, Is.True);
            }
        }

        Assert.That(outbox.PendingBytes, Is.EqualTo(Enumerable.Range(1, 20).Sum()));
        for (var i = 1; i <= 20; i++)
        {
            Assert.That(outbox.TryRead(out var item), Is.True);
            Assert.That(item.Bytes!.Length, Is.EqualTo(i), "in the order written");
        }

        Assert.That(outbox.TryRead(out _), Is.False);
        Assert.That(outbox.PendingBytes, Is.Zero);
    }

    [Test]
    public void What_a_discarded_outbox_held_goes_back_to_the_budget_whether_one_item_or_many()
    {
        var budget = new MemoryBudget(Microsoft.Extensions.Options.Options.Create(new StompBrokerOptions { MemoryLimit = 1 << 20 }), new BrokerMetrics(new Broker.Tests.Security.TestMeterFactory()), Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance);
        var one = new Outbox<Outbound>(budget);
        one.TryWrite(Frame(100));
        Assert.That(budget.Used, Is.EqualTo(100));
        one.Discard();
        Assert.That(budget.Used, Is.Zero);

        var many = new Outbox<Outbound>(budget);
        many.TryWrite(Frame(100));
        many.TryWrite(Frame(50));
        many.TryWrite(Frame(25));
        Assert.That(budget.Used, Is.EqualTo(175));
        many.Discard();
        Assert.That(budget.Used, Is.Zero);
        Assert.That(many.TryWrite(Frame(1)), Is.False, "completed");
    }

    private static Outbound Frame(int length) => new(Enumerable.Repeat((byte)'x', length).ToArray());
}
