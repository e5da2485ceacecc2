using System.Collections.Concurrent;
using System.Diagnostics;
using Broker.Protocol;
using NUnit.Framework;

namespace Broker.Tests.EndToEnd;

/// <summary>W3C trace context through the broker: a SEND's traceparent continues into its send span, each MESSAGE's delivery, and the MESSAGE's traceparent.</summary>
[TestFixture]
[NonParallelizable]
public sealed class TracingTests
{
    [Test]
    public async Task A_send_its_routing_and_each_message_written_form_one_trace()
    {
        var spans = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == BrokerTelemetry.ActivitySourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
        await using var server = await TestServer.StartAsync();
        var subscribers = new List<StompTestClient>();
        for (var i = 0; i < 2; i++)
        {
            var client = await StompTestClient.ConnectTcpAsync(server.TcpPort);
            await client.ConnectAsync();
            await client.SubscribeAndWaitAsync("s" + i, "/topic/traced");
            subscribers.Add(client);
        }

        await using var publisher = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await publisher.ConnectAsync();
        var traceId = ActivityTraceId.CreateRandom();
        var callerSpan = ActivitySpanId.CreateRandom();
        await publisher.PublishAsync("/topic/traced", "hello", ("traceparent", $"00-{traceId}-{callerSpan}-01"), ("receipt", "r1"));
        await publisher.ExpectReceiptAsync("r1");
        var messages = new List<ReceivedFrame>();
        foreach (var subscriber in subscribers)
        {
            messages.Add(await subscriber.ReceiveAsync());
        }

        await Eventually.That(() => spans.Count(s => s.TraceId == traceId) >= 3, "the send span and two deliver spans");
        var send = spans.Single(s => s.TraceId == traceId && s.DisplayName == "send /topic/traced");
        var delivers = spans.Where(s => s.TraceId == traceId && s.DisplayName == "deliver /topic/traced").ToList();

        Assert.That(send.ParentSpanId, Is.EqualTo(callerSpan), "the SEND's traceparent is the send span's parent");
        Assert.That(send.GetTagItem("messaging.destination.name"), Is.EqualTo("/topic/traced"));
        Assert.That(delivers, Has.Count.EqualTo(2));
        Assert.That(delivers.Select(d => d.ParentSpanId), Is.All.EqualTo(send.SpanId), "each delivery is a child of the send span");
        Assert.That(delivers.Select(d => d.GetTagItem("messaging.destination.subscription.name")), Is.EquivalentTo(new[] { "s0", "s1" }));
        foreach (var message in messages)
        {
            Assert.That(message.Command, Is.EqualTo(StompCommand.Message));
            Assert.That(message["traceparent"], Is.EqualTo($"00-{traceId}-{send.SpanId}-01"), "the consumer continues from the broker's span");
        }

        foreach (var subscriber in subscribers)
        {
            await subscriber.DisposeAsync();
        }
    }

    [Test]
    public async Task Without_a_listener_the_traceparent_travels_unchanged()
    {
        await using var server = await TestServer.StartAsync();
        await using var subscriber = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await subscriber.ConnectAsync();
        await subscriber.SubscribeAndWaitAsync("s", "/topic/untraced");
        await using var publisher = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await publisher.ConnectAsync();
        const string traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

        await publisher.PublishAsync("/topic/untraced", "hello", ("traceparent", traceparent));
        var message = await subscriber.ReceiveAsync();

        Assert.That(message["traceparent"], Is.EqualTo(traceparent));
    }
}
