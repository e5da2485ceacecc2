using Broker.Routing;
using StackExchange.Redis;
using StreamPosition = Broker.Routing.StreamPosition;

namespace Broker.Cluster;

// The Redis operations the topics and queues use: each bounded by the operation timeout, none throwing into a message path.
internal sealed partial class RedisClusterBroker
{
    /// <summary>The connection, once made (the control plane's pub/sub shares it).</summary>
    internal ConnectionMultiplexer? Multiplexer => Volatile.Read(ref _multiplexer);

    internal IDatabase? Database => _multiplexer is { IsConnected: true } multiplexer ? multiplexer.GetDatabase() : null;

    internal BrokerMessage? Decode(string key, ReadOnlyMemory<byte> payload)
    {
        var message = ClusterMessageCodec.Decode(Destinations.TopicPrefix + key, payload);
        if (message is null)
        {
            Undecodable(key);
        }

        return message;
    }

    /// <summary>
    /// A topic's position in Redis and its history after <paramref name="after"/> (see <see cref="ClusterScripts.ReadTopic"/>);
    /// null when Redis could not answer in time.
    /// </summary>
    internal async Task<TopicHistory?> TryReadTopicAsync(string key, StreamPosition? after, bool fillNewEpoch)
    {
        if (Database is not { } database)
        {
            return null;
        }

        try
        {
            var result = await database.ScriptEvaluateAsync(ClusterScripts.ReadTopic,
                [Keys.TopicHistory(key), Keys.TopicMeta(key)],
                [after?.Offset ?? -1, after?.Epoch ?? "", fillNewEpoch ? "1" : "0", _historyReadCount, _historyAgeMs, NextEpoch(), _keyTtlMs]).ConfigureAwait(false);
            return TopicHistory.Parse(result);
        }
        catch (Exception ex) when (IsRedisFailure(ex))
        {
            RedisFailed(ex, "read topic history");
            return null;
        }
    }

    /// <summary>SUBSCRIBE or PSUBSCRIBE, bounded by the operation timeout; null (and nothing left subscribed) on failure.</summary>
    internal async Task<ChannelMessageQueue?> TrySubscribeAsync(RedisChannel channel)
    {
        if (_multiplexer is not { IsConnected: true } multiplexer)
        {
            return null;
        }

        var subscriber = multiplexer.GetSubscriber();
        Task<ChannelMessageQueue> subscribe;
        try
        {
            subscribe = subscriber.SubscribeAsync(channel);
            return await subscribe.WaitAsync(Options.OperationTimeout).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsRedisFailure(ex))
        {
            RedisFailed(ex, "subscribe");

            // A failed SUBSCRIBE stays registered in the multiplexer (it would subscribe on reconnect, into a
            // queue nobody reads): take it back; the caller tries again when Redis is back.
            try
            {
                await subscriber.UnsubscribeAsync(channel).ConfigureAwait(false);
            }
            catch (Exception cleanup) when (IsRedisFailure(cleanup))
            {
            }

            return null;
        }
    }

    internal static async Task UnsubscribeAsync(ChannelMessageQueue queue)
    {
        try
        {
            await queue.UnsubscribeAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (IsRedisFailure(ex))
        {
        }
    }

    internal async Task<string?> TryOpenQueueAsync(ClusterQueue queue)
    {
        if (Database is not { } database)
        {
            return null;
        }

        try
        {
            return (string?)await database.ScriptEvaluateAsync(ClusterScripts.OpenQueue, [queue.Stream, queue.Meta],
                [NextEpoch(), ClusterKeys.QueueGroup, _keyTtlMs]).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsRedisFailure(ex))
        {
            RedisFailed(ex, "open queue");
            return null;
        }
    }

    internal async Task<List<(string Id, BrokerMessage? Message)>?> TryReadQueueAsync(ClusterQueue queue, int count, bool claim)
    {
        if (Database is not { } database)
        {
            return null;
        }

        RedisResult result;
        try
        {
            result = await database.ScriptEvaluateAsync(ClusterScripts.ReadQueue, [queue.Stream],
                [ClusterKeys.QueueGroup, NodeId, count, _redeliveryMs, claim ? "1" : "0"]).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.Contains("NOGROUP", StringComparison.Ordinal))
        {
            // The stream went (expired, or Redis lost its data): open it again, then read.
            _ = queue.EnsureOpenAsync();
            return null;
        }
        catch (Exception ex) when (IsRedisFailure(ex))
        {
            RedisFailed(ex, "read queue");
            return null;
        }

        var rows = (RedisResult[])result!;
        var entries = new List<(string, BrokerMessage?)>(rows.Length);
        var destination = Destinations.QueuePrefix + queue.Name;
        foreach (var row in rows)
        {
            var entry = (RedisResult[])row!;
            var id = (string)entry[0]!;
            var fields = (RedisResult[])entry[1]!;
            BrokerMessage? message = null;
            for (var i = 0; i + 1 < fields.Length; i += 2)
            {
                if ((string?)fields[i] == "d")
                {
                    message = ClusterMessageCodec.Decode(destination, (byte[])fields[i + 1]!);
                }
            }

            if (message is null)
            {
                Undecodable(destination);
            }

            entries.Add((id, message));
        }

        return entries;
    }

    internal void AckQueue(ClusterQueue queue, List<string> ids) => _ = RunQueueScriptAsync(ClusterScripts.AckQueue, queue, [ClusterKeys.QueueGroup], ids, "acknowledge queue messages");

    internal void ReleaseQueue(ClusterQueue queue, List<string> ids) =>
        _ = RunQueueScriptAsync(ClusterScripts.ReleaseQueue, queue, [ClusterKeys.QueueGroup, _releasedIdleMs, Keys.QueueChannel(queue.Name).ToString()], ids, "release queue messages");

    // Not awaited by the message path; a failure leaves the deliveries pending, to be taken over after the
    // redelivery timeout (at least once).
    private async Task RunQueueScriptAsync(string script, ClusterQueue queue, RedisValue[] head, List<string> ids, string operation)
    {
        if (Database is not { } database)
        {
            return;
        }

        Interlocked.Increment(ref _background);
        try
        {
            await RunQueueScriptAsync(database, script, queue, head, ids, operation).ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Decrement(ref _background);
        }
    }

    private async Task RunQueueScriptAsync(IDatabase database, string script, ClusterQueue queue, RedisValue[] head, List<string> ids, string operation)
    {
        for (var start = 0; start < ids.Count; start += 1000)
        {
            var count = Math.Min(1000, ids.Count - start);
            var args = new RedisValue[head.Length + count];
            head.CopyTo(args, 0);
            for (var i = 0; i < count; i++)
            {
                args[head.Length + i] = ids[start + i];
            }

            try
            {
                await database.ScriptEvaluateAsync(script, [queue.Stream], args).ConfigureAwait(false);
            }
            catch (Exception ex) when (IsRedisFailure(ex))
            {
                RedisFailed(ex, operation);
                return;
            }
        }
    }

    private async Task TouchQueueAsync(ClusterQueue queue)
    {
        if (Database is not { } database)
        {
            return;
        }

        try
        {
            await database.ScriptEvaluateAsync(ClusterScripts.TouchQueue, [queue.Stream, queue.Meta],
                [ClusterKeys.QueueGroup, NodeId, _keyTtlMs, 5000]).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.Contains("NOGROUP", StringComparison.Ordinal))
        {
            _ = queue.EnsureOpenAsync();
        }
        catch (Exception ex) when (IsRedisFailure(ex))
        {
            RedisFailed(ex, "renew queue deliveries");
        }
    }
}
