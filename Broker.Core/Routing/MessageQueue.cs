using Broker.Resources;

namespace Broker.Routing;

/// <summary>
/// A point-to-point queue: competing consumers served round robin. In the client ack modes a
/// delivery stays owned by the queue until acknowledged; a NACK or the consumer leaving puts it
/// back at the head, to go to the next consumer with room. A message put back more than
/// <see cref="RedeliveryPolicy.MaxRedeliveries"/> times goes to <see cref="RedeliveryPolicy.DeadLetter"/> instead.
/// Ready messages are bounded by count and bytes (<see cref="QueueLimits"/>); their bytes count against the memory budget.
/// </summary>
internal sealed class MessageQueue(
    string name, QueueLimits limits, Action<BrokerMessage> onDropped, MemoryBudget? budget = null, RedeliveryPolicy? redelivery = null, TimeProvider? time = null)
{
    private readonly Lock _gate = new();
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private long _lastActivity = (time ?? TimeProvider.System).GetTimestamp();
    private readonly LinkedList<BrokerMessage> _ready = new();
    private readonly ConsumerRing<QueueConsumer> _consumers = new();
    private long _readyBytes;
    private bool _evicted;

    public string Name { get; } = name;

    public int ReadyCount
    {
        get
        {
            lock (_gate)
            {
                return _ready.Count;
            }
        }
    }

    /// <summary>Ready messages, consumers and deliveries awaiting an ack (for statistics).</summary>
    internal (int Ready, int Consumers, int Unacked) Statistics()
    {
        lock (_gate)
        {
            var unacked = 0;
            foreach (var consumer in _consumers)
            {
                unacked += consumer.Unacked.Count;
            }

            return (_ready.Count, _consumers.Count, unacked);
        }
    }

    /// <summary>Bytes of the ready messages (as <see cref="MessageSize"/> counts them).</summary>
    public long ReadyBytes
    {
        get
        {
            lock (_gate)
            {
                return _readyBytes;
            }
        }
    }

    /// <summary>
    /// Queues a published message, or refuses it when the queue is full and its policy is
    /// <see cref="QueueOverflow.RejectPublish"/>. <see cref="EnqueueResult.Evicted"/>: the queue was swept away
    /// meanwhile; the caller looks it up again.
    /// </summary>
    public EnqueueResult TryEnqueue(BrokerMessage message)
    {
        var size = MessageSize.Of(message);
        lock (_gate)
        {
            if (_evicted)
            {
                return EnqueueResult.Evicted;
            }

            _lastActivity = _time.GetTimestamp();
            if (limits.Overflow == QueueOverflow.RejectPublish)
            {
                if (_ready.Count >= limits.MaxLength)
                {
                    return EnqueueResult.RefusedLength;
                }

                if (limits.MaxBytes > 0 && _readyBytes + size > limits.MaxBytes)
                {
                    return EnqueueResult.RefusedBytes;
                }
            }
            else
            {
                // "drop-head", as RabbitMQ's default: the oldest ready messages go until the new one fits
                // (a message larger than max-queue-bytes on its own still goes in, alone).
                while (_ready.Count > 0 && (_ready.Count >= limits.MaxLength || (limits.MaxBytes > 0 && _readyBytes + size > limits.MaxBytes)))
                {
                    onDropped(TakeFirst());
                }
            }

            AddReady(message, size, atHead: false);
            Dispatch();
            return EnqueueResult.Enqueued;
        }
    }

    /// <summary>Retires an idle queue (no consumers, no messages) so unused names do not pile up.</summary>
    public bool TryEvict()
    {
        lock (_gate)
        {
            if (_consumers.Count > 0 || _ready.Count > 0)
            {
                return false;
            }

            _evicted = true;
            return true;
        }
    }

    /// <summary>
    /// Retires a queue nobody has consumed from or sent to for <paramref name="expiry"/> (<c>Broker:QueueExpiry</c>),
    /// with its messages (their bytes go back to the memory budget): <paramref name="dropped"/> says how many.
    /// </summary>
    public bool TryExpire(TimeSpan expiry, out int dropped)
    {
        lock (_gate)
        {
            dropped = 0;
            if (_evicted || _consumers.Count > 0 || _time.GetElapsedTime(_lastActivity) < expiry)
            {
                return false;
            }

            dropped = _ready.Count;
            _ready.Clear();
            budget?.Subtract(MemoryComponent.Queues, _readyBytes);
            _readyBytes = 0;
            _evicted = true;
            return true;
        }
    }

    public QueueConsumer? TryAddConsumer(IMessageSink sink, AckMode ackMode, int prefetch, bool recovered, StreamPosition start)
    {
        var consumer = new QueueConsumer(this, sink, ackMode, prefetch) { Recovered = recovered };
        lock (_gate)
        {
            if (_evicted)
            {
                return null;
            }

            sink.Start(start);
            _lastActivity = _time.GetTimestamp();
            _consumers.Add(consumer);
            Dispatch();
        }

        return consumer;
    }

    internal void Settle(QueueConsumer consumer, ulong tag, bool multiple, bool requeue)
    {
        List<BrokerMessage>? dead = null;
        lock (_gate)
        {
            _lastActivity = _time.GetTimestamp();
            var settled = consumer.Unacked.Take(tag, multiple);
            for (var i = requeue ? settled.Count - 1 : -1; i >= 0; i--)
            {
                PutBack(settled[i], ref dead);
            }

            // A NACKed message goes to the next consumer first, not straight back to its rejecter.
            if (requeue && settled.Count > 0)
            {
                _consumers.PassOver(consumer);
            }

            Dispatch();
        }

        DeadLetter(dead);
    }

    internal void Remove(QueueConsumer consumer)
    {
        List<BrokerMessage>? dead = null;
        lock (_gate)
        {
            if (!_consumers.Remove(consumer))
            {
                return;
            }

            _lastActivity = _time.GetTimestamp();
            var unacked = consumer.Unacked.TakeAll();
            for (var i = unacked.Count - 1; i >= 0; i--)
            {
                PutBack(unacked[i], ref dead);
            }
            Dispatch();
        }

        DeadLetter(dead);
    }

    // Under _gate: an unacknowledged message goes back to the head (counted again against the byte bounds and the budget),
    // or, redelivered too often, aside for the dead-letter queue.
    private void PutBack(BrokerMessage message, ref List<BrokerMessage>? dead)
    {
        message.Redeliveries++;
        if (redelivery is { MaxRedeliveries: > 0 } policy && message.Redeliveries > policy.MaxRedeliveries)
        {
            (dead ??= []).Add(message);
            return;
        }

        AddReady(message, MessageSize.Of(message), atHead: true);
    }

    // Outside _gate: the dead-letter queue takes its own lock.
    private void DeadLetter(List<BrokerMessage>? dead)
    {
        if (dead is null)
        {
            return;
        }

        // PutBack sees messages last to first: walking the list backwards keeps their order.
        for (var i = dead.Count - 1; i >= 0; i--)
        {
            redelivery!.DeadLetter(this, dead[i]);
        }
    }

    // Called under _gate: hands ready messages to consumers with room, round robin.
    private void Dispatch()
    {
        while (_ready.Count > 0 && _consumers.NextWithRoom() is { } chosen)
        {
            var message = TakeFirst();
            if (!chosen.TryDeliver(message))
            {
                // The consumer is going away; keep the message for someone else.
                AddReady(message, MessageSize.Of(message), atHead: true);
                chosen.Refusing = true;
            }
        }
    }

    // Called under _gate. Messages put back (NACK, a consumer leaving) were admitted before: they go back past the limits.
    private void AddReady(BrokerMessage message, long size, bool atHead)
    {
        if (atHead)
        {
            _ready.AddFirst(message);
        }
        else
        {
            _ready.AddLast(message);
        }

        _readyBytes += size;
        budget?.Add(MemoryComponent.Queues, size);
    }

    // Called under _gate, with a message ready.
    private BrokerMessage TakeFirst()
    {
        var message = _ready.First!.Value;
        _ready.RemoveFirst();
        var size = MessageSize.Of(message);
        _readyBytes -= size;
        budget?.Subtract(MemoryComponent.Queues, size);
        return message;
    }
}

/// <summary>
/// What becomes of a queue message redelivered too often (<c>Broker:MaxRedeliveries</c>): <paramref name="DeadLetter"/>
/// takes it (the in-process broker moves it to <c>/queue/&lt;name&gt;.dlq</c>). Called outside the queue's lock.
/// </summary>
internal sealed record RedeliveryPolicy(int MaxRedeliveries, Action<MessageQueue, BrokerMessage> DeadLetter);

/// <summary>A queue's bounds on its ready messages and what it does when they are reached.</summary>
internal readonly record struct QueueLimits(int MaxLength, long MaxBytes, QueueOverflow Overflow);

/// <summary>What became of a message offered to a <see cref="MessageQueue"/>.</summary>
internal enum EnqueueResult
{
    Enqueued,

    /// <summary>The queue was swept away between lookup and lock.</summary>
    Evicted,

    /// <summary>Refused: <see cref="LimitNames.MaxQueueLength"/> reached.</summary>
    RefusedLength,

    /// <summary>Refused: <see cref="LimitNames.MaxQueueBytes"/> would be exceeded.</summary>
    RefusedBytes,
}

/// <summary>One consumer of a <see cref="MessageQueue"/>.</summary>
internal sealed class QueueConsumer(MessageQueue queue, IMessageSink sink, AckMode ackMode, int prefetch) : IBrokerSubscription, IRingConsumer
{
    // A queue keeps its messages while no consumer is attached, so a resumed consumer misses nothing
    // as long as the queue (this process) is the one it left.
    public bool Recovered { get; init; }

    internal UnackedDeliveries<BrokerMessage> Unacked { get; } = new();

    internal bool Refusing { get; set; }

    public bool HasRoom => !Refusing && (ackMode == AckMode.Auto || prefetch <= 0 || Unacked.Count < prefetch);

    // Called under the queue's lock.
    internal bool TryDeliver(BrokerMessage message) => Unacked.TryDeliver(sink, message, message, ackMode == AckMode.Auto);

    public void Ack(ulong deliveryTag, bool multiple) => queue.Settle(this, deliveryTag, multiple, requeue: false);

    public void Nack(ulong deliveryTag, bool multiple) => queue.Settle(this, deliveryTag, multiple, requeue: true);

    public void Dispose() => queue.Remove(this);
}
