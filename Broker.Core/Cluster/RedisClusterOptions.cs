namespace Broker.Cluster;

/// <summary>
/// Settings of the Redis cluster broker (<c>Broker:Cluster:*</c>, switched on by <c>Broker:Cluster:Kind=redis</c>).
/// History bounds and the queue length come from <see cref="StompBrokerOptions.HistorySize"/>,
/// <see cref="StompBrokerOptions.HistoryMaxAge"/> and <see cref="StompBrokerOptions.MaxQueueLength"/>, as in-process.
/// </summary>
public sealed class RedisClusterOptions
{
    /// <summary>The configuration section the executable binds.</summary>
    public const string SectionName = "Broker:Cluster";

    /// <summary>
    /// A StackExchange.Redis configuration string. Empty: the session store's (<c>Broker:Sessions:Redis</c>, or
    /// the Redis session store's <see cref="Durability.RedisSessionStoreOptions.Configuration"/> when embedding),
    /// else <c>127.0.0.1:6379</c>.
    /// </summary>
    public string? Redis { get; set; }

    /// <summary>Prefix of every key and channel the cluster uses; every node must use the same. Default <c>broker:cluster:</c>.</summary>
    public string KeyPrefix { get; set; } = "broker:cluster:";

    /// <summary>Longest wait for a connection to Redis. Default 5 seconds.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Longest any one Redis operation may hold a message path (a publish, a subscribe's history read). Past
    /// it, or at once while Redis is unreachable, the node carries on without Redis (local delivery only).
    /// Default 2 seconds.
    /// </summary>
    public TimeSpan OperationTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// How long a topic's epoch and offset, and a queue's messages, are kept in Redis after their last use.
    /// A resume later than this says <c>recovered:false</c>. Default 1 day.
    /// </summary>
    public TimeSpan KeyTtl { get; set; } = TimeSpan.FromDays(1);

    /// <summary>
    /// How long a queue delivery may stay unacknowledged by a node that no longer renews it (a node that died)
    /// before another node's consumers get it. Live nodes renew theirs every third of this. Default 30 seconds.
    /// </summary>
    public TimeSpan QueueRedeliveryTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How often a node records in Redis where its durable topic subscriptions may resume from (written in
    /// <c>auto</c> mode, acknowledged in the client modes), so a session whose node is SIGKILLed, or that comes
    /// back elsewhere before its old node saved it, does not get again what it had more than this long before.
    /// Default 100 ms.
    /// </summary>
    public TimeSpan PositionFlushInterval { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Most queue messages one read from Redis fetches for a node's consumers. Default 64.</summary>
    public int QueueReadBatch { get; set; } = 64;

    /// <summary>
    /// Publishes sent to Redis and not yet answered, per node (limit <c>cluster-publishes-in-flight</c>);
    /// past it a publisher waits (back-pressure). Default 1024.
    /// </summary>
    public int MaxPublishesInFlight { get; set; } = 1024;

    /// <summary>
    /// Queue messages a node holds while Redis is unreachable, to add to their queues once it is back (limit
    /// <c>cluster-outage-buffer</c>); past it a SEND to a queue gets an ERROR. Default 10,000.
    /// </summary>
    public int OutageBufferSize { get; set; } = 10_000;

    /// <summary>
    /// Live messages one subscription may hold while its history is read from Redis (limit
    /// <c>cluster-resume-buffer</c>); past it the subscription resumes with <c>recovered:false</c>. Default 10,000.
    /// </summary>
    public int MaxResumeBuffer { get; set; } = 10_000;

    /// <summary>
    /// Longest wait for another node to answer a control request (end a session, hand one over, describe a user's
    /// sessions). Past it, or at once when no node listens on that node's channel, the asking node acts without it:
    /// it deletes the session's record (ending) or resumes from the store (take-over). Also read without the cluster,
    /// by the control plane over the Redis session store. Default 5 seconds.
    /// </summary>
    public TimeSpan ControlTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Control requests a node may wait on at once (limit <c>cluster-control-pending</c>); past it a request is
    /// not sent and its caller falls back as if the other node did not answer. Also read without the cluster. Default 1024.
    /// </summary>
    public int MaxPendingControlRequests { get; set; } = 1024;

    internal void Validate()
    {
        if (string.IsNullOrWhiteSpace(KeyPrefix))
        {
            throw new InvalidOperationException("Broker:Cluster:KeyPrefix must not be empty.");
        }

        if (OperationTimeout <= TimeSpan.Zero || ConnectTimeout <= TimeSpan.Zero || KeyTtl <= TimeSpan.Zero || QueueRedeliveryTimeout <= TimeSpan.Zero || PositionFlushInterval <= TimeSpan.Zero || ControlTimeout <= TimeSpan.Zero)
        {
            throw new InvalidOperationException("Broker:Cluster timeouts (ConnectTimeout, OperationTimeout, KeyTtl, QueueRedeliveryTimeout, PositionFlushInterval, ControlTimeout) must be positive.");
        }

        if (QueueReadBatch < 1 || MaxPublishesInFlight < 1 || OutageBufferSize < 0 || MaxResumeBuffer < 1 || MaxPendingControlRequests < 1)
        {
            throw new InvalidOperationException("Broker:Cluster limits (QueueReadBatch, MaxPublishesInFlight, MaxResumeBuffer, MaxPendingControlRequests) must be at least 1, OutageBufferSize at least 0.");
        }
    }
}
