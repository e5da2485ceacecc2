using StackExchange.Redis;

namespace Broker.Cluster;

/// <summary>
/// Every Redis key and channel the cluster uses, under one prefix. A topic key <c>k</c> has a history stream
/// <c>th:{k}</c>, a meta hash <c>tm:{k}</c> (epoch <c>e</c>, last offset <c>o</c>) and a channel <c>t:k</c>; a
/// queue <c>n</c> has a stream <c>q:{n}</c> with the consumer group <see cref="QueueGroup"/>, a meta hash
/// <c>qm:{n}</c> (epoch <c>e</c>) and a channel <c>qn:n</c> that tells consumers' nodes to read. The braces are
/// Redis Cluster hash tags, so a destination's keys share a slot and one script can touch them all.
/// </summary>
internal sealed class ClusterKeys(string prefix)
{
    /// <summary>The consumer group every node reads a queue through.</summary>
    public const string QueueGroup = "consumers";

    private readonly string _topicChannel = prefix + "t:";

    public string Prefix { get; } = prefix;

    public RedisKey TopicHistory(string key) => $"{Prefix}th:{{{key}}}";

    public RedisKey TopicMeta(string key) => $"{Prefix}tm:{{{key}}}";

    public RedisChannel TopicChannel(string key) => RedisChannel.Literal(_topicChannel + key);

    /// <summary>The topic key a message on a topic channel (or one matching a topic glob) was published to.</summary>
    public string? TopicKeyOf(RedisChannel channel)
    {
        var name = channel.ToString();
        return name.StartsWith(_topicChannel, StringComparison.Ordinal) ? name[_topicChannel.Length..] : null;
    }

    /// <summary>The glob channel pattern a node PSUBSCRIBEs for a wildcard subscription (see <see cref="TopicGlob"/>).</summary>
    public RedisChannel TopicPattern(string glob) => RedisChannel.Pattern(TopicGlob.Escape(_topicChannel) + glob);

    /// <summary>The positions this session's durable topic subscriptions were last written to (see <see cref="WrittenPositions"/>).</summary>
    public RedisKey WrittenPositions(string sessionId) => $"{Prefix}w:{{{sessionId}}}";

    public RedisKey QueueStream(string name) => $"{Prefix}q:{{{name}}}";

    public RedisKey QueueMeta(string name) => $"{Prefix}qm:{{{name}}}";

    public RedisChannel QueueChannel(string name) => RedisChannel.Literal($"{Prefix}qn:{name}");

    /// <summary>The channel a node listens on for control requests and replies (<see cref="RedisClusterControl"/>).</summary>
    public RedisChannel NodeControl(string nodeId) => RedisChannel.Literal($"{Prefix}node:{nodeId}:control");

    /// <summary>The glob that matches every node's control channel (for <c>PUBSUB CHANNELS</c>: the nodes that listen now).</summary>
    public RedisChannel NodeControlPattern => RedisChannel.Pattern(TopicGlob.Escape(Prefix + "node:") + "*:control");

    /// <summary>The node whose control channel <paramref name="channel"/> is; null when it is none.</summary>
    public string? NodeOfControl(RedisChannel channel)
    {
        var name = channel.ToString();
        var start = Prefix.Length + "node:".Length;
        return name.Length > start + ":control".Length && name.StartsWith(Prefix + "node:", StringComparison.Ordinal) && name.EndsWith(":control", StringComparison.Ordinal)
            ? name[start..^":control".Length]
            : null;
    }

    /// <summary>A hash of the user's durable sessions that dropped and may resume: session id → when it expires, node, user destinations.</summary>
    public RedisKey AwaySessions(string login) => $"{Prefix}away:{{{login}}}";

    /// <summary>
    /// Where the marker of a session taken out of the user's away hash past <c>max-away-sessions-per-user</c> lives: this
    /// plus the session id (a short-lived string key; the user's hash tag, so a script on the away hash may touch it).
    /// </summary>
    public string AwayEndedPrefix(string login) => $"{Prefix}away-ended:{{{login}}}:";

    public RedisKey AwayEnded(string login, string sessionId) => AwayEndedPrefix(login) + sessionId;

    /// <summary>A fresh epoch: 64 random bits in hex.</summary>
    public static string NewEpoch() => Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8));

    public override string ToString() => Prefix;
}
