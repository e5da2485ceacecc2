using StackExchange.Redis;

namespace Broker.Cluster;

/// <summary>
/// What a <see cref="ClusterTopic"/> (SUBSCRIBE to its channel) and a <see cref="WildcardGroup"/> (PSUBSCRIBE to
/// its glob) share: one Redis pub/sub subscription for this node's subscriptions, made on first use, made again
/// after an attempt failed (Redis unreachable), and given up when the owner is evicted, even when the attempt
/// completes after that. <see cref="Gate"/> guards the owner's state and this.
/// </summary>
internal abstract class RedisChannelOwner
{
    private Task<bool>? _channel;
    private ChannelMessageQueue? _queue;

    /// <summary>Whether a reconnect must subscribe the channel again (an earlier attempt failed).</summary>
    public bool NeedsChannel
    {
        get
        {
            lock (Gate)
            {
                return !Evicted && _channel is { IsCompleted: true, Result: false };
            }
        }
    }

    protected Lock Gate { get; } = new();

    /// <summary>Set by <see cref="Evict"/>: the owner is retired and takes no subscriptions. Under <see cref="Gate"/>.</summary>
    protected bool Evicted { get; private set; }

    /// <summary>The channel is subscribed. Under <see cref="Gate"/>.</summary>
    protected bool ChannelUp => _channel is { IsCompletedSuccessfully: true, Result: true };

    /// <summary>The broker whose Redis connection subscribes.</summary>
    protected abstract RedisClusterBroker Broker { get; }

    /// <summary>The channel or pattern to subscribe.</summary>
    protected abstract RedisChannel Channel { get; }

    /// <summary>The subscription, made now unless it is made or being made; true once it is up.</summary>
    public Task<bool> EnsureChannelAsync()
    {
        lock (Gate)
        {
            if (_channel is null || (_channel.IsCompleted && !_channel.Result))
            {
                _channel = SubscribeChannelAsync();
            }

            return _channel;
        }
    }

    /// <summary>Starts reading what the subscription receives.</summary>
    protected abstract void Listen(ChannelMessageQueue queue);

    /// <summary>Retires the owner; returns the queue the caller unsubscribes (null if none was made). Under <see cref="Gate"/>.</summary>
    protected ChannelMessageQueue? Evict()
    {
        Evicted = true;
        return _queue;
    }

    private async Task<bool> SubscribeChannelAsync()
    {
        var queue = await Broker.TrySubscribeAsync(Channel).ConfigureAwait(false);
        if (queue is null)
        {
            return false;
        }

        lock (Gate)
        {
            if (Evicted)
            {
                _ = RedisClusterBroker.UnsubscribeAsync(queue);
                return false;
            }

            _queue = queue;
        }

        Listen(queue);
        return true;
    }
}
