using Broker.Resources;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace Broker.Tests.Resources;

/// <summary>
/// A topic message fanned out to N subscribers is held once (one body, one cached encoding) however many outboxes
/// queue it: the memory budget counts it once plus a small per-delivery part, so that fan-out does not trip flow
/// control N times too early. Every delivery is still given back when written.
/// </summary>
[TestFixture]
public sealed class FanOutBudgetTests
{
    private const int Subscribers = 10;
    private const int Messages = 60;
    private const int Size = 128 * 1024;
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    [Test]
    public async Task A_message_queued_for_many_paused_subscribers_is_counted_once()
    {
        await using var server = await TestServer.StartAsync(o =>
        {
            o.MemoryLimit = 1024L * 1024 * 1024;
            o.MemoryCalculation = MemoryCalculation.Budget; // what is counted, not what the test process uses
        });
        var budget = server.Services.GetRequiredService<MemoryBudget>();
        var subscribers = new List<StompTestClient>();
        try
        {
            for (var i = 0; i < Subscribers; i++)
            {
                var subscriber = await StompTestClient.ConnectTcpAsync(server.TcpPort, receiveBufferSize: 16 * 1024);
                subscribers.Add(subscriber);
                await subscriber.ConnectAsync();
                await subscriber.SubscribeAndWaitAsync("s", "/topic/fan-budget");
                subscriber.PauseReading();
            }

            await using var publisher = await StompTestClient.ConnectTcpAsync(server.TcpPort);
            await publisher.ConnectAsync();
            var body = new string('f', Size - 8);
            for (var i = 0; i < Messages; i++)
            {
                await publisher.PublishAsync("/topic/fan-budget", $"{i,7}:{body}");
            }

            await publisher.PublishAsync("/topic/fan-budget", "end", ("receipt", "published"));
            await publisher.ExpectReceiptAsync("published");

            // Each paused subscriber's socket takes a little; the rest waits in its outbox. Counted per outbox,
            // that would be several times what was published; counted once, it is at most what was published.
            await Eventually.That(() => budget.UsedBy(MemoryComponent.Outboxes) > 2 * Size, "a backlog in the paused subscribers' outboxes", Bound);
            var published = (long)Messages * (Size + 64) + Subscribers * (Messages + 1) * 64L;
            Assert.That(budget.UsedBy(MemoryComponent.Outboxes), Is.LessThanOrEqualTo(published), "each message counted once, not once per subscriber");

            foreach (var subscriber in subscribers)
            {
                subscriber.ResumeReading();
            }

            foreach (var subscriber in subscribers)
            {
                for (var i = 0; i < Messages; i++)
                {
                    Assert.That((await subscriber.ReceiveAsync(Bound)).BodyText, Does.StartWith($"{i,7}:"), "every subscriber gets every message, in order");
                }

                Assert.That((await subscriber.ReceiveAsync(Bound)).BodyText, Is.EqualTo("end"));
            }

            await Eventually.That(() => budget.UsedBy(MemoryComponent.Outboxes) == 0, "every delivery given back once written", Bound);
        }
        finally
        {
            foreach (var subscriber in subscribers)
            {
                await subscriber.DisposeAsync();
            }
        }
    }
}
