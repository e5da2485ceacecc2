using System.Collections.Concurrent;
using Broker.Durability;
using Broker.Protocol;
using Broker.Routing;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace Broker.Tests.Sessions;

/// <summary>
/// What the session tells an <see cref="IMessageBroker"/> beyond subscribe and publish: whether a
/// subscription belongs to a durable session, when it ends for good (UNSUBSCRIBE, DISCONNECT) as
/// opposed to a dropped connection, and when a delivery has been written. A recording fake broker.
/// </summary>
[TestFixture]
public sealed class BrokerContractTests
{
    [Test]
    public async Task Subscriptions_are_durable_exactly_when_durable_sessions_are_on()
    {
        var plain = new RecordingBroker();
        await using (var harness = new SessionHarness(broker: b => b.Services.AddSingleton<IMessageBroker>(plain)))
        {
            var client = await harness.OpenConnectedAsync();
            await client.SubscribeAndWaitAsync("s", "/topic/t");
        }

        var durable = new RecordingBroker();
        await using (var harness = new SessionHarness(broker: b => b.AddInMemorySessionStore().Services.AddSingleton<IMessageBroker>(durable)))
        {
            var (client, connected) = await harness.OpenConnectedAsync("1.2", "guest");
            await client.SubscribeAndWaitAsync("s", "/topic/t");
            await client.DisposeAsync();
            await Eventually.That(() => durable.Subscriptions.Count == 1 && durable.Subscriptions.Single().Disposed, "the durable subscription disposed");
            var (_, resumed) = await harness.OpenConnectedAsync("1.2", "guest", connected["session-token"]);
            Assert.That(resumed["resumed"], Is.EqualTo("true"));
        }

        Assert.That(plain.Subscriptions.Single().Request.Durable, Is.False);
        Assert.That(durable.Subscriptions.Select(s => s.Request.Durable), Is.EqualTo(new[] { true, true }), "the first subscribe and the resumed one");
    }

    [Test]
    public async Task UNSUBSCRIBE_and_DISCONNECT_end_subscriptions_a_dropped_connection_only_releases_them()
    {
        var broker = new RecordingBroker();
        await using var harness = new SessionHarness(broker: b => b.AddInMemorySessionStore().Services.AddSingleton<IMessageBroker>(broker));
        var client = await harness.OpenConnectedAsync();
        await client.SubscribeAndWaitAsync("unsubscribed", "/topic/a");
        await client.SubscribeAndWaitAsync("disconnected", "/topic/b");
        await client.SendFrameAsync(StompCommand.Unsubscribe, ("id", "unsubscribed"), ("receipt", "u"));
        await client.ExpectReceiptAsync("u");
        await client.SendFrameAsync(StompCommand.Disconnect, ("receipt", "bye"));
        await client.ExpectReceiptAsync("bye");
        var dropper = await harness.OpenConnectedAsync();
        await dropper.SubscribeAndWaitAsync("dropped", "/topic/c");
        await dropper.DisposeAsync();

        await Eventually.That(() => broker.Subscriptions.Count == 3 && broker.Subscriptions.All(s => s.Disposed), "all three subscriptions disposed");
        var byId = broker.Subscriptions.ToDictionary(s => s.Request.SubscriptionId);
        Assert.That(byId["unsubscribed"].Unsubscribed, Is.True);
        Assert.That(byId["disconnected"].Unsubscribed, Is.True);
        Assert.That(byId["dropped"].Unsubscribed, Is.False);
    }

    [Test]
    public async Task The_broker_hears_of_each_positioned_delivery_once_it_is_written_in_order()
    {
        var broker = new RecordingBroker();
        await using var harness = new SessionHarness(broker: b => b.Services.AddSingleton<IMessageBroker>(broker));
        var client = await harness.OpenConnectedAsync();
        await client.SubscribeAndWaitAsync("s", "/topic/t");
        var subscription = broker.Subscriptions.Single();

        for (var i = 1; i <= 3; i++)
        {
            subscription.Deliver(i);
        }

        for (var i = 1; i <= 3; i++)
        {
            Assert.That((await client.ReceiveAsync()).BodyText, Is.EqualTo($"m{i}"));
        }

        await Eventually.That(() => subscription.Written.Count == 3, "three writes reported");
        Assert.That(subscription.Written, Is.EqualTo(new long[] { 1, 2, 3 }));
    }

    [Test]
    public async Task A_delivery_written_before_SubscribeAsync_returned_is_reported_too()
    {
        var broker = new RecordingBroker { DeliverWhileSubscribing = true };
        await using var harness = new SessionHarness(broker: b => b.Services.AddSingleton<IMessageBroker>(broker));
        var client = await harness.OpenConnectedAsync();
        await client.SubscribeAsync("s", "/queue/backlog", receipt: "subscribed");

        // The broker delivered its backlog and holds SubscribeAsync until the client has read it.
        Assert.That((await client.ReceiveAsync()).BodyText, Is.EqualTo("m1"));
        broker.ReleaseSubscribe.SetResult();
        await client.ExpectReceiptAsync("subscribed");

        await Eventually.That(() => broker.Subscriptions.Single().Written.Count == 1, "one write reported");
        Assert.That(broker.Subscriptions.Single().Written, Is.EqualTo(new long[] { 1 }));
    }

    [Test]
    public async Task A_failing_broker_is_answered_with_internal_error_never_with_its_exception_message()
    {
        await using var harness = new SessionHarness(broker: b => b.Services.AddSingleton<IMessageBroker>(new FailingBroker()));
        var awaited = await harness.OpenConnectedAsync();
        await awaited.SendFrameAsync(StompCommand.Send, ("destination", "/queue/q"), ("receipt", "r"));
        var pipelined = await harness.OpenConnectedAsync();
        await pipelined.SendFrameAsync(StompCommand.Send, ("destination", "/queue/q"));

        var awaitedError = await awaited.ReceiveAsync();
        var pipelinedError = await pipelined.ReceiveAsync();

        Assert.That((awaitedError.Command, awaitedError["message"], awaitedError["receipt-id"]), Is.EqualTo((StompCommand.Error, "internal error", "r")));
        Assert.That((pipelinedError.Command, pipelinedError["message"]), Is.EqualTo((StompCommand.Error, "internal error")));
        Assert.That(awaitedError.BodyText + pipelinedError.BodyText, Does.Not.Contain(FailingBroker.Secret));
    }

    private sealed class FailingBroker : IMessageBroker
    {
        public const string Secret = "password=hunter2 at db-7";

        public string? ValidateDestination(string destination, bool forSubscribe) => null;

        public ValueTask PublishAsync(BrokerMessage message, CancellationToken cancellationToken = default) =>
            ValueTask.FromException(new InvalidOperationException(Secret));

        // As the relay does: the SEND is on its way, and its failure is reported later.
        public ValueTask<bool> PublishPipelinedAsync(BrokerMessage message, IPublisher publisher, CancellationToken cancellationToken = default)
        {
            _ = Task.Run(() => publisher.Failed(message, new IOException(Secret)), CancellationToken.None);
            return new ValueTask<bool>(false);
        }

        public ValueTask<IBrokerSubscription> SubscribeAsync(SubscriptionRequest request, IMessageSink sink, CancellationToken cancellationToken = default) =>
            throw new NotSupportedException();
    }

    private sealed class RecordingBroker : IMessageBroker
    {
        public ConcurrentQueue<RecordedSubscription> Subscriptions { get; } = new();

        public string? ValidateDestination(string destination, bool forSubscribe) => null;

        public ValueTask PublishAsync(BrokerMessage message, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

        public bool DeliverWhileSubscribing { get; init; }

        public TaskCompletionSource ReleaseSubscribe { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public async ValueTask<IBrokerSubscription> SubscribeAsync(SubscriptionRequest request, IMessageSink sink, CancellationToken cancellationToken = default)
        {
            var subscription = new RecordedSubscription(request, sink);
            sink.Start(new StreamPosition("e", 0));
            Subscriptions.Enqueue(subscription);
            if (DeliverWhileSubscribing)
            {
                subscription.Deliver(1);
                await ReleaseSubscribe.Task;
            }

            return subscription;
        }
    }

    private sealed class RecordedSubscription(SubscriptionRequest request, IMessageSink sink) : IBrokerSubscription
    {
        public SubscriptionRequest Request { get; } = request;

        public ConcurrentQueue<long> Written { get; } = new();

        public volatile bool Disposed;

        public volatile bool Unsubscribed;

        public bool Recovered => true;

        public void Deliver(long offset) =>
            sink.TryDeliver(new BrokerMessage(Request.Destination, $"id-{offset}", [], System.Text.Encoding.UTF8.GetBytes($"m{offset}")) { Epoch = "e", Offset = offset }, (ulong)offset);

        public void Ack(ulong deliveryTag, bool multiple)
        {
        }

        public void Nack(ulong deliveryTag, bool multiple)
        {
        }

        void IBrokerSubscription.Written(BrokerMessage message) => Written.Enqueue(message.Offset);

        public void Unsubscribe()
        {
            Unsubscribed = true;
            Disposed = true;
        }

        public void Dispose() => Disposed = true;
    }
}
