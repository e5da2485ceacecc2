using Broker.Resources;

namespace Broker.Relay.RabbitMq;

/// <summary>
/// The bounds of the queues the relay declares, from the broker's settings (<c>Broker:MaxQueueLength</c>,
/// <c>Broker:MaxQueueBytes</c>, <c>Broker:QueueOverflow</c>, <c>Broker:QueueExpiry</c>), as RabbitMQ queue
/// arguments. RabbitMQ fixes a queue's arguments when it is declared: a later declare with other arguments is
/// refused (<c>PRECONDITION_FAILED</c>, which closes the channel), so the relay declares a queue only when a
/// passive declare found none, on its topology channel, and takes a refusal as "it exists".
/// </summary>
internal sealed record RelayQueueLimits(int MaxLength, long MaxBytes, QueueOverflow Overflow, TimeSpan QueueExpiry)
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
    /// A topic subscription's queue. It always drops the oldest when full: refusing would refuse the publisher's
    /// SEND to everyone because one subscriber is behind (as in-process, where a topic's history evicts its oldest).
    /// A durable one is kept <paramref name="durableExpiry"/> after its last consumer and has one consumer at a time.
    /// </summary>
    public Dictionary<string, object?> SubscriptionQueue(TimeSpan? durableExpiry)
    {
        var arguments = Bounded("drop-head");
        if (durableExpiry is { } expiry)
        {
            arguments["x-expires"] = (long)expiry.TotalMilliseconds;
            // One consumer at a time: a client resuming on another node before its old connection is noticed
            // dead takes over in order instead of sharing the messages with a dead peer.
            arguments["x-single-active-consumer"] = true;
        }

        return arguments;
    }

    /// <summary>
    /// Whether a durable subscription queue that held <paramref name="messageCount"/> messages may have dropped
    /// some while its client was away: nothing consumed it then, so below the length limit it dropped nothing by
    /// length. A drop by the byte limit cannot be seen from here (see <see cref="RelayLink"/>'s recovered rule).
    /// </summary>
    public bool MayHaveDropped(uint messageCount) => messageCount >= (uint)Math.Max(1, MaxLength);

    /// <summary>Which limit a full queue holding <paramref name="messageCount"/> messages reached.</summary>
    public string LimitReached(uint messageCount) => messageCount >= (uint)Math.Max(1, MaxLength) ? LimitNames.MaxQueueLength : LimitNames.MaxQueueBytes;

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
