using System.Collections.Concurrent;

namespace Broker.Routing;

/// <summary>
/// Topic subscriptions: exact keys in a dictionary of copy-on-write arrays, wildcard patterns in
/// one copy-on-write array. Publishing reads without locking; only subscription changes lock.
/// </summary>
internal sealed class TopicRouter
{
    private readonly ConcurrentDictionary<string, TopicSubscription[]> _exact = new(StringComparer.Ordinal);
    private readonly Lock _writeLock = new();
    private TopicSubscription[] _wildcards = [];

    public int Publish(BrokerMessage message, string key)
    {
        var delivered = 0;
        if (_exact.TryGetValue(key, out var subscribers))
        {
            foreach (var subscription in subscribers)
            {
                delivered += subscription.Deliver(message) ? 1 : 0;
            }
        }

        foreach (var subscription in Volatile.Read(ref _wildcards))
        {
            if (subscription.Pattern!.Matches(key))
            {
                delivered += subscription.Deliver(message) ? 1 : 0;
            }
        }

        return delivered;
    }

    public void Add(TopicSubscription subscription)
    {
        lock (_writeLock)
        {
            if (subscription.Pattern is not null)
            {
                _wildcards = [.. _wildcards, subscription];
            }
            else
            {
                _exact[subscription.Key] = _exact.TryGetValue(subscription.Key, out var existing) ? [.. existing, subscription] : [subscription];
            }
        }
    }

    public void Remove(TopicSubscription subscription)
    {
        lock (_writeLock)
        {
            if (subscription.Pattern is not null)
            {
                _wildcards = Array.FindAll(_wildcards, s => s != subscription);
            }
            else if (_exact.TryGetValue(subscription.Key, out var existing))
            {
                var remaining = Array.FindAll(existing, s => s != subscription);
                if (remaining.Length == 0)
                {
                    _exact.TryRemove(subscription.Key, out _);
                }
                else
                {
                    _exact[subscription.Key] = remaining;
                }
            }
        }
    }
}

/// <summary>A subscriber to a topic key or pattern. Topic deliveries are not retained, so acks only settle.</summary>
internal sealed class TopicSubscription(TopicRouter router, string key, IMessageSink sink) : IBrokerSubscription
{
    private int _disposed;

    public string Key { get; } = key;

    public TopicPattern? Pattern { get; } = TopicPattern.IsWildcard(key) ? new TopicPattern(key) : null;

    public bool Deliver(BrokerMessage message) => sink.TryDeliver(message, 0);

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
            router.Remove(this);
        }
    }
}
