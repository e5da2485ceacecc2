using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Broker.Durability;
using Broker.Protocol;
using Broker.Routing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

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
internal sealed partial class RedisClusterBroker : IMessageBroker, Microsoft.Extensions.Diagnostics.HealthChecks.IHealthCheck, IAsyncDisposable
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
}
