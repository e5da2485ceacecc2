using Broker.Resources;

namespace Broker.Relay.RabbitMq;

/// <summary>
/// The bounds of the queues the relay declares, from the broker's settings (<c>Broker:MaxQueueLength</c>,
/// <c>Broker:MaxQueueBytes</c>, <c>Broker:QueueOverflow</c>, <c>Broker:QueueExpiry</c>) and the durable
/// subscriptions' expiry (<c>Broker:Relay:RabbitMq:DurableQueueExpiry</c>, by default the session TTL), as RabbitMQ
/// queue arguments. RabbitMQ fixes a queue's arguments when it is declared: a later declare with other arguments is
/// refused (<c>PRECONDITION_FAILED</c>, which closes the channel), so the relay declares a queue only when a
/// passive declare found none, on its topology channel, and takes a refusal as "it exists".
/// <para>
/// A durable subscription's queue drops its oldest when full, by length or by bytes, and RabbitMQ dead-letters what
/// it drops (reason <c>maxlen</c>) to the subscription's drops queue, through the default exchange. That queue keeps
/// the newest of them and nothing else (at most one message, of any size: it has no byte limit, so no drop can be too
/// big to leave a mark), and a resume that finds a message there knows the client missed some: <c>recovered:false</c>.
/// A passive declare reports only a message count, so this is how a drop by bytes shows over AMQP at all.
/// </para>
/// </summary>
internal sealed record RelayQueueLimits(int MaxLength, long MaxBytes, QueueOverflow Overflow, TimeSpan QueueExpiry, TimeSpan DurableExpiry)
{
    /// <summary>A <c>/queue/</c> destination's queue: shared by its consumers; a full one refuses or drops the oldest, as configured.</summary>
    public Dictionary<string, object?> DestinationQueue()
    {
        var arguments = Bounded(Overflow == QueueOverflow.RejectPublish ? "reject-publish" : "drop-head");
        if (QueueExpiry > TimeSpan.Zero)
        {
            // Deleted after Broker:QueueExpiry without consumers (RabbitMQ does not count publishes as use).
            arguments["x-expires"] = (long)QueueExpiry.TotalMilliseconds;
        }

        return arguments;
    }

    /// <summary>
    /// A non-durable topic subscription's queue. It always drops the oldest when full: refusing would refuse the
    /// publisher's SEND to everyone because one subscriber is behind (as in-process, where a topic's history evicts
    /// its oldest).
    /// </summary>
    public Dictionary<string, object?> SubscriptionQueue() => Bounded("drop-head");

    /// <summary>
    /// A durable session's topic subscription queue: bounded and dropping its oldest as <see cref="SubscriptionQueue"/>,
    /// kept <see cref="DurableExpiry"/> after its last consumer, one consumer at a time, and dead-lettering what it drops
    /// to <paramref name="dropsQueue"/> (declared first, with <see cref="DropsQueue"/>).
    /// </summary>
    public Dictionary<string, object?> DurableSubscriptionQueue(string dropsQueue)
    {
        var arguments = Bounded("drop-head");
        arguments["x-expires"] = ExpiresMilliseconds(DurableExpiry);
        // One consumer at a time: a client resuming on another node before its old connection is noticed
        // dead takes over in order instead of sharing the messages with a dead peer.
        arguments["x-single-active-consumer"] = true;
        // The default exchange routes by queue name: what the queue drops lands in its drops queue.
        arguments["x-dead-letter-exchange"] = string.Empty;
        arguments["x-dead-letter-routing-key"] = dropsQueue;
        return arguments;
    }

    /// <summary>
    /// A durable subscription's drops queue: at most one message (a newer drop pushes the older out, and nothing
    /// dead-letters from here), with no byte limit, so whatever is dropped leaves a mark. It has no consumer, so
    /// RabbitMQ counts it unused from its last declare: it expires half as late again as its subscription's queue,
    /// and while the subscription is attached the relay renews it every <see cref="DropsRenewInterval"/>, so it
    /// outlives the subscription's queue however long the client stays.
    /// </summary>
    public Dictionary<string, object?> DropsQueue() => new(StringComparer.Ordinal)
    {
        ["x-max-length"] = 1,
        ["x-overflow"] = "drop-head",
        ["x-expires"] = ExpiresMilliseconds(DurableExpiry * 1.5),
    };

    /// <summary>How often an attached durable subscription's drops queue is declared again (renewing its expiry): a quarter of <see cref="DurableExpiry"/>, at most an hour.</summary>
    public TimeSpan DropsRenewInterval => TimeSpan.FromTicks(Math.Clamp(DurableExpiry.Ticks / 4, TimeSpan.TicksPerMillisecond, TimeSpan.TicksPerHour));

    /// <summary>
    /// Whether a durable subscription queue that held <paramref name="messageCount"/> messages may have dropped
    /// some while its client was away by length alone: nothing consumed it then, so below the length limit it
    /// dropped nothing by length. Its drops queue tells the rest (drops by bytes, and by length too).
    /// </summary>
    public bool MayHaveDropped(uint messageCount) => messageCount >= (uint)Math.Max(1, MaxLength);

    /// <summary>Which limit a full queue holding <paramref name="messageCount"/> messages reached.</summary>
    public string LimitReached(uint messageCount) => messageCount >= (uint)Math.Max(1, MaxLength) ? LimitNames.MaxQueueLength : LimitNames.MaxQueueBytes;

    private static long ExpiresMilliseconds(TimeSpan expiry) => Math.Max(1, (long)expiry.TotalMilliseconds);

    private Dictionary<string, object?> Bounded(string overflow)
    {
        var arguments = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["x-max-length"] = Math.Max(1, MaxLength),
            ["x-overflow"] = overflow,
        };
        if (MaxBytes > 0)
        {
            arguments["x-max-length-bytes"] = MaxBytes;
        }

        return arguments;
    }
}
