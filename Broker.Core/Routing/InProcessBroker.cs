using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Broker.Protocol;
using Broker.Resources;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Broker.Routing;

/// <summary>
/// The broker inside the process: <c>/topic/</c> fan-out through <see cref="TopicRouter"/>,
/// <c>/queue/</c> competing consumers through <see cref="MessageQueue"/>. It holds at most
/// <c>max-destinations</c> topics and queues; a queue nobody uses for <c>Broker:QueueExpiry</c> goes with its
/// messages, and a queue message redelivered past <c>Broker:MaxRedeliveries</c> moves to its dead-letter queue.
/// </summary>
internal sealed partial class InProcessBroker : IMessageBroker, IDisposable
{
    public const string MaxDestinationsLimit = "max-destinations";

    private readonly QueueLimits _queueLimits;
    private readonly int _maxDestinations;
    private readonly TimeSpan _queueExpiry;
    private readonly TimeSpan _sessionQueueExpiry;
    private readonly string _deadLetterSuffix;
    private readonly RedeliveryPolicy? _redelivery;
    private readonly BrokerMetrics _metrics;
    private readonly MemoryBudget? _budget;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly TopicRouter _topics;
    private readonly ITimer _sweeper;

    /// <param name="sessionQueueExpiry">
    /// How long the queue behind a <c>/user/queue/</c> subscription outlives its session's last activity (the
    /// durable-session TTL: after it the session cannot resume); null: <see cref="StompBrokerOptions.QueueExpiry"/>.
    /// </param>
    public InProcessBroker(
        StompBrokerOptions options, BrokerMetrics metrics, TimeProvider? time = null, ILogger? logger = null, TimeSpan? sessionQueueExpiry = null, MemoryBudget? budget = null)
    {
        time ??= TimeProvider.System;
        _time = time;
        _queueLimits = new QueueLimits(options.MaxQueueLength, options.MaxQueueBytes, options.QueueOverflow);
        _maxDestinations = options.MaxDestinations;
        _queueExpiry = options.QueueExpiry;
        _sessionQueueExpiry = sessionQueueExpiry is { } ttl && (options.QueueExpiry <= TimeSpan.Zero || ttl < options.QueueExpiry) ? ttl : options.QueueExpiry;
        _deadLetterSuffix = options.DeadLetterSuffix;
        _redelivery = options.MaxRedeliveries > 0 ? new RedeliveryPolicy(options.MaxRedeliveries, DeadLetter) : null;
        _metrics = metrics;
        _budget = budget;
        _logger = logger ?? NullLogger.Instance;
        _topics = new TopicRouter(new HistoryOptions(options.HistorySize, options.HistoryMaxAge, options.HistoryMaxBytes), time, budget);
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
            var key = Destinations.Name(request.Destination);
            if (!Destinations.IsWildcard(key) && !_topics.Contains(key))
            {
                EnsureRoom();
            }

            subscription = _topics.Subscribe(key, sink, request.ResumeFrom, request.Durable);
        }

        return ValueTask.FromResult(subscription);
    }

    public void Dispose() => _sweeper.Dispose();

    /// <summary>Drops idle topics, empty queues nobody consumes, and expired queues with their messages; returns how many.</summary>
    internal int Sweep()
    {
        var swept = _topics.Sweep();
        foreach (var (name, queue) in _queues)
        {
            var expiry = Sessions.UserDestinations.IsSessionQueue(name) ? _sessionQueueExpiry : _queueExpiry;
            if (queue.TryEvict())
            {
                _queues.TryRemove(new KeyValuePair<string, MessageQueue>(name, queue));
                swept++;
            }
            else if (expiry > TimeSpan.Zero && queue.TryExpire(expiry, out var dropped))
            {
                _queues.TryRemove(new KeyValuePair<string, MessageQueue>(name, queue));
                CountDropped(dropped);
                _metrics.LimitExceeded("queue-expiry");
                RoutingLog.QueueExpired(_logger, name, expiry, dropped);
                swept++;
            }
        }

        return swept;
    }

    /// <summary>Deletes the queue behind a user destination of a session that has ended for good, with its messages.</summary>
    public void DeleteSessionQueue(string destination)
    {
        if (_queues.TryGetValue(destination, out var queue) && queue.TryExpire(TimeSpan.Zero, out var dropped))
        {
            _queues.TryRemove(new KeyValuePair<string, MessageQueue>(destination, queue));
            CountDropped(dropped);
            RoutingLog.SessionQueueDeleted(_logger, destination, dropped);
        }
    }

    internal int QueueCount => _queues.Count;

    internal int TopicCount => _topics.TopicCount;

    private void CountDropped(int dropped)
    {
        for (var i = 0; i < dropped; i++)
        {
            _metrics.Dropped("queue");
        }
    }

    private MessageQueue GetQueue(string destination)
    {
        if (_queues.TryGetValue(destination, out var queue))
        {
            return queue;
        }

        EnsureRoom();
        return _queues.GetOrAdd(destination, static (name, self) => new MessageQueue(name, self._queueLimits, _ => self._metrics.Dropped(), self._budget, self._redelivery, self._time), this);
    }

    // max-destinations: checked before a topic or queue is made (concurrent makers may pass it by a few).
    private void EnsureRoom()
    {
        var live = (long)_topics.TopicCount + _queues.Count;
        if (_maxDestinations > 0 && live >= _maxDestinations)
        {
            throw StompProtocolException.LimitExceeded(MaxDestinationsLimit, live + 1, _maxDestinations);
        }
    }

    // A message redelivered past MaxRedeliveries: to /queue/<name><suffix>, with where it came from.
    private void DeadLetter(MessageQueue queue, BrokerMessage message)
    {
        var target = queue.Name + _deadLetterSuffix;
        var headers = new List<KeyValuePair<string, string>>(message.Headers.Count + 1);
        headers.AddRange(message.Headers);
        headers.Add(new("original-destination", queue.Name));
        var moved = new BrokerMessage(target, message.MessageId, headers, message.Body);
        Exception? refused = null;
        try
        {
            EnqueueResult result;
            while ((result = GetQueue(target).TryEnqueue(moved)) == EnqueueResult.Evicted)
            {
                // Swept between lookup and lock; the next lookup makes a new queue.
            }

            if (result != EnqueueResult.Enqueued)
            {
                refused = LimitExceededException.QueueFull(result == EnqueueResult.RefusedLength ? LimitNames.MaxQueueLength : LimitNames.MaxQueueBytes, target);
            }
        }
        catch (StompProtocolException ex)
        {
            // max-destinations: no room for the dead-letter queue.
            refused = ex;
        }

        if (refused is not null)
        {
            _metrics.Dropped("queue");
            RoutingLog.DeadLetterDropped(_logger, refused, message.MessageId, queue.Name, message.Redeliveries);
            return;
        }

        _metrics.LimitExceeded("max-redeliveries");
        RoutingLog.DeadLettered(_logger, message.MessageId, queue.Name, message.Redeliveries, target);
    }
}
