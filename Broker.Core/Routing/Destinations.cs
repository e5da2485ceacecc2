using System.Text;

namespace Broker.Routing;

/// <summary>The kinds of destination a STOMP client can name.</summary>
internal enum DestinationKind : byte
{
    Unknown,

    /// <summary><c>/topic/&lt;key&gt;</c>: fan-out to every subscriber; a subscription's key may hold <c>*</c> and <c>#</c>.</summary>
    Topic,

    /// <summary><c>/queue/&lt;name&gt;</c>: competing consumers.</summary>
    Queue,

    /// <summary><c>/user/...</c>: resolved per user and session (<see cref="Sessions.UserDestinations"/>).</summary>
    User,
}

/// <summary>
/// Destination names and the rules every broker applies to them, in one place: the in-process broker,
/// the RabbitMQ relay and user destinations use these, so a name means the same everywhere. A broker
/// adds only what its backend needs on top (the relay: AMQP's name length, RabbitMQ's reserved names).
/// </summary>
internal static class Destinations
{
    public const string TopicPrefix = "/topic/";
    public const string QueuePrefix = "/queue/";
    public const string UserPrefix = "/user/";

    public static DestinationKind Classify(string destination) =>
        destination.StartsWith(TopicPrefix, StringComparison.Ordinal) ? DestinationKind.Topic
        : destination.StartsWith(QueuePrefix, StringComparison.Ordinal) ? DestinationKind.Queue
        : destination.StartsWith(UserPrefix, StringComparison.Ordinal) ? DestinationKind.User
        : DestinationKind.Unknown;

    public static bool IsTopic(string destination) => destination.StartsWith(TopicPrefix, StringComparison.Ordinal);

    public static bool IsQueue(string destination) => destination.StartsWith(QueuePrefix, StringComparison.Ordinal);

    public static bool IsUser(string destination) => destination.StartsWith(UserPrefix, StringComparison.Ordinal);

    /// <summary>The part after <c>/topic/</c> or <c>/queue/</c>: the topic key or the queue name.</summary>
    public static string Name(string destination) =>
        destination[(IsQueue(destination) ? QueuePrefix.Length : IsTopic(destination) ? TopicPrefix.Length : 0)..];

    /// <summary>The destination of queue <paramref name="name"/>.</summary>
    public static string Queue(string name) => QueuePrefix + name;

    /// <summary>The destination of topic key <paramref name="key"/>.</summary>
    public static string Topic(string key) => TopicPrefix + key;

    /// <summary>True when a topic key holds a <c>*</c> or <c>#</c> word. On every SEND: scans in place, allocates nothing.</summary>
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

    public const string MaxDestinationLengthLimit = "max-destination-length";
    public const string MaxDestinationWordsLimit = "max-destination-words";

    /// <summary>
    /// The size limits every broker applies to what a client names in SEND and SUBSCRIBE, before anything is
    /// made for it: at most <paramref name="maxLength"/> UTF-8 bytes (<c>max-destination-length</c>), and a topic
    /// key of at most <paramref name="maxWords"/> dot-separated words (<c>max-destination-words</c>, which bounds
    /// what matching a key against wildcard patterns costs). Throws the limit's protocol exception.
    /// </summary>
    public static void CheckSize(string destination, int maxLength, int maxWords)
    {
        if (destination.Length > maxLength / 3 && Encoding.UTF8.GetByteCount(destination) is var bytes && bytes > maxLength)
        {
            throw Protocol.StompProtocolException.LimitExceeded(MaxDestinationLengthLimit, bytes, maxLength);
        }

        if (IsTopic(destination))
        {
            var words = destination.AsSpan(TopicPrefix.Length).Count('.') + 1;
            if (words > maxWords)
            {
                throw Protocol.StompProtocolException.LimitExceeded(MaxDestinationWordsLimit, words, maxWords);
            }
        }
    }

    /// <summary>
    /// The rules for a <c>/topic/</c> or <c>/queue/</c> destination: a non-empty name, no wildcard in a SEND,
    /// at most <paramref name="limits"/>' bytes. An error message for the client, or null when it is valid.
    /// </summary>
    public static string? Validate(string destination, bool forSubscribe, DestinationLimits limits)
    {
        switch (Classify(destination))
        {
            case DestinationKind.Topic:
                var key = destination.AsSpan(TopicPrefix.Length);
                if (key.IsEmpty)
                {
                    return "destination has an empty topic key";
                }

                if (!forSubscribe && IsWildcard(key))
                {
                    return $"cannot send to a wildcard destination '{destination}'";
                }

                return limits.IsTooLong(key) ? $"topic key longer than {limits.MaxNameBytes} bytes: '{destination}'" : null;

            case DestinationKind.Queue:
                var name = destination.AsSpan(QueuePrefix.Length);
                if (name.IsEmpty)
                {
                    return "destination has an empty queue name";
                }

                return limits.IsTooLong(name) ? $"queue name longer than {limits.MaxNameBytes} bytes: '{destination}'" : null;

            default:
                return $"unknown destination '{destination}': use /topic/<key> or /queue/<name>";
        }
    }
}

/// <summary>The limits a broker puts on destination names, on top of <see cref="Destinations.Validate"/>'s rules.</summary>
/// <param name="MaxNameBytes">Longest topic key or queue name, in UTF-8 bytes.</param>
internal readonly record struct DestinationLimits(int MaxNameBytes)
{
    /// <summary>No limit beyond the frame's own (the in-process broker).</summary>
    public static DestinationLimits None { get; } = new(int.MaxValue);

    public bool IsTooLong(ReadOnlySpan<char> name) =>
        MaxNameBytes != int.MaxValue && name.Length > MaxNameBytes / 3 && Encoding.UTF8.GetByteCount(name) > MaxNameBytes;
}
