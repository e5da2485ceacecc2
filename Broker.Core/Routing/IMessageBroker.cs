using Broker.Durability;

namespace Broker.Routing;

/// <summary>
/// The swap point between the STOMP session engine and whatever moves messages: the in-process
/// broker or a relay to an external broker. Destinations keep one meaning across implementations
/// (<c>/topic/</c> fan-out with <c>*</c>/<c>#</c> wildcards, <c>/queue/</c> competing consumers).
/// </summary>
public interface IMessageBroker
{
    /// <summary>Checks a destination for SEND; returns an error message, or null when it is valid.</summary>
    string? ValidateDestination(string destination, bool forSubscribe);

    /// <summary>Publishes a message. Completes when the broker has taken responsibility for it.</summary>
    ValueTask PublishAsync(BrokerMessage message, CancellationToken cancellationToken = default);

    /// <summary>
    /// Publishes a message whose publisher does not wait for the broker to take responsibility for it (a SEND
    /// without a receipt). A broker that confirms publishes asynchronously (the RabbitMQ relay) may complete once
    /// the message is on its way, keeping the order of one <paramref name="publisher"/>'s messages and bounding
    /// how many await confirmation; it then returns false and reports the outcome to <paramref name="publisher"/>
    /// later, exactly once. True: the message is published, and nothing will be reported. By default, this is
    /// <see cref="PublishAsync(BrokerMessage, CancellationToken)"/>.
    /// </summary>
    ValueTask<bool> PublishPipelinedAsync(BrokerMessage message, IPublisher publisher, CancellationToken cancellationToken = default)
    {
        var publish = PublishAsync(message, cancellationToken);
        return publish.IsCompletedSuccessfully ? new ValueTask<bool>(true) : AwaitPublished(publish);

        static async ValueTask<bool> AwaitPublished(ValueTask publish)
        {
            await publish.ConfigureAwait(false);
            return true;
        }
    }

    /// <summary>
    /// Deletes, with its messages, the queue behind a <c>/user/queue/</c> subscription of a session that has ended
    /// for good (DISCONNECT, or a connection lost with no durable session to resume). By default nothing: a broker
    /// whose queues expire by themselves (the relay's <c>x-expires</c>) may leave it to that.
    /// </summary>
    void DeleteSessionQueue(string destination)
    {
    }

    /// <summary>
    /// A durable session that was away ended for good without resuming (terminated, ended past
    /// <c>max-away-sessions-per-user</c>, or found expired): what the broker kept for its subscriptions to resume may
    /// go. By default nothing: the in-process broker keeps nothing per session for a topic subscription, and the
    /// relay's queues expire by themselves (<c>x-expires</c>), later.
    /// </summary>
    void DeleteDurableSession(SessionRecord record)
    {
    }

    /// <summary>Starts delivering messages sent to <paramref name="request"/>'s destination to <paramref name="sink"/>.</summary>
    ValueTask<IBrokerSubscription> SubscribeAsync(SubscriptionRequest request, IMessageSink sink, CancellationToken cancellationToken = default);
}

/// <summary>Who published a message with <see cref="IMessageBroker.PublishPipelinedAsync"/>: told how it ended. Called on broker threads; never blocks.</summary>
public interface IPublisher
{
    /// <summary>The broker has taken responsibility for <paramref name="message"/>.</summary>
    void Confirmed(BrokerMessage message);

    /// <summary><paramref name="message"/> could not be published (refused, or the broker stayed unreachable).</summary>
    void Failed(BrokerMessage message, Exception exception);
}

/// <summary>How a subscriber acknowledges messages (STOMP 1.2 "SUBSCRIBE ack Header").</summary>
public enum AckMode : byte
{
    Auto,
    Client,
    ClientIndividual,
}

/// <summary>What a session asks the broker for.</summary>
/// <param name="Prefetch">Most unacknowledged messages outstanding at once in client modes; 0 = no limit.</param>
/// <param name="ResumeFrom">For a resumed subscription: the position of the last message delivered before.</param>
/// <param name="Durable">
/// The session can be resumed after its connection drops (durable sessions are on): a broker that keeps
/// messages per subscription (the RabbitMQ relay) keeps them while the client is away, until
/// <see cref="IBrokerSubscription.Unsubscribe"/>. The in-process broker ignores it.
/// </param>
public sealed record SubscriptionRequest(string SessionId, string SubscriptionId, string Destination, AckMode AckMode, int Prefetch = 0, StreamPosition? ResumeFrom = null, bool Durable = false);

/// <summary>A point in a destination's message stream: an epoch (which changes when history is lost) and an offset.</summary>
public sealed record StreamPosition(string Epoch, long Offset);

/// <summary>A live subscription inside the broker.</summary>
public interface IBrokerSubscription : IDisposable
{
    /// <summary>
    /// For a subscription made with <see cref="SubscriptionRequest.ResumeFrom"/>: true when every message
    /// published after that position has been or will now be delivered, once, in order.
    /// </summary>
    bool Recovered { get; }

    /// <summary>Settles the delivery with <paramref name="deliveryTag"/> (and every earlier one when <paramref name="multiple"/>).</summary>
    void Ack(ulong deliveryTag, bool multiple);

    /// <summary>Rejects the delivery: queued messages go back to be delivered to a consumer again.</summary>
    void Nack(ulong deliveryTag, bool multiple);

    /// <summary>
    /// Called, in delivery order, once <paramref name="message"/> (a delivery of this subscription that
    /// carries a stream position) has been written to the client. A broker that holds auto-ack
    /// deliveries until they are written settles them here.
    /// </summary>
    void Written(BrokerMessage message)
    {
    }

    /// <summary>
    /// Ends the subscription for good (UNSUBSCRIBE, DISCONNECT). <see cref="IDisposable.Dispose"/> only
    /// detaches it from a connection that went away, and a durable session may resume it.
    /// </summary>
    void Unsubscribe() => Dispose();
}

/// <summary>Where a broker delivers a subscription's messages. Called on broker threads; never blocks.</summary>
public interface IMessageSink
{
    /// <summary>
    /// Called once, before any delivery, with the position delivery continues after (the resume
    /// position when recovered, else the stream's end); null where the destination has no positions.
    /// </summary>
    void Start(StreamPosition? after);

    /// <summary>Hands over one delivery; false when the subscriber can take no more (closed or over its limit).</summary>
    bool TryDeliver(BrokerMessage message, ulong deliveryTag);
}
