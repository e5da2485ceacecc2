using Broker.Routing;

namespace Broker.Cluster;

/// <summary>
/// A subscriber to an exact topic key on this node. While it joins (its history is being read from Redis)
/// deliveries are held, bounded by <see cref="RedisClusterOptions.MaxResumeBuffer"/>: past it the oldest go
/// and the subscription starts after them, unrecovered. Once live, anything at or before its start position
/// is skipped, so a message both replayed and arriving on the channel is delivered once. Deliveries come under
/// the topic's lock.
/// <para>
/// A durable subscription also knows where a resume may continue from (<see cref="WrittenPositions"/>): in
/// <c>auto</c> mode after the last message written to its client, in the client ack modes before its oldest
/// unacknowledged delivery (deliveries carry their offset as delivery tag, so an ACK names it).
/// </para>
/// </summary>
internal sealed class ClusterTopicSubscription(ClusterTopic topic, IMessageSink sink, bool joining, int maxHeld, AckMode ackMode) : IBrokerSubscription, ISlotted
{
    private Queue<BrokerMessage>? _held = joining ? new Queue<BrokerMessage>() : null;
    private string? _skipEpoch;
    private long _skipThrough;
    private int _disposed;

    // The resume position, under _positionGate: the epoch deliveries are positioned in, the last offset written
    // (auto) or delivered (client modes), the client modes' unacknowledged offsets, and whether it moved.
    private readonly Lock _positionGate = new();
    private string? _positionEpoch;
    private long _lastOffset;
    private SortedSet<long>? _unacked;
    private bool _positionMoved;

    public IMessageSink Sink { get; } = sink;

    /// <summary>Set for a durable subscription: its resume position is kept in Redis (<see cref="WrittenPositions"/>).</summary>
    internal (string SessionId, string SubscriptionId)? Tracked { get; init; }

    internal WrittenPositions? Positions { get; init; }

    /// <summary>The connection went (not the subscription): the last position is still to be flushed.</summary>
    internal bool IsDetached => Volatile.Read(ref _disposed) == 1;

    public bool Recovered { get; set; }

    /// <summary>This subscription's index in its topic's subscriber array (guarded by the topic's lock).</summary>
    public int Slot { get; set; } = -1;

    /// <summary>The topic's position when this subscription joined it, when known.</summary>
    internal StreamPosition? JoinedAt { get; set; }

    /// <summary>Held deliveries were dropped for the limit; <see cref="DroppedThrough"/> is the last one dropped.</summary>
    internal bool Overflowed { get; private set; }

    internal StreamPosition? DroppedThrough { get; private set; }

    /// <summary>Called once, before any delivery, with the position deliveries continue after (as the sink's Start).</summary>
    internal void Start(StreamPosition? after)
    {
        if (Tracked is not null && after is not null)
        {
            lock (_positionGate)
            {
                _positionEpoch = after.Epoch;
                _lastOffset = after.Offset;
                _unacked = ackMode == AckMode.Auto ? null : [];
            }
        }

        Sink.Start(after);
    }

    public void Deliver(BrokerMessage message)
    {
        if (_held is { } held)
        {
            if (held.Count >= maxHeld)
            {
                var dropped = held.Dequeue();
                Overflowed = true;
                DroppedThrough = new StreamPosition(dropped.Epoch!, dropped.Offset);
            }

            held.Enqueue(message);
            return;
        }

        if (_skipEpoch is not null && message.Epoch == _skipEpoch)
        {
            if (message.Offset <= _skipThrough)
            {
                return;
            }

            _skipEpoch = null; // offsets only grow: nothing later needs the check
        }

        DeliverNow(message);
    }

    /// <summary>Hands a message to the session, its offset as delivery tag; a client-mode delivery is unacknowledged until ACKed.</summary>
    internal void DeliverNow(BrokerMessage message)
    {
        if (_unacked is null || message.Epoch != _positionEpoch)
        {
            Sink.TryDeliver(message, (ulong)message.Offset);
            return;
        }

        lock (_positionGate)
        {
            // Before the hand-over: the client may ACK it before this returns.
            _unacked.Add(message.Offset);
        }

        // Refused (the connection is closing), it stays unacknowledged: a resume must get it, so the position
        // stays before it.
        if (Sink.TryDeliver(message, (ulong)message.Offset))
        {
            lock (_positionGate)
            {
                _lastOffset = Math.Max(_lastOffset, message.Offset);
                _positionMoved = true;
            }
        }
    }

    /// <summary>Ends the join: delivers what was held after <paramref name="start"/>, and every later message as it comes.</summary>
    internal void GoLive(StreamPosition start)
    {
        _skipEpoch = start.Epoch;
        _skipThrough = start.Offset;
        var held = _held;
        _held = null;
        if (held is not null)
        {
            foreach (var message in held)
            {
                Deliver(message);
            }
        }
    }

    // Called by the session's writer, in order, once a positioned delivery has been written.
    public void Written(BrokerMessage message)
    {
        if (Tracked is not null && _unacked is null && message.Epoch == _positionEpoch)
        {
            lock (_positionGate)
            {
                _lastOffset = message.Offset;
                _positionMoved = true;
            }
        }
    }

    public void Ack(ulong deliveryTag, bool multiple)
    {
        if (_unacked is null)
        {
            return;
        }

        lock (_positionGate)
        {
            var offset = (long)deliveryTag;
            var removed = multiple ? _unacked.RemoveWhere(o => o <= offset) : _unacked.Remove(offset) ? 1 : 0;
            _positionMoved |= removed > 0;
        }
    }

    public void Nack(ulong deliveryTag, bool multiple)
    {
        // A topic message is not delivered again on this connection; it stays unacknowledged, so a resume gets it again.
    }

    /// <summary>The position a resume may continue after, when it moved since the last call; else null.</summary>
    internal StreamPosition? TakePosition()
    {
        lock (_positionGate)
        {
            if (!_positionMoved || _positionEpoch is null)
            {
                return null;
            }

            _positionMoved = false;
            return new StreamPosition(_positionEpoch, _unacked is { Count: > 0 } unacked ? unacked.Min - 1 : _lastOffset);
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            topic.Remove(this);
        }
    }

    public void Unsubscribe()
    {
        Dispose();
        Positions?.Forget(this);
    }
}
