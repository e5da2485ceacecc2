using Broker.Protocol;
using Broker.Resources;
using NUnit.Framework;

namespace Broker.Tests.Resources;

/// <summary>Queues bounded by <c>max-queue-length</c> and <c>max-queue-bytes</c>, with either overflow policy, over real sockets.</summary>
[TestFixture]
public sealed class QueueLimitTests
{
    [Test]
    public async Task A_full_queue_rejects_the_SEND_with_an_ERROR_naming_queue_and_limit_and_never_its_receipt()
    {
        await using var server = await TestServer.StartAsync(o => o.MaxQueueLength = 3);
        using var meter = new BrokerMeter(server.Services);
        await using var producer = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await producer.ConnectAsync();
        for (var i = 1; i <= 3; i++)
        {
            await producer.PublishAsync("/queue/jobs", $"job {i}", ("receipt", $"r{i}"));
            await producer.ExpectReceiptAsync($"r{i}");
        }

        await producer.PublishAsync("/queue/jobs", "job 4", ("receipt", "r4"));
        var frames = await ReceiveUntilClosedAsync(producer);

        var error = frames.Single(f => f.Command == StompCommand.Error);
        Assert.That(error["message"], Is.EqualTo("limit exceeded: max-queue-length for queue '/queue/jobs'"));
        Assert.That(error["receipt-id"], Is.EqualTo("r4"));
        Assert.That(frames.Any(f => f.Command == StompCommand.Receipt), Is.False, "the refused SEND's receipt is never sent");
        Assert.That(meter.Value("broker.limits.exceeded", LimitNames.MaxQueueLength), Is.EqualTo(1));

        // Nobody else's jobs were pushed out, and other clients are served as before.
        await using var consumer = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await consumer.ConnectAsync();
        await consumer.SubscribeAsync("q", "/queue/jobs");
        Assert.That(new[] { (await consumer.ReceiveAsync()).BodyText, (await consumer.ReceiveAsync()).BodyText, (await consumer.ReceiveAsync()).BodyText },
            Is.EqualTo(new[] { "job 1", "job 2", "job 3" }));
        await consumer.PublishAsync("/queue/jobs", "job 5", ("receipt", "r5"));
        var replies = new[] { await consumer.ReceiveAsync(), await consumer.ReceiveAsync() };
        Assert.That(replies.Select(f => f.Command == StompCommand.Receipt ? "RECEIPT " + f["receipt-id"] : f.BodyText), Is.EquivalentTo(new[] { "RECEIPT r5", "job 5" }),
            "drained, the queue takes messages again");
    }

    [Test]
    public async Task A_queue_over_max_queue_bytes_rejects_the_SEND_and_keeps_what_it_accepted()
    {
        await using var server = await TestServer.StartAsync(o => o.MaxQueueBytes = 10_000);
        await using var producer = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await producer.ConnectAsync();
        var body = new string('x', 2000);
        var accepted = 0;
        ReceivedFrame reply;
        do
        {
            await producer.PublishAsync("/queue/big", $"{accepted + 1}:{body}", ("receipt", $"r{accepted + 1}"));
            reply = await producer.ReceiveAsync();
            if (reply.Command == StompCommand.Receipt)
            {
                accepted++;
            }
        }
        while (reply.Command == StompCommand.Receipt && accepted < 10);

        Assert.That(reply.Command, Is.EqualTo(StompCommand.Error), reply.ToString());
        Assert.That(reply["message"], Is.EqualTo("limit exceeded: max-queue-bytes for queue '/queue/big'"));
        Assert.That(reply["receipt-id"], Is.EqualTo($"r{accepted + 1}"));
        Assert.That(accepted, Is.InRange(3, 4), "five 2 KB messages do not fit in 10,000 bytes, four with their headers may");

        await using var consumer = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await consumer.ConnectAsync();
        await consumer.SubscribeAsync("q", "/queue/big");
        for (var i = 1; i <= accepted; i++)
        {
            Assert.That((await consumer.ReceiveAsync()).BodyText, Does.StartWith($"{i}:"));
        }

        Assert.That(await consumer.TryReceiveAsync(TimeSpan.FromMilliseconds(200)), Is.Null, "the refused message was not queued");
    }

    [Test]
    public async Task With_DropOldest_a_full_queue_drops_its_oldest_messages_and_counts_them()
    {
        await using var server = await TestServer.StartAsync(o =>
        {
            o.MaxQueueLength = 3;
            o.QueueOverflow = QueueOverflow.DropOldest;
        });
        using var meter = new BrokerMeter(server.Services);
        await using var producer = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await producer.ConnectAsync();
        for (var i = 1; i <= 5; i++)
        {
            await producer.PublishAsync("/queue/latest", $"m{i}");
        }

        await producer.PublishAsync("/queue/latest", "m6", ("receipt", "last"));
        await producer.ExpectReceiptAsync("last");
        Assert.That(meter.Value("broker.messages.dropped", "queue"), Is.EqualTo(3));

        await using var consumer = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await consumer.ConnectAsync();
        await consumer.SubscribeAsync("q", "/queue/latest");
        Assert.That(new[] { (await consumer.ReceiveAsync()).BodyText, (await consumer.ReceiveAsync()).BodyText, (await consumer.ReceiveAsync()).BodyText },
            Is.EqualTo(new[] { "m4", "m5", "m6" }));
        Assert.That(await consumer.TryReceiveAsync(TimeSpan.FromMilliseconds(200)), Is.Null);
    }

    private static async Task<List<ReceivedFrame>> ReceiveUntilClosedAsync(StompTestClient client)
    {
        var frames = new List<ReceivedFrame>();
        Assert.That(await client.WaitClosedAsync(), Is.True, "the server closes the connection after the ERROR");
        while (client.TryTake() is { } frame)
        {
            frames.Add(frame);
        }

        return frames;
    }
}
