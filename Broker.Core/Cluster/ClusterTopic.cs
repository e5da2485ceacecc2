using Broker.Routing;
using StackExchange.Redis;
using StreamPosition = Broker.Routing.StreamPosition;

namespace Broker.Cluster;

/// <summary>
/// One exact topic key on this node while it has subscribers here: the node SUBSCRIBEs to its channel and
/// delivers what arrives to its local subscriptions under one lock, in offset order, as the in-process
/// topic does. It keeps the position of the last message it delivered (<see cref="_epoch"/>, <see cref="_last"/>):
/// a message further on than the next offset means this node missed some (its Redis connection dropped), and
/// the missing ones are read from history first; one at or before it has been delivered already. Messages are
/// processed one at a time (<see cref="_processing"/>), whether from the channel or a catch-up after a reconnect.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "The semaphore has no wait handle to release; a handler may still hold it when the topic is evicted.")]
internal sealed class ClusterTopic(RedisClusterBroker broker, string key) : RedisChannelOwner
{
    private readonly SemaphoreSlim _processing = new(1, 1);

    // Subscribers, changed and read under Gate.
    private readonly SubscriberSlots<ClusterTopicSubscription> _subscribers = new();

    // The position of the last message delivered here; null until the first message or history read.
    private string? _epoch;
    private long _last;

    // While Redis is unreachable, messages published on this node are delivered here under an epoch of their
    // own; once Redis is back the topic gets a new epoch in Redis too (no resume from before can promise them).
    private string? _outageEpoch;
    private long _outageOffset;
    private bool _deliveredInOutage;

    public string Key { get; } = key;

    protected override RedisClusterBroker Broker => broker;

    protected override RedisChannel Channel => broker.Keys.TopicChannel(Key);

    public int SubscriberCount
    {
        get
        {
            lock (Gate)
            {
                return _subscribers.Count;
            }
        }
    }

    /// <summary>Adds a subscription; null when the topic was evicted meanwhile (the caller makes a new one).</summary>
    public async ValueTask<ClusterTopicSubscription?> TrySubscribeAsync(SubscriptionRequest request, IMessageSink sink)
    {
        var resumeFrom = request.ResumeFrom;
        (string SessionId, string SubscriptionId)? tracked = request.Durable ? (request.SessionId, request.SubscriptionId) : null;
        if (resumeFrom is not null && tracked is { } key && await broker.Positions.ReadAsync(key.SessionId, key.SubscriptionId).ConfigureAwait(false) is { } written &&
            written.Epoch == resumeFrom.Epoch && written.Offset > resumeFrom.Offset)
        {
            // Its node recorded a later position than the session store has (the node died before saving).
            resumeFrom = written;
        }

        ClusterTopicSubscription subscription;
        lock (Gate)
        {
            if (Evicted)
            {
                return null;
            }

            // Already following the channel: a new subscriber starts at the last message delivered here and
            // gets every later one, with no Redis round trip.
            if (resumeFrom is null && _epoch is not null && ChannelUp)
            {
                subscription = new ClusterTopicSubscription(this, sink, joining: false, broker.Options.MaxResumeBuffer, request.AckMode)
                {
                    Recovered = false,
                    Tracked = tracked,
                    Positions = tracked is null ? null : broker.Positions,
                };
                Track(subscription);
                subscription.Start(new StreamPosition(_epoch, _last));
                _subscribers.Add(subscription);
                return subscription;
            }

            // Otherwise subscribe live first and hold what arrives while the history is read.
            subscription = new ClusterTopicSubscription(this, sink, joining: true, broker.Options.MaxResumeBuffer, request.AckMode)
            {
                Tracked = tracked,
                Positions = tracked is null ? null : broker.Positions,
            };
            Track(subscription);
            subscription.JoinedAt = _epoch is null ? null : new StreamPosition(_epoch, _last);
            _subscribers.Add(subscription);
        }

        TopicHistory? history = null;
        if (await EnsureChannelAsync().ConfigureAwait(false))
        {
            history = await broker.TryReadTopicAsync(Key, resumeFrom, fillNewEpoch: false).ConfigureAwait(false);
        }

        lock (Gate)
        {
            Complete(subscription, resumeFrom, history);
        }

        return subscription;
    }

    private void Track(ClusterTopicSubscription subscription)
    {
        if (subscription.Tracked is not null)
        {
            broker.Positions.Track(subscription);
        }
    }

    // Under Gate. Replays history when it covers the gap, then what arrived meanwhile, skipping what was replayed.
    private void Complete(ClusterTopicSubscription subscription, StreamPosition? resumeFrom, TopicHistory? history)
    {
        StreamPosition start;
        if (history is not null)
        {
            // No message seen here yet: every later one arrives on the channel, every earlier one is history.
            if (_epoch is null)
            {
                _epoch = history.Epoch;
                _last = history.Top;
            }

            subscription.Recovered = resumeFrom is not null && !subscription.Overflowed && resumeFrom.Epoch == history.Epoch && history.Covers(resumeFrom.Offset);
            if (subscription.Recovered)
            {
                subscription.Start(resumeFrom);
                foreach (var entry in history.Entries)
                {
                    if (entry.Offset > resumeFrom!.Offset && broker.Decode(Key, entry.Payload) is { } message)
                    {
                        message.Epoch = history.Epoch;
                        message.Offset = entry.Offset;
                        subscription.DeliverNow(message);
                    }
                }
            }

            start = history.Position;
        }
        else
        {
            // Redis unreachable: start where this node is, or at an epoch of this node's own that no resume matches.
            start = subscription.JoinedAt ?? new StreamPosition(OutageEpoch(), 0);
        }

        if (!subscription.Recovered)
        {
            if (subscription.Overflowed)
            {
                broker.ResumeBufferOverflowed(Key);
                start = subscription.DroppedThrough ?? start;
            }

            subscription.Start(start);
        }

        subscription.GoLive(start);
    }

    /// <summary>A message from the topic's channel: in order, once; gaps are filled from history.</summary>
    public async Task OnPublishedAsync(ChannelMessage published)
    {
        byte[]? bytes = published.Message;
        if (bytes is null || !ClusterMessageCodec.TrySplitPublished(bytes, out var offset, out var epoch, out var payload))
        {
            broker.Undecodable(Key);
            return;
        }

        await _processing.WaitAsync().ConfigureAwait(false);
        try
        {
            await ProcessAsync(epoch, offset, payload).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // Never let the channel's message loop end: the next message is processed as usual.
            broker.DeliveryFailed(ex, Key);
        }
        finally
        {
            _processing.Release();
        }
    }

    private async Task ProcessAsync(string epoch, long offset, ReadOnlyMemory<byte> payload)
    {
        string? knownEpoch;
        long known;
        lock (Gate)
        {
            if (Evicted)
            {
                return;
            }

            if (_epoch is null || (epoch == _epoch && offset == _last + 1))
            {
                Deliver(epoch, offset, payload);
                return;
            }

            if (epoch == _epoch && offset <= _last)
            {
                return; // delivered already, from history
            }

            knownEpoch = _epoch;
            known = _last;
        }

        // Published while this node was not listening (a reconnect), or a new epoch (Redis lost its data).
        var history = await broker.TryReadTopicAsync(Key, new StreamPosition(knownEpoch, known), fillNewEpoch: true).ConfigureAwait(false);
        lock (Gate)
        {
            if (Evicted)
            {
                return;
            }

            CatchUp(history, epoch, offset - 1);
            if (epoch != _epoch || offset > _last)
            {
                Deliver(epoch, offset, payload);
            }
        }
    }

    /// <summary>After a reconnect: delivers what was published while this node was not listening.</summary>
    public async Task ResyncAsync()
    {
        if (!await EnsureChannelAsync().ConfigureAwait(false))
        {
            return;
        }

        await _processing.WaitAsync().ConfigureAwait(false);
        try
        {
            string? epoch;
            long last;
            lock (Gate)
            {
                if (Evicted || _epoch is null)
                {
                    return;
                }

                epoch = _epoch;
                last = _last;
            }

            var history = await broker.TryReadTopicAsync(Key, new StreamPosition(epoch, last), fillNewEpoch: true).ConfigureAwait(false);
            lock (Gate)
            {
                if (!Evicted && history is not null)
                {
                    CatchUp(history, history.Epoch, history.Top);
                }
            }
        }
        finally
        {
            _processing.Release();
        }
    }

    // Under Gate: delivers history entries after this node's position up to (epoch, through).
    private void CatchUp(TopicHistory? history, string epoch, long through)
    {
        if (history is null || history.Epoch != epoch)
        {
            // History could not be read (or moved on again): what was missed cannot be delivered.
            if (epoch != _epoch)
            {
                _epoch = epoch;
                _last = 0;
            }

            broker.MissedMessages(Key, through - _last);
            _last = Math.Max(_last, through);
            return;
        }

        if (epoch != _epoch)
        {
            _epoch = epoch;
            _last = history.Base;
        }

        foreach (var entry in history.Entries)
        {
            if (entry.Offset > through)
            {
                break;
            }

            if (entry.Offset <= _last || entry.Time < history.Cutoff)
            {
                continue;
            }

            if (entry.Offset > _last + 1)
            {
                broker.MissedMessages(Key, entry.Offset - _last - 1);
            }

            Deliver(epoch, entry.Offset, entry.Payload);
        }

        if (through > _last)
        {
            broker.MissedMessages(Key, through - _last);
            _last = through;
        }
    }

    // Under Gate: one message to every subscriber, once decoded.
    private void Deliver(string epoch, long offset, ReadOnlyMemory<byte> payload)
    {
        _epoch = epoch;
        _last = offset;
        var message = broker.Decode(Key, payload);
        if (message is null || broker.DeliveredInOutage(message.MessageId))
        {
            return;
        }

        message.Epoch = epoch;
        message.Offset = offset;
        DeliverToAll(message);
    }

    /// <summary>A message published on this node while Redis is unreachable: delivered here only.</summary>
    public void DeliverInOutage(BrokerMessage message)
    {
        lock (Gate)
        {
            if (Evicted || _subscribers.Count == 0)
            {
                return;
            }

            message.Epoch = OutageEpoch();
            message.Offset = ++_outageOffset;
            _deliveredInOutage = true;
            DeliverToAll(message);
        }
    }

    /// <summary>After an outage: whether this node delivered messages Redis never saw (then the Redis epoch they belong after, or "").</summary>
    public bool TakeOutage(out string redisEpoch)
    {
        lock (Gate)
        {
            redisEpoch = _epoch ?? "";
            var delivered = _deliveredInOutage;
            _deliveredInOutage = false;
            _outageEpoch = null;
            _outageOffset = 0;
            return delivered;
        }
    }

    // Under Gate.
    private string OutageEpoch() => _outageEpoch ??= "x" + ClusterKeys.NewEpoch();

    private void DeliverToAll(BrokerMessage message) => _subscribers.ForEach(message, static (subscription, m) => subscription.Deliver(m));

    protected override void Listen(ChannelMessageQueue queue) => queue.OnMessage(OnPublishedAsync);

    public void Remove(ClusterTopicSubscription subscription)
    {
        lock (Gate)
        {
            _subscribers.Remove(subscription);
        }
    }

    /// <summary>Retires the topic when nobody here subscribes to it; the caller unsubscribes the channel.</summary>
    public bool TryEvict(out ChannelMessageQueue? queue)
    {
        lock (Gate)
        {
            queue = null;
            if (_subscribers.Count > 0 || _deliveredInOutage)
            {
                return false;
            }

            queue = Evict();
            return true;
        }
    }
}
