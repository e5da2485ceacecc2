using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Broker.Durability;
using Broker.Protocol;
using Broker.Routing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using StreamPosition = Broker.Routing.StreamPosition;

namespace Broker.Cluster;

/// <summary>
/// <see cref="IMessageBroker"/> for several in-process nodes sharing one Redis, behaving as one broker.
/// <list type="bullet">
/// <item><c>/topic/</c>: every publish is one Lua script (<see cref="ClusterScripts.PublishTopic"/>) that numbers
/// the message in its topic's epoch, appends it to the topic's history stream and PUBLISHes it on the topic's
/// channel. Each node SUBSCRIBEs to the channels of the exact keys its clients subscribe to (and PSUBSCRIBEs a
/// glob per wildcard pattern, <see cref="TopicGlob"/>), and delivers what arrives to them through its own fan-out
/// (<see cref="ClusterTopic"/>). A node's own publishes come back the same way: one path, so every subscriber on
/// every node sees one order per destination, Redis's, with offsets that a resume can continue from anywhere.</item>
/// <item><c>/queue/</c>: one stream and consumer group per queue (<see cref="ClusterQueue"/>).</item>
/// <item>Redis unreachable (at once, or past <see cref="RedisClusterOptions.OperationTimeout"/>): topic messages
/// go to this node's subscribers only, queue messages wait here (bounded) until Redis is back; nothing on a
/// message path waits longer than the timeout.</item>
/// </list>
/// </summary>
internal sealed class RedisClusterBroker : IMessageBroker, Microsoft.Extensions.Diagnostics.HealthChecks.IHealthCheck, IAsyncDisposable
{
    private const int MaxOutageIds = 4096;
    private static readonly TimeSpan SweepInterval = TimeSpan.FromSeconds(30);

    private readonly StompBrokerOptions _brokerOptions;
    private readonly BrokerMetrics _metrics;
    private readonly ClusterMetrics _clusterMetrics;
    private readonly ILogger _logger;
    private readonly RedisConnection _connection;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _permits;
    private readonly ConcurrentDictionary<string, ClusterTopic> _topics = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, WildcardGroup> _wildcards = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ClusterQueue> _queues = new(StringComparer.Ordinal);
    private readonly RedisValue _historySize;
    private readonly RedisValue _historyAgeMs;
    private readonly RedisValue _keyTtlMs;
    private readonly RedisValue _maxQueueLength;
    private readonly RedisValue _redeliveryMs;
    private readonly RedisValue _releasedIdleMs;
    private readonly RedisValue _historyReadCount;

    // Queue messages published while Redis is unreachable, in publish order (bounded by OutageBufferSize).
    private readonly Lock _outageGate = new();
    private readonly Queue<(string Name, byte[] Payload)> _outageBuffer = new();
    private int _flushing;

    // Ids of messages delivered here during an outage whose publish may have reached Redis after all (it timed
    // out): when one arrives on a channel it is not delivered twice. Bounded, oldest forgotten first.
    private readonly Lock _outageIdsGate = new();
    private readonly HashSet<string> _outageIds = new(StringComparer.Ordinal);
    private readonly Queue<string> _outageIdOrder = new();
    private volatile int _outageIdCount;

    private ConnectionMultiplexer? _multiplexer;
    private ITimer? _timer;
    private ITimer? _positionsTimer;
    private long _sweptAt;
    private int _started;
    private int _down;
    private int _recovering;
    private int _recoverAgain;
    private int _disposed;
    private int _background;
    private long _epochCounter;
    private readonly string _epochPrefix = ClusterKeys.NewEpoch();

    public RedisClusterBroker(IOptions<RedisClusterOptions> options, IOptions<StompBrokerOptions> brokerOptions, IOptions<RedisSessionStoreOptions> sessionStore,
        BrokerMetrics metrics, IMeterFactory meterFactory, ILoggerFactory loggerFactory, TimeProvider? time = null)
    {
        Options = options.Value;
        Options.Validate();
        _brokerOptions = brokerOptions.Value;
        _metrics = metrics;
        _clusterMetrics = new ClusterMetrics(meterFactory, () => OutageBuffered, () => IsAvailable);
        _logger = loggerFactory.CreateLogger("Broker.Cluster.Redis");
        _time = time ?? TimeProvider.System;
        Keys = new ClusterKeys(Options.KeyPrefix);
        Positions = new WrittenPositions(this);
        var configuration = string.IsNullOrWhiteSpace(Options.Redis) ? sessionStore.Value.Configuration : Options.Redis;
        _connection = new RedisConnection(configuration, Options.ConnectTimeout, Options.OperationTimeout, BacklogPolicy.FailFast);
        _permits = new SemaphoreSlim(Options.MaxPublishesInFlight, Options.MaxPublishesInFlight);
        _historySize = Math.Max(0, _brokerOptions.HistorySize);
        _historyAgeMs = Milliseconds(_brokerOptions.HistoryMaxAge);
        _keyTtlMs = Milliseconds(Options.KeyTtl);
        _maxQueueLength = Math.Max(1, _brokerOptions.MaxQueueLength);
        _redeliveryMs = Milliseconds(Options.QueueRedeliveryTimeout);
        _releasedIdleMs = Milliseconds(Options.QueueRedeliveryTimeout + TimeSpan.FromSeconds(1));
        _historyReadCount = Math.Max(1, _brokerOptions.HistorySize) + 1;
        metrics.Observe("link.up", "cluster", () => [new Measurement<long>(IsAvailable ? 1 : 0, new KeyValuePair<string, object?>("link", "redis-cluster"))]);
    }

    /// <summary>Readiness: healthy while the connection to the cluster's Redis is up (local delivery goes on without it).</summary>
    public Task<Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckResult> CheckHealthAsync(
        Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(IsAvailable
            ? Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckResult.Healthy($"Redis cluster at {Endpoints} connected")
            : Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckResult.Unhealthy($"Redis cluster at {Endpoints} unreachable: messages cross no node until it is back"));

    public RedisClusterOptions Options { get; }

    internal ClusterKeys Keys { get; }

    internal WrittenPositions Positions { get; }

    /// <summary>This node's consumer name in every queue's consumer group.</summary>
    public string NodeId { get; } = $"{Environment.MachineName}-{Environment.ProcessId}-{Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(4))}";

    /// <summary>True while this node's Redis connection is up.</summary>
    public bool IsAvailable => _multiplexer is { IsConnected: true } && Volatile.Read(ref _disposed) == 0;

    public string Endpoints => _connection.Endpoints;

    private int OutageBuffered
    {
        get
        {
            lock (_outageGate)
            {
                return _outageBuffer.Count;
            }
        }
    }

    /// <summary>Starts connecting, in the background: an unreachable Redis is retried, never fatal.</summary>
    public void Start()
    {
        if (Interlocked.Exchange(ref _started, 1) == 0)
        {
            Log.Starting(_logger, NodeId, Endpoints, Keys.Prefix);
            _ = ConnectAsync();
            var period = TimeSpan.FromTicks(Math.Clamp(Options.QueueRedeliveryTimeout.Ticks / 3, TimeSpan.FromMilliseconds(50).Ticks, TimeSpan.FromSeconds(5).Ticks));
            _timer = _time.CreateTimer(static s => ((RedisClusterBroker)s!).OnTimer(), this, period, period);
            _positionsTimer = _time.CreateTimer(static s => ((RedisClusterBroker)s!).FlushPositions(), this, Options.PositionFlushInterval, Options.PositionFlushInterval);
        }
    }

    /// <summary>Waits until the connection to Redis is up (for start-up checks and tests).</summary>
    public async Task<bool> WaitConnectedAsync(TimeSpan timeout)
    {
        Start();
        var deadline = _time.GetTimestamp();
        while (!IsAvailable)
        {
            if (_time.GetElapsedTime(deadline) > timeout)
            {
                return false;
            }

            await Task.Delay(20).ConfigureAwait(false);
        }

        return true;
    }

    private async Task ConnectAsync()
    {
        try
        {
            var multiplexer = await _connection.GetMultiplexerAsync().ConfigureAwait(false);
            multiplexer.ConnectionFailed += (_, e) => OnConnectionFailed(e);
            multiplexer.ConnectionRestored += (_, e) => OnConnectionRestored();
            Volatile.Write(ref _multiplexer, multiplexer);
            if (multiplexer.IsConnected)
            {
                Log.Connected(_logger, Endpoints);

                // Anything published or subscribed before the connection was there is settled as after an outage.
                OnConnectionRestored();
            }
            else
            {
                Interlocked.Exchange(ref _down, 1);
                Log.Unavailable(_logger, null, Endpoints, "not connected at start-up");
            }
        }
        catch (Exception ex)
        {
            Log.OperationFailed(_logger, ex, "connect");
        }
    }

    // --- IMessageBroker ------------------------------------------------------------------------------------

    // The in-process broker's rules, so a destination means the same in both (Destinations will hold them once).
    public string? ValidateDestination(string destination, bool forSubscribe)
    {
        if (destination.StartsWith(Destinations.TopicPrefix, StringComparison.Ordinal))
        {
            var key = destination.AsSpan(Destinations.TopicPrefix.Length);
            if (key.IsEmpty)
            {
                return "destination has an empty topic key";
            }

            return !forSubscribe && Destinations.IsWildcard(key) ? $"cannot send to a wildcard destination '{destination}'" : null;
        }

        if (destination.StartsWith(Destinations.QueuePrefix, StringComparison.Ordinal))
        {
            return destination.Length == Destinations.QueuePrefix.Length ? "destination has an empty queue name" : null;
        }

        return $"unknown destination '{destination}': use /topic/<key> or /queue/<name>";
    }

    public ValueTask PublishAsync(BrokerMessage message, CancellationToken cancellationToken = default)
    {
        Start();
        _metrics.Published();
        var destination = message.Destination;
        return destination.StartsWith(Destinations.QueuePrefix, StringComparison.Ordinal)
            ? PublishQueueAsync(message, destination[Destinations.QueuePrefix.Length..])
            : PublishTopicAsync(message, destination[Destinations.TopicPrefix.Length..]);
    }

    /// <summary>
    /// A SEND without a receipt: the script is sent at once (the multiplexer keeps call order on its one
    /// connection, so one publisher's messages stay in order) and not awaited; past
    /// <see cref="RedisClusterOptions.MaxPublishesInFlight"/> the publisher waits. A topic publish never fails:
    /// without Redis it is delivered here.
    /// </summary>
    public ValueTask<bool> PublishPipelinedAsync(BrokerMessage message, IPublisher publisher, CancellationToken cancellationToken = default)
    {
        var destination = message.Destination;
        if (destination.StartsWith(Destinations.QueuePrefix, StringComparison.Ordinal))
        {
            return PublishThenTrueAsync(message, cancellationToken);
        }

        Start();
        _metrics.Published();
        var key = destination[Destinations.TopicPrefix.Length..];
        if (Database is not { } database)
        {
            DeliverInOutage(key, message, mayHaveReachedRedis: false);
            return new ValueTask<bool>(true);
        }

        return _permits.Wait(0, CancellationToken.None)
            ? new ValueTask<bool>(Pipeline(database, message, key, publisher))
            : PipelineAfterPermitAsync(database, message, key, publisher);
    }

    private async ValueTask<bool> PublishThenTrueAsync(BrokerMessage message, CancellationToken cancellationToken)
    {
        await PublishAsync(message, cancellationToken).ConfigureAwait(false);
        return true;
    }

    private async ValueTask<bool> PipelineAfterPermitAsync(IDatabase database, BrokerMessage message, string key, IPublisher publisher)
    {
        await _permits.WaitAsync().ConfigureAwait(false);
        return Pipeline(database, message, key, publisher);
    }

    // Holds a permit.
    private bool Pipeline(IDatabase database, BrokerMessage message, string key, IPublisher publisher)
    {
        Task<RedisResult> publish;
        try
        {
            publish = EvaluatePublishTopic(database, message, key);
        }
        catch (Exception ex) when (IsRedisFailure(ex))
        {
            _permits.Release();
            PublishFailed(ex, key, message);
            return true;
        }

        if (publish.IsCompleted)
        {
            _permits.Release();
            if (!publish.IsCompletedSuccessfully)
            {
                PublishFailed(publish.Exception!.InnerException!, key, message);
            }

            return true;
        }

        _ = TrackAsync(publish, message, key, publisher);
        return false;
    }

    private async Task TrackAsync(Task<RedisResult> publish, BrokerMessage message, string key, IPublisher publisher)
    {
        try
        {
            await publish.ConfigureAwait(false);
        }
        catch (Exception ex) when (IsRedisFailure(ex))
        {
            PublishFailed(ex, key, message);
        }
        finally
        {
            _permits.Release();
        }

        publisher.Confirmed(message);
    }

    private async ValueTask PublishTopicAsync(BrokerMessage message, string key)
    {
        if (Database is not { } database)
        {
            DeliverInOutage(key, message, mayHaveReachedRedis: false);
            return;
        }

        await _permits.WaitAsync().ConfigureAwait(false);
        try
        {
            await EvaluatePublishTopic(database, message, key).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsRedisFailure(ex))
        {
            PublishFailed(ex, key, message);
        }
        finally
        {
            _permits.Release();
        }
    }

    private Task<RedisResult> EvaluatePublishTopic(IDatabase database, BrokerMessage message, string key) =>
        database.ScriptEvaluateAsync(ClusterScripts.PublishTopic,
            [Keys.TopicHistory(key), Keys.TopicMeta(key)],
            [ClusterMessageCodec.Encode(message), _historySize, _historyAgeMs, _keyTtlMs, NextEpoch(), Keys.TopicChannel(key).ToString()]);

    private void PublishFailed(Exception exception, string key, BrokerMessage message)
    {
        RedisFailed(exception, "publish to topic");
        DeliverInOutage(key, message, mayHaveReachedRedis: exception is RedisTimeoutException or TimeoutException);
    }

    // Redis did not take the message: this node's subscribers get it; the others cannot.
    private void DeliverInOutage(string key, BrokerMessage message, bool mayHaveReachedRedis)
    {
        if (mayHaveReachedRedis)
        {
            RememberOutageId(message.MessageId);
        }

        if (_topics.TryGetValue(key, out var topic))
        {
            topic.DeliverInOutage(message);
        }

        if (!_wildcards.IsEmpty)
        {
            foreach (var group in _wildcards.Values)
            {
                group.DeliverInOutage(key, message);
            }
        }
    }

    private async ValueTask PublishQueueAsync(BrokerMessage message, string name)
    {
        var payload = ClusterMessageCodec.Encode(message);
        lock (_outageGate)
        {
            if (_outageBuffer.Count > 0 || !IsAvailable)
            {
                Hold(name, payload);
                return;
            }
        }

        try
        {
            await EvaluatePublishQueue(name, payload).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsRedisFailure(ex))
        {
            RedisFailed(ex, "publish to queue");
            lock (_outageGate)
            {
                Hold(name, payload);
            }
        }
    }

    private async Task EvaluatePublishQueue(string name, byte[] payload)
    {
        var database = Database ?? throw new InvalidOperationException("not connected to Redis");
        var dropped = (long)await database.ScriptEvaluateAsync(ClusterScripts.PublishQueue,
            [Keys.QueueStream(name), Keys.QueueMeta(name)],
            [payload, _maxQueueLength, _keyTtlMs, NextEpoch(), ClusterKeys.QueueGroup, Keys.QueueChannel(name).ToString()]).ConfigureAwait(false);
        if (dropped > 0)
        {
            Log.QueueDropped(_logger, name, dropped);
            for (var i = 0; i < dropped; i++)
            {
                _metrics.Dropped();
            }
        }
    }

    // Under _outageGate.
    private void Hold(string name, byte[] payload)
    {
        if (_outageBuffer.Count >= Options.OutageBufferSize)
        {
            Log.OutageBufferFull(_logger, Destinations.QueuePrefix + name, Options.OutageBufferSize);
            throw StompProtocolException.LimitExceeded("cluster-outage-buffer", _outageBuffer.Count + 1, Options.OutageBufferSize);
        }

        _outageBuffer.Enqueue((name, payload));
    }

    private async Task FlushOutageBufferAsync()
    {
        if (Interlocked.Exchange(ref _flushing, 1) == 1)
        {
            return;
        }

        try
        {
            while (IsAvailable)
            {
                (string Name, byte[] Payload) next;
                lock (_outageGate)
                {
                    if (!_outageBuffer.TryPeek(out next))
                    {
                        return;
                    }
                }

                try
                {
                    await EvaluatePublishQueue(next.Name, next.Payload).ConfigureAwait(false);
                }
                catch (Exception ex) when (IsRedisFailure(ex))
                {
                    RedisFailed(ex, "publish held queue messages");
                    return;
                }

                lock (_outageGate)
                {
                    _outageBuffer.Dequeue();
                }
            }
        }
        finally
        {
            Volatile.Write(ref _flushing, 0);
        }
    }

    public async ValueTask<IBrokerSubscription> SubscribeAsync(SubscriptionRequest request, IMessageSink sink, CancellationToken cancellationToken = default)
    {
        Start();
        var destination = request.Destination;
        if (destination.StartsWith(Destinations.QueuePrefix, StringComparison.Ordinal))
        {
            var name = destination[Destinations.QueuePrefix.Length..];
            while (true)
            {
                var queue = _queues.GetOrAdd(name, static (n, self) => new ClusterQueue(self, n), this);
                if (await queue.TryAddConsumerAsync(sink, request.AckMode, request.Prefetch, request.ResumeFrom).ConfigureAwait(false) is { } consumer)
                {
                    return consumer;
                }
            }
        }

        var key = destination[Destinations.TopicPrefix.Length..];
        if (Destinations.IsWildcard(key))
        {
            var glob = TopicGlob.From(key);
            while (true)
            {
                var group = _wildcards.GetOrAdd(glob, static (g, self) => new WildcardGroup(self, g), this);
                if (await group.TrySubscribeAsync(key, sink).ConfigureAwait(false) is { } wildcard)
                {
                    return wildcard;
                }
            }
        }

        while (true)
        {
            var topic = _topics.GetOrAdd(key, static (k, self) => new ClusterTopic(self, k), this);
            if (await topic.TrySubscribeAsync(request, sink).ConfigureAwait(false) is { } subscription)
            {
                return subscription;
            }
        }
    }

    // --- Redis operations for the topics and queues ----------------------------------------------------------

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

    // --- Failure handling -------------------------------------------------------------------------------------

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

    private static bool IsRedisFailure(Exception exception) =>
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
