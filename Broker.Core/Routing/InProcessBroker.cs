using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Broker.Resources;

namespace Broker.Routing;

/// <summary>
/// The broker inside the process: <c>/topic/</c> fan-out through <see cref="TopicRouter"/>,
/// <c>/queue/</c> competing consumers through <see cref="MessageQueue"/>.
/// </summary>
internal sealed partial class InProcessBroker : IMessageBroker, IDisposable
{
    private readonly QueueLimits _queueLimits;
    private readonly BrokerMetrics _metrics;
    private readonly MemoryBudget? _budget;
    private readonly TopicRouter _topics;
    private readonly ITimer _sweeper;

    public InProcessBroker(StompBrokerOptions options, BrokerMetrics metrics, TimeProvider? time = null, MemoryBudget? budget = null)
    {
        time ??= TimeProvider.System;
        _queueLimits = new QueueLimits(options.MaxQueueLength, options.MaxQueueBytes, options.QueueOverflow);
        _metrics = metrics;
        _budget = budget;
        _topics = new TopicRouter(new HistoryOptions(options.HistorySize, options.HistoryMaxAge), time, budget);
        _sweeper = time.CreateTimer(static s => ((InProcessBroker)s!).Sweep(), this, TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(1));
        metrics.Observe("destinations.active", "inprocess", () =>
        [
            new Measurement<long>(_topics.TopicCount, new KeyValuePair<string, object?>("destination.kind", "topic")),
            new Measurement<long>(_queues.Count, new KeyValuePair<string, object?>("destination.kind", "queue")),
        ]);
        metrics.Observe("queue.messages", "inprocess", () => _queues.Values.Sum(q => (long)q.ReadyCount));
    }

    /// <summary>
    /// Names this process's queues: they hold their messages while consumers are away, but only
    /// as long as the process lives, so a resume position from another instance is not recovered.
    /// </summary>
    public string InstanceEpoch { get; } = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8));

    private readonly ConcurrentDictionary<string, MessageQueue> _queues = new(StringComparer.Ordinal);

    public string? ValidateDestination(string destination, bool forSubscribe) => Destinations.Validate(destination, forSubscribe, DestinationLimits.None);

    public ValueTask PublishAsync(BrokerMessage message, CancellationToken cancellationToken = default)
    {
        var destination = message.Destination;
        if (Destinations.IsQueue(destination))
        {
            EnqueueResult result;
            while ((result = GetQueue(destination).TryEnqueue(message)) == EnqueueResult.Evicted)
            {
                // Swept between lookup and lock; the next lookup makes a new queue.
            }

            if (result != EnqueueResult.Enqueued)
            {
                return ValueTask.FromException(LimitExceededException.QueueFull(
                    result == EnqueueResult.RefusedLength ? LimitNames.MaxQueueLength : LimitNames.MaxQueueBytes, destination));
            }

            _metrics.Published("queue");
        }
        else
        {
            _metrics.Published("topic");
            _topics.Publish(message, Destinations.Name(destination));
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask<IBrokerSubscription> SubscribeAsync(SubscriptionRequest request, IMessageSink sink, CancellationToken cancellationToken = default)
    {
        IBrokerSubscription subscription;
        if (Destinations.IsQueue(request.Destination))
        {
            var recovered = request.ResumeFrom?.Epoch == InstanceEpoch;
            QueueConsumer? consumer;
            while ((consumer = GetQueue(request.Destination).TryAddConsumer(sink, request.AckMode, request.Prefetch, recovered, new StreamPosition(InstanceEpoch, 0))) is null)
            {
            }

            subscription = consumer;
        }
        else
        {
            subscription = _topics.Subscribe(Destinations.Name(request.Destination), sink, request.ResumeFrom);
        }

        return ValueTask.FromResult(subscription);
    }

    public void Dispose() => _sweeper.Dispose();

    /// <summary>Drops idle topics and empty queues nobody consumes; returns how many.</summary>
    internal int Sweep()
    {
        var swept = _topics.Sweep();
        foreach (var (name, queue) in _queues)
        {
            if (queue.TryEvict())
            {
                _queues.TryRemove(new KeyValuePair<string, MessageQueue>(name, queue));
                swept++;
            }
        }

        return swept;
    }

    internal int QueueCount => _queues.Count;

    private MessageQueue GetQueue(string destination) =>
        _queues.GetOrAdd(destination, static (name, self) => new MessageQueue(name, self._queueLimits, _ => self._metrics.Dropped(), self._budget), this);
}
