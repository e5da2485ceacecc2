using StackExchange.Redis;

namespace Broker.Cluster;

// When Redis is unreachable or slow: what is delivered meanwhile, what is logged, and how the node catches up once it is back.
internal sealed partial class RedisClusterBroker
{
    internal bool DeliveredInOutage(string messageId)
    {
        if (_outageIdCount == 0)
        {
            return false;
        }

        lock (_outageIdsGate)
        {
            return _outageIds.Contains(messageId);
        }
    }

    private void RememberOutageId(string messageId)
    {
        lock (_outageIdsGate)
        {
            if (_outageIds.Add(messageId))
            {
                _outageIdOrder.Enqueue(messageId);
                if (_outageIdOrder.Count > MaxOutageIds)
                {
                    _outageIds.Remove(_outageIdOrder.Dequeue());
                }
            }

            _outageIdCount = _outageIds.Count;
        }
    }

    internal void Undecodable(string source) => Log.Undecodable(_logger, source);

    internal void DeliveryFailed(Exception exception, string source) => Log.DeliveryFailed(_logger, exception, source);

    internal void MissedMessages(string key, long count)
    {
        if (count > 0)
        {
            Log.MissedMessages(_logger, key, count);
            _clusterMetrics.Missed(count);
        }
    }

    internal void ResumeBufferOverflowed(string key)
    {
        Log.ResumeBufferOverflowed(_logger, key, Options.MaxResumeBuffer);
        _metrics.Dropped();
    }

    private void RedisFailed(Exception exception, string operation)
    {
        _clusterMetrics.Failure();
        if (exception is RedisConnectionException && Interlocked.Exchange(ref _down, 1) == 0)
        {
            Log.Unavailable(_logger, exception, Endpoints, operation);
        }
        else if (exception is not RedisConnectionException)
        {
            Log.OperationFailed(_logger, exception, operation);
        }
    }

    internal static bool IsRedisFailure(Exception exception) =>
        exception is RedisException or TimeoutException or ObjectDisposedException or InvalidOperationException or OperationCanceledException;

    private void OnConnectionFailed(ConnectionFailedEventArgs e)
    {
        if (Interlocked.Exchange(ref _down, 1) == 0)
        {
            Log.Unavailable(_logger, e.Exception, Endpoints, $"{e.ConnectionType} connection: {e.FailureType}");
        }
    }

    private void OnConnectionRestored()
    {
        Interlocked.Exchange(ref _recoverAgain, 1);
        if (Interlocked.Exchange(ref _recovering, 1) == 0)
        {
            _ = RecoverAsync();
        }
    }

    // Once Redis is back: held queue messages go out, topics that had messages Redis never saw get a new epoch,
    // channels that could not be subscribed are, and every topic catches up on what it missed meanwhile.
    private async Task RecoverAsync()
    {
        try
        {
            while (Interlocked.Exchange(ref _recoverAgain, 0) == 1)
            {
                if (!IsAvailable)
                {
                    continue;
                }

                if (Interlocked.Exchange(ref _down, 0) == 1)
                {
                    Log.Restored(_logger, Endpoints, OutageBuffered);
                }

                await FlushOutageBufferAsync().ConfigureAwait(false);
                foreach (var topic in _topics.Values)
                {
                    if (topic.TakeOutage(out var redisEpoch))
                    {
                        await BumpEpochAsync(topic.Key, redisEpoch).ConfigureAwait(false);
                    }

                    await topic.ResyncAsync().ConfigureAwait(false);
                }

                foreach (var group in _wildcards.Values)
                {
                    if (group.NeedsChannel)
                    {
                        await group.EnsureChannelAsync().ConfigureAwait(false);
                    }
                }

                foreach (var queue in _queues.Values)
                {
                    if (queue.NeedsOpen)
                    {
                        await queue.EnsureOpenAsync().ConfigureAwait(false);
                    }

                    queue.RequestPump(claim: true);
                }
            }
        }
        catch (Exception ex)
        {
            Log.OperationFailed(_logger, ex, "recover after a reconnect");
        }
        finally
        {
            Volatile.Write(ref _recovering, 0);

            // A reconnect reported while this was finishing: run again.
            if (Volatile.Read(ref _recoverAgain) == 1 && Interlocked.Exchange(ref _recovering, 1) == 0)
            {
                _ = RecoverAsync();
            }
        }
    }

    private async Task BumpEpochAsync(string key, string redisEpoch)
    {
        if (Database is not { } database)
        {
            return;
        }

        try
        {
            if ((int)await database.ScriptEvaluateAsync(ClusterScripts.BumpEpoch, [Keys.TopicMeta(key)], [redisEpoch, NextEpoch()]).ConfigureAwait(false) == 1)
            {
                Log.EpochBumped(_logger, key);
            }
        }
        catch (Exception ex) when (IsRedisFailure(ex))
        {
            RedisFailed(ex, "new epoch after an outage");
        }
    }

    // A timer callback must never throw.
    private void OnTimer()
    {
        try
        {
            if (IsAvailable)
            {
                if (Volatile.Read(ref _down) == 1 || OutageBuffered > 0)
                {
                    OnConnectionRestored();
                }

                foreach (var queue in _queues.Values)
                {
                    if (queue.IsActive)
                    {
                        _ = TouchQueueAsync(queue);
                        queue.RequestPump(claim: true);
                    }
                }
            }

            if (_time.GetElapsedTime(Interlocked.Read(ref _sweptAt)) >= SweepInterval)
            {
                Interlocked.Exchange(ref _sweptAt, _time.GetTimestamp());
                Sweep();
            }
        }
        catch (Exception ex)
        {
            Log.OperationFailed(_logger, ex, "maintenance");
        }
    }

    private void FlushPositions()
    {
        try
        {
            Positions.Flush();
        }
        catch (Exception ex)
        {
            Log.OperationFailed(_logger, ex, "record written positions");
        }
    }

    /// <summary>Lets go of topics, patterns and queues nobody here subscribes to any more; returns how many.</summary>
    internal int Sweep()
    {
        var swept = 0;
        foreach (var (key, topic) in _topics)
        {
            if (topic.TryEvict(out var queue))
            {
                _topics.TryRemove(new KeyValuePair<string, ClusterTopic>(key, topic));
                Unsubscribe(queue);
                swept++;
            }
        }

        foreach (var (glob, group) in _wildcards)
        {
            if (group.TryEvict(out var queue))
            {
                _wildcards.TryRemove(new KeyValuePair<string, WildcardGroup>(glob, group));
                Unsubscribe(queue);
                swept++;
            }
        }

        foreach (var (name, clusterQueue) in _queues)
        {
            if (clusterQueue.TryEvict(out var queue))
            {
                _queues.TryRemove(new KeyValuePair<string, ClusterQueue>(name, clusterQueue));
                Unsubscribe(queue);
                swept++;
            }
        }

        return swept;

        void Unsubscribe(ChannelMessageQueue? queue)
        {
            if (queue is not null)
            {
                _ = UnsubscribeAsync(queue);
            }
        }
    }

    internal int TopicCount => _topics.Count;

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        if (_timer is not null)
        {
            await _timer.DisposeAsync().ConfigureAwait(false);
        }

        if (_positionsTimer is not null)
        {
            await _positionsTimer.DisposeAsync().ConfigureAwait(false);
        }

        FlushPositions();

        // The sessions closed first, giving their queue deliveries back: let those reach Redis (bounded), so
        // other nodes get them at once rather than after the redelivery timeout.
        var started = _time.GetTimestamp();
        while (Volatile.Read(ref _background) > 0 && _time.GetElapsedTime(started) < Options.OperationTimeout)
        {
            await Task.Delay(10).ConfigureAwait(false);
        }

        _connection.Dispose();
        _permits.Dispose();
    }

    // A fresh epoch for a script to use if the destination has none: this node's random prefix and a counter,
    // unique without asking the random number generator on every publish.
    private string NextEpoch() => string.Create(null, stackalloc char[40], $"{_epochPrefix}{Interlocked.Increment(ref _epochCounter):x}");

    private static RedisValue Milliseconds(TimeSpan value) => (long)Math.Clamp(value.TotalMilliseconds, 1, TimeSpan.FromDays(3650).TotalMilliseconds);
}
