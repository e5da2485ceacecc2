using Broker.Routing;
using StackExchange.Redis;

namespace Broker.Cluster;

/// <summary>
/// The wildcard subscriptions on this node that ship as one glob (<see cref="TopicGlob"/>): one PSUBSCRIBE,
/// and each message that arrives goes to those whose pattern really matches its key. Redis sends a message
/// once per matching pattern of a connection, and a subscription belongs to exactly one group, so each gets it
/// once, in the order Redis published it. Wildcard subscriptions are not positioned (as in-process): they are
/// never recovered, and a message missed while Redis was unreachable is not replayed to them.
/// </summary>
internal sealed class WildcardGroup(RedisClusterBroker broker, string glob) : RedisChannelOwner
{
    private WildcardSubscription[] _subscriptions = [];

    public string Glob { get; } = glob;

    protected override RedisClusterBroker Broker => broker;

    protected override RedisChannel Channel => broker.Keys.TopicPattern(Glob);

    /// <summary>Adds a subscription; null when the group was evicted meanwhile.</summary>
    public async ValueTask<WildcardSubscription?> TrySubscribeAsync(string pattern, IMessageSink sink)
    {
        var subscription = new WildcardSubscription(this, new TopicPattern(pattern), sink);
        Task<bool> channel;
        lock (Gate)
        {
            if (Evicted)
            {
                return null;
            }

            sink.Start(null);
            _subscriptions = [.. _subscriptions, subscription];
            channel = EnsureChannelAsync();
        }

        await channel.ConfigureAwait(false);
        return subscription;
    }

    public void OnPublished(ChannelMessage published)
    {
        byte[]? bytes = published.Message;
        var key = broker.Keys.TopicKeyOf(published.Channel);
        if (key is null || bytes is null || !ClusterMessageCodec.TrySplitPublished(bytes, out var offset, out var epoch, out var payload))
        {
            broker.Undecodable(Glob);
            return;
        }

        BrokerMessage? message = null;
        try
        {
            lock (Gate)
            {
                foreach (var subscription in _subscriptions)
                {
                    if (subscription.Pattern.Matches(key))
                    {
                        message ??= broker.Decode(key, payload);
                        if (message is null || broker.DeliveredInOutage(message.MessageId))
                        {
                            return;
                        }

                        message.Epoch = epoch;
                        message.Offset = offset;
                        subscription.Sink.TryDeliver(message, 0);
                    }
                }
            }
        }
        catch (Exception ex)
        {
            // Never let the pattern's message loop end.
            broker.DeliveryFailed(ex, Glob);
        }
    }

    /// <summary>A message published on this node while Redis is unreachable: delivered here only.</summary>
    public void DeliverInOutage(string key, BrokerMessage message)
    {
        lock (Gate)
        {
            foreach (var subscription in _subscriptions)
            {
                if (subscription.Pattern.Matches(key))
                {
                    subscription.Sink.TryDeliver(message, 0);
                }
            }
        }
    }

    public void Remove(WildcardSubscription subscription)
    {
        lock (Gate)
        {
            _subscriptions = Array.FindAll(_subscriptions, s => s != subscription);
        }
    }

    protected override void Listen(ChannelMessageQueue queue) => queue.OnMessage(OnPublished);

    public bool TryEvict(out ChannelMessageQueue? queue)
    {
        lock (Gate)
        {
            queue = null;
            if (_subscriptions.Length > 0)
            {
                return false;
            }

            queue = Evict();
            return true;
        }
    }
}

/// <summary>A wildcard subscription on this node.</summary>
internal sealed class WildcardSubscription(WildcardGroup group, TopicPattern pattern, IMessageSink sink) : IBrokerSubscription
{
    private int _disposed;

    public TopicPattern Pattern { get; } = pattern;

    public IMessageSink Sink { get; } = sink;

    public bool Recovered => false;

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
            group.Remove(this);
        }
    }
}
