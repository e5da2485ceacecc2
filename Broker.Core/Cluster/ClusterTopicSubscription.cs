using Broker.Routing;

namespace Broker.Cluster;

/// <summary>
/// A subscriber to an exact topic key on this node. While it joins (its history is being read from Redis)
/// deliveries are held, bounded by <see cref="RedisClusterOptions.MaxResumeBuffer"/>: past it the oldest go
/// and the subscription starts after them, unrecovered. Once live, anything at or before its start position
/// is skipped, so a message both replayed and arriving on the channel is delivered once. All calls but
/// <see cref="Dispose"/> come under the topic's lock.
/// </summary>
internal sealed class ClusterTopicSubscription(ClusterTopic topic, IMessageSink sink, bool joining, int maxHeld) : IBrokerSubscription
{
    private Queue<BrokerMessage>? _held = joining ? new Queue<BrokerMessage>() : null;
    private string? _skipEpoch;
    private long _skipThrough;
    private int _disposed;
    private readonly Lock _writtenGate = new();
    private string? _writtenEpoch;
    private long _writtenOffset;
    private bool _writtenMoved;

    public IMessageSink Sink { get; } = sink;

    /// <summary>Set for a durable auto-ack subscription: its written position is kept in Redis (<see cref="WrittenPositions"/>).</summary>
    internal (string SessionId, string SubscriptionId)? Tracked { get; init; }

    internal WrittenPositions? Positions { get; init; }

    /// <summary>The connection went (not the subscription): the last position is still to be flushed.</summary>
    internal bool IsDetached => Volatile.Read(ref _disposed) == 1;

    public bool Recovered { get; set; }

    /// <summary>This subscription's index in its topic's subscriber array (guarded by the topic's lock).</summary>
    internal int Slot { get; set; } = -1;

    /// <summary>The topic's position when this subscription joined it, when known.</summary>
    internal StreamPosition? JoinedAt { get; set; }

    /// <summary>Held deliveries were dropped for the limit; <see cref="DroppedThrough"/> is the last one dropped.</summary>
    internal bool Overflowed { get; private set; }

    internal StreamPosition? DroppedThrough { get; private set; }

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

        Sink.TryDeliver(message, 0);
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
        if (Tracked is not null && message.Epoch is { } epoch)
        {
            lock (_writtenGate)
            {
                _writtenEpoch = epoch;
                _writtenOffset = message.Offset;
                _writtenMoved = true;
            }
        }
    }

    /// <summary>The position written to since the last call, or null when it has not moved.</summary>
    internal StreamPosition? TakeWritten()
    {
        lock (_writtenGate)
        {
            if (!_writtenMoved)
            {
                return null;
            }

            _writtenMoved = false;
            return new StreamPosition(_writtenEpoch!, _writtenOffset);
        }
    }

    public void Ack(ulong deliveryTag, bool multiple)
    {
    }

    public void Nack(ulong deliveryTag, bool multiple)
    {
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
