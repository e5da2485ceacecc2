using System.Collections.Concurrent;
using System.Globalization;
using StackExchange.Redis;
using StreamPosition = Broker.Routing.StreamPosition;

namespace Broker.Cluster;

/// <summary>
/// Where each durable topic subscription on this node may resume from (after the last message written to it
/// in <c>auto</c> mode, before its oldest unacknowledged one in the client modes), kept in Redis (hash
/// <c>w:{session}</c>, field = subscription id, value <c>offset:epoch</c>) every
/// <see cref="RedisClusterOptions.PositionFlushInterval"/>. The session store has the position too, but only as
/// of the subscription's last change or its connection's close: a node that is SIGKILLed saves nothing, and a
/// client that reconnects elsewhere at once may read the record before its old node wrote the close. Either
/// way the session would resume from an older position and get again what it had. A resume on any node takes
/// the later of the two positions in the same epoch.
/// </summary>
internal sealed class WrittenPositions(RedisClusterBroker broker)
{
    private readonly ConcurrentDictionary<ClusterTopicSubscription, byte> _tracked = new();

    public void Track(ClusterTopicSubscription subscription) => _tracked.TryAdd(subscription, 0);

    /// <summary>The subscription ended for good: its position goes.</summary>
    public void Forget(ClusterTopicSubscription subscription)
    {
        _tracked.TryRemove(subscription, out _);
        if (broker.Database is { } database && subscription.Tracked is { } key)
        {
            _ = Ignore(database.HashDeleteAsync(broker.Keys.WrittenPositions(key.SessionId), key.SubscriptionId, CommandFlags.FireAndForget));
        }
    }

    /// <summary>Writes the positions that moved since the last flush; a dropped subscription's last one, then lets it go.</summary>
    public void Flush()
    {
        if (_tracked.IsEmpty || broker.Database is not { } database)
        {
            return;
        }

        var batch = database.CreateBatch();
        var writes = 0;
        foreach (var subscription in _tracked.Keys)
        {
            var detached = subscription.IsDetached;
            if (subscription.TakePosition() is { } position && subscription.Tracked is { } key)
            {
                var hash = broker.Keys.WrittenPositions(key.SessionId);
                _ = Ignore(batch.HashSetAsync(hash, key.SubscriptionId, string.Create(CultureInfo.InvariantCulture, $"{position.Offset}:{position.Epoch}"), flags: CommandFlags.FireAndForget));
                _ = Ignore(batch.KeyExpireAsync(hash, broker.Options.KeyTtl, flags: CommandFlags.FireAndForget));
                writes++;
            }

            if (detached)
            {
                _tracked.TryRemove(subscription, out _);
            }
        }

        if (writes > 0)
        {
            batch.Execute();
        }
    }

    /// <summary>The position a subscription had been written to, as its node last recorded it; null when unknown.</summary>
    public async Task<StreamPosition?> ReadAsync(string sessionId, string subscriptionId)
    {
        if (broker.Database is not { } database)
        {
            return null;
        }

        try
        {
            var value = (string?)await database.HashGetAsync(broker.Keys.WrittenPositions(sessionId), subscriptionId).ConfigureAwait(false);
            var colon = value?.IndexOf(':', StringComparison.Ordinal) ?? -1;
            return colon > 0 && long.TryParse(value.AsSpan(0, colon), NumberStyles.None, CultureInfo.InvariantCulture, out var offset)
                ? new StreamPosition(value![(colon + 1)..], offset)
                : null;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
        {
            return null;
        }
    }

    private static async Task Ignore(Task task)
    {
        try
        {
            await task.ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
        {
        }
    }
}
