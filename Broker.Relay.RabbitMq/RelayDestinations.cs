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
    public const string TopicPrefix = "/topic/";
    public const string QueuePrefix = "/queue/";
    public const string TopicExchange = "amq.topic";

    // AMQP short strings (queue names, routing keys) hold at most 255 bytes.
    private const int MaxShortString = 255;

    public static bool IsQueue(string destination) => destination.StartsWith(QueuePrefix, StringComparison.Ordinal);

    public static string? Validate(string destination, bool forSubscribe, string reservedPrefix)
    {
        if (destination.StartsWith(TopicPrefix, StringComparison.Ordinal))
        {
            var key = destination.AsSpan(TopicPrefix.Length);
            if (key.IsEmpty)
            {
                return "destination has an empty topic key";
            }

            if (!forSubscribe && IsWildcard(key))
            {
                return $"cannot send to a wildcard destination '{destination}'";
            }

            return Encoding.UTF8.GetByteCount(key) > MaxShortString ? $"topic key longer than {MaxShortString} bytes: '{destination}'" : null;
        }

        if (IsQueue(destination))
        {
            var name = destination.AsSpan(QueuePrefix.Length);
            if (name.IsEmpty)
            {
                return "destination has an empty queue name";
            }

            if (Encoding.UTF8.GetByteCount(name) > MaxShortString)
            {
                return $"queue name longer than {MaxShortString} bytes: '{destination}'";
            }

            // amq.* is RabbitMQ's own; the prefix names other sessions' subscription queues.
            return name.StartsWith("amq.", StringComparison.Ordinal) || name.StartsWith(reservedPrefix, StringComparison.Ordinal)
                ? $"queue name '{name}' is reserved"
                : null;
        }

        return $"unknown destination '{destination}': use /topic/<key> or /queue/<name>";
    }

    /// <summary>The queue that holds a durable session's subscription: the same on every node, for the same session and subscription id.</summary>
    public static string DurableQueueName(string prefix, string sessionId, string subscriptionId)
    {
        // Subscription ids are any header value: hash them into a name that is always valid and short.
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(subscriptionId)).AsSpan(0, 12));
        return $"{prefix}{sessionId}.{hash}";
    }

    public static bool IsWildcard(ReadOnlySpan<char> key)
    {
        foreach (var range in key.Split('.'))
        {
            if (key[range] is "*" or "#")
            {
                return true;
            }
        }

        return false;
    }
}
