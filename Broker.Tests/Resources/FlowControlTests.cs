using Broker.Protocol;
using Broker.Resources;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace Broker.Tests.Resources;

/// <summary>
/// The memory budget over real sockets: with a small <c>MemoryLimit</c>, a fast publisher to a topic with a slow
/// consumer is flow-controlled (not read from) until the consumer catches up, then resumes; nothing is lost, and
/// a connection that only consumes is served meanwhile. A publisher blocked past <c>FlowControlTimeout</c> gets
/// the <c>memory-limit</c> ERROR.
/// </summary>
[TestFixture]
public sealed class FlowControlTests
{
    private const int MemoryLimit = 2 * 1024 * 1024;
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    [Test]
    public async Task A_fast_publisher_is_flow_controlled_by_a_slow_consumer_and_resumes_with_nothing_lost()
    {
        const int count = 5000;
        await using var server = await TestServer.StartAsync(o =>
        {
            o.MemoryLimit = MemoryLimit;
            o.MemoryCalculation = MemoryCalculation.Budget; // the budget alone: the test process uses more than 2 MiB
            o.FlowControlTimeout = Bound;
        });
        var budget = server.Services.GetRequiredService<MemoryBudget>();
        using var meter = new BrokerMeter(server.Services);

        // Messages waiting in a queue, for the consumer-only connection to take while the publisher is blocked.
        await using (var helper = await StompTestClient.ConnectTcpAsync(server.TcpPort))
        {
            await helper.ConnectAsync();
            for (var i = 0; i < 20; i++)
            {
                await helper.PublishAsync("/queue/side", $"side {i}");
            }

            await helper.PublishAsync("/queue/side", "side 20", ("receipt", "side"));
            await helper.ExpectReceiptAsync("side");
        }

        await using var slow = await StompTestClient.ConnectTcpAsync(server.TcpPort, receiveBufferSize: 16 * 1024);
        await slow.ConnectAsync();
        await slow.SubscribeAndWaitAsync("s", "/topic/flow");
        await using var consumer = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await consumer.ConnectAsync();
        await consumer.SubscribeAndWaitAsync("t", "/topic/flow");
        slow.PauseReading();

        await using var publisher = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await publisher.ConnectAsync();
        var body = new string('p', 4000);
        var publishing = Task.Run(async () =>
        {
            for (var i = 0; i < count; i++)
            {
                await publisher.PublishAsync("/topic/flow", $"{i}:{body}");
            }

            await publisher.PublishAsync("/topic/flow", "end", ("receipt", "done"));
        });

        // The slow consumer's backlog takes the budget over its limit: the publisher is no longer read from.
        // (Until the kernel's socket buffers toward the paused consumer are full, the writer can still move its
        // backlog into them, so the budget may dip below its low watermark and block the publisher again: wait for
        // the state to hold, as seen by the budget and by the metric alike.)
        await Eventually.That(() =>
        {
            meter.Observe();
            return budget.BlockedPublishers == 1 && budget.IsAboveHighWatermark && meter.Value("broker.flow.blocked") == 1;
        }, "the publisher flow-controlled", Bound);
        Assert.That(publisher.TryTake(), Is.Null, "no RECEIPT while blocked");
        Assert.That(meter.Value("broker.memory.limit"), Is.EqualTo(MemoryLimit));
        Assert.That(meter.Value("broker.memory.used", "outboxes"), Is.GreaterThan(MemoryLimit / 2), "the slow consumer's backlog is counted");

        // A connection that only consumes is served meanwhile.
        var topicSeen = await SideQueueServedAsync(consumer, "/queue/side", TimeSpan.FromSeconds(10));

        await Eventually.That(() => budget.BlockedPublishers == 1, "still blocked while the slow consumer does not read", Bound);

        // The slow consumer catches up: the budget falls below its low watermark and the publisher resumes.
        slow.ResumeReading();
        for (var i = 0; i < count; i++)
        {
            var frame = await slow.ReceiveAsync(Bound);
            Assert.That(frame.BodyText, Does.StartWith($"{i}:"), "the slow consumer gets every message, in order");
        }

        Assert.That((await slow.ReceiveAsync(Bound)).BodyText, Is.EqualTo("end"));
        await publishing.WaitAsync(Bound);
        await publisher.ExpectReceiptAsync("done");

        while (topicSeen.Count <= count)
        {
            topicSeen.Add((await consumer.ReceiveAsync(Bound)).BodyText);
        }

        Assert.That(topicSeen.Take(count).Select((text, i) => text.StartsWith($"{i}:", StringComparison.Ordinal)).All(ok => ok), Is.True, "the fast consumer too");
        Assert.That(topicSeen[count], Is.EqualTo("end"));
        Assert.That(budget.BlockedPublishers, Is.Zero);
        await Eventually.That(() => budget.UsedBy(MemoryComponent.Outboxes) == 0, "every outbox drained and counted back");
    }

    [Test]
    public async Task A_publisher_blocked_past_FlowControlTimeout_gets_the_memory_limit_ERROR_and_others_are_served()
    {
        await using var server = await TestServer.StartAsync(o =>
        {
            o.MemoryLimit = MemoryLimit;
            o.MemoryCalculation = MemoryCalculation.Budget; // the budget alone: the test process uses more than 2 MiB
            o.FlowControlTimeout = TimeSpan.FromSeconds(1);
        });
        var budget = server.Services.GetRequiredService<MemoryBudget>();
        using var meter = new BrokerMeter(server.Services);
        await using var slow = await StompTestClient.ConnectTcpAsync(server.TcpPort, receiveBufferSize: 16 * 1024);
        await slow.ConnectAsync();
        await slow.SubscribeAndWaitAsync("s", "/topic/stuck");
        slow.PauseReading();

        await using var publisher = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await publisher.ConnectAsync();
        var body = new string('p', 4000);
        var publishing = Task.Run(async () =>
        {
            try
            {
                for (var i = 0; i < 20_000; i++)
                {
                    await publisher.PublishAsync("/topic/stuck", body);
                }
            }
            catch (IOException)
            {
                // The server closed the connection.
            }
        });

        var error = await publisher.ReceiveAsync(Bound);
        Assert.That(error.Command, Is.EqualTo(StompCommand.Error), error.ToString());
        Assert.That(error["message"], Does.StartWith("limit exceeded: memory-limit"));
        Assert.That(await publisher.WaitClosedAsync(Bound), Is.True, "and closes");
        Assert.That(meter.Value("broker.limits.exceeded", LimitNames.MemoryLimit), Is.EqualTo(1));
        await publishing.WaitAsync(Bound);

        // A consumer-only connection's round trip still works while memory is short.
        await using var other = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await other.ConnectAsync();
        await other.SubscribeAndWaitAsync("o", "/topic/other");
        Assert.That(budget.IsAboveHighWatermark, Is.True, "the slow consumer still holds its backlog");

        await slow.DisposeAsync();
        await Eventually.That(() => !budget.IsAboveHighWatermark && budget.UsedBy(MemoryComponent.Outboxes) == 0, "the slow consumer's backlog given back");
    }

    /// <summary>
    /// While publishers are blocked, a connection that only consumes is served: <paramref name="consumer"/> subscribes
    /// to <paramref name="destination"/>, which holds "side 0" … "side 20", gets its RECEIPT and all 21 in order. Returns
    /// the other MESSAGEs (its topic's) that came meanwhile, in order.
    /// </summary>
    internal static async Task<List<string>> SideQueueServedAsync(StompTestClient consumer, string destination, TimeSpan timeout)
    {
        await consumer.SubscribeAsync("side", destination, receipt: "side-sub");
        var topicSeen = new List<string>();
        var side = 0;
        var subscribed = false;
        while (side < 21 || !subscribed)
        {
            var frame = await consumer.ReceiveAsync(timeout);
            if (frame.Command == StompCommand.Receipt)
            {
                subscribed = true;
            }
            else if (frame["subscription"] == "side")
            {
                Assert.That(frame.BodyText, Is.EqualTo($"side {side++}"));
            }
            else
            {
                topicSeen.Add(frame.BodyText);
            }
        }

        return topicSeen;
    }
}
