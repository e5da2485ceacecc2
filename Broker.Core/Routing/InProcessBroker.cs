using System.Collections.Concurrent;

namespace Broker.Routing;

/// <summary>
/// The broker inside the process: <c>/topic/</c> fan-out through <see cref="TopicRouter"/>,
/// <c>/queue/</c> competing consumers through <see cref="MessageQueue"/>.
/// </summary>
internal sealed class InProcessBroker(StompBrokerOptions options, BrokerMetrics metrics) : IMessageBroker
{
    private readonly int _maxQueueLength = options.MaxQueueLength;
    private readonly BrokerMetrics _metrics = metrics;

    public const string TopicPrefix = "/topic/";
    public const string QueuePrefix = "/queue/";

    private readonly TopicRouter _topics = new();
    private readonly ConcurrentDictionary<string, MessageQueue> _queues = new(StringComparer.Ordinal);

    public string? ValidateDestination(string destination, bool forSubscribe)
    {
        if (destination.StartsWith(TopicPrefix, StringComparison.Ordinal))
        {
            var key = destination[TopicPrefix.Length..];
            if (key.Length == 0)
            {
                return "destination has an empty topic key";
            }

            if (!forSubscribe && TopicPattern.IsWildcard(key))
            {
                return $"cannot send to a wildcard destination '{destination}'";
            }

            return null;
        }

        if (destination.StartsWith(QueuePrefix, StringComparison.Ordinal))
        {
            return destination.Length == QueuePrefix.Length ? "destination has an empty queue name" : null;
        }

        return $"unknown destination '{destination}': use /topic/<key> or /queue/<name>";
    }

    public ValueTask PublishAsync(BrokerMessage message, CancellationToken cancellationToken = default)
    {
        _metrics.Published();
        var destination = message.Destination;
        if (destination.StartsWith(QueuePrefix, StringComparison.Ordinal))
        {
            GetQueue(destination).Enqueue(message);
        }
        else
        {
            _topics.Publish(message, destination[TopicPrefix.Length..]);
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask<IBrokerSubscription> SubscribeAsync(SubscriptionRequest request, IMessageSink sink, CancellationToken cancellationToken = default)
    {
        IBrokerSubscription subscription;
        if (request.Destination.StartsWith(QueuePrefix, StringComparison.Ordinal))
        {
            subscription = GetQueue(request.Destination).AddConsumer(sink, request.AckMode, request.Prefetch);
        }
        else
        {
            var topic = new TopicSubscription(_topics, request.Destination[TopicPrefix.Length..], sink);
            _topics.Add(topic);
            subscription = topic;
        }

        return ValueTask.FromResult(subscription);
    }

    private MessageQueue GetQueue(string destination) =>
        _queues.GetOrAdd(destination, static (name, self) => new MessageQueue(name, self._maxQueueLength, _ => self._metrics.Dropped()), this);
}
