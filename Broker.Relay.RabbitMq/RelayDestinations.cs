using System.Security.Cryptography;
using System.Text;
using Broker.Routing;

namespace Broker.Relay.RabbitMq;

/// <summary>
/// How STOMP destinations map onto RabbitMQ: <c>/topic/&lt;key&gt;</c> is the <c>amq.topic</c> exchange with
/// routing key <c>&lt;key&gt;</c> (so <c>*</c> and <c>#</c> mean what they mean in-process), and
/// <c>/queue/&lt;name&gt;</c> is the durable queue <c>&lt;name&gt;</c>, published to through the default exchange.
/// </summary>
internal static class RelayDestinations
{
    public const string TopicExchange = "amq.topic";

    // AMQP short strings (queue names, routing keys) hold at most 255 bytes.
    private static readonly DestinationLimits s_amqpLimits = new(MaxNameBytes: 255);

    /// <summary>The shared rules (<see cref="Destinations.Validate"/>) within AMQP's limits, and no RabbitMQ-reserved queue name.</summary>
    public static string? Validate(string destination, bool forSubscribe, string reservedPrefix)
    {
        if (Destinations.Validate(destination, forSubscribe, s_amqpLimits) is { } problem)
        {
            return problem;
        }

        // amq.* is RabbitMQ's own; the prefix names other sessions' subscription queues.
        var name = destination.AsSpan(Destinations.QueuePrefix.Length);
        return Destinations.IsQueue(destination) && (name.StartsWith("amq.", StringComparison.Ordinal) || name.StartsWith(reservedPrefix, StringComparison.Ordinal))
            ? $"queue name '{name}' is reserved"
            : null;
    }

    /// <summary>The queue that holds a durable session's subscription: the same on every node, for the same session and subscription id.</summary>
    public static string DurableQueueName(string prefix, string sessionId, string subscriptionId)
    {
        // Subscription ids are any header value: hash them into a name that is always valid and short.
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(subscriptionId)).AsSpan(0, 12));
        return $"{prefix}{sessionId}.{hash}";
    }

    /// <summary>The queue where a durable subscription's queue <paramref name="durableQueue"/> dead-letters what it drops (see <see cref="RelayQueueLimits.DropsQueue"/>).</summary>
    public static string DropsQueueName(string durableQueue) => durableQueue + ".drops";
}
