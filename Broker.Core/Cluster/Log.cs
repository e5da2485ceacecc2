using Microsoft.Extensions.Logging;

namespace Broker.Cluster;

internal static partial class Log
{
    [LoggerMessage(200, LogLevel.Information, "Redis cluster: node {Node} connecting to {Endpoints} (key prefix '{Prefix}')")]
    public static partial void Starting(ILogger logger, string node, string endpoints, string prefix);

    [LoggerMessage(201, LogLevel.Information, "Redis cluster: connected to {Endpoints}")]
    public static partial void Connected(ILogger logger, string endpoints);

    [LoggerMessage(202, LogLevel.Warning, "Redis cluster: Redis at {Endpoints} is unreachable ({Failure}); messages go to this node's subscribers only, queue messages wait here, until it is back")]
    public static partial void Unavailable(ILogger logger, Exception? exception, string endpoints, string failure);

    [LoggerMessage(203, LogLevel.Warning, "Redis cluster: Redis at {Endpoints} is back; cross-node delivery resumes ({Buffered} queue message(s) held here go to their queues)")]
    public static partial void Restored(ILogger logger, string endpoints, int buffered);

    [LoggerMessage(204, LogLevel.Warning, "Redis cluster: a Redis operation failed ({Operation}); carrying on without it")]
    public static partial void OperationFailed(ILogger logger, Exception exception, string operation);

    [LoggerMessage(205, LogLevel.Warning, "Redis cluster: topic '{Key}': {Count} message(s) published while this node was not listening are no longer in Redis's history; its subscribers here miss them")]
    public static partial void MissedMessages(ILogger logger, string key, long count);

    [LoggerMessage(206, LogLevel.Error, "Redis cluster: limit exceeded: cluster-resume-buffer ({Limit} live messages held for a subscription to '{Key}' while its history was read); it starts after the oldest, with recovered:false")]
    public static partial void ResumeBufferOverflowed(ILogger logger, string key, int limit);

    [LoggerMessage(207, LogLevel.Error, "Redis cluster: limit exceeded: cluster-outage-buffer ({Limit} queue messages held while Redis is unreachable); a SEND to '{Destination}' is refused")]
    public static partial void OutageBufferFull(ILogger logger, string destination, int limit);

    [LoggerMessage(208, LogLevel.Warning, "Redis cluster: a message on '{Source}' could not be read; it is skipped")]
    public static partial void Undecodable(ILogger logger, string source);

    [LoggerMessage(209, LogLevel.Information, "Redis cluster: topic '{Key}' has a new epoch: this node delivered messages published while Redis was unreachable, so no resume from before can promise them")]
    public static partial void EpochBumped(ILogger logger, string key);

    [LoggerMessage(211, LogLevel.Error, "Redis cluster: delivering a message from '{Source}' failed")]
    public static partial void DeliveryFailed(ILogger logger, Exception exception, string source);

    [LoggerMessage(210, LogLevel.Debug, "Redis cluster: queue '{Name}': {Count} oldest message(s) dropped at the max-queue-length limit")]
    public static partial void QueueDropped(ILogger logger, string name, long count);

    [LoggerMessage(212, LogLevel.Information, "Session control: node {Node} takes control requests on '{Channel}'")]
    public static partial void ControlListening(ILogger logger, string node, string channel);

    [LoggerMessage(213, LogLevel.Warning, "Session control: control request '{Kind}' to node {Node}: {Outcome}; acting without it")]
    public static partial void ControlNotAnswered(ILogger logger, string kind, string node, string outcome);

    [LoggerMessage(214, LogLevel.Error, "Session control: limit exceeded: cluster-control-pending ({Limit} control requests waiting for replies); '{Kind}' to node {Node} is not sent")]
    public static partial void ControlPendingFull(ILogger logger, string kind, string node, int limit);

    [LoggerMessage(215, LogLevel.Error, "Session control: carrying out control request '{Kind}' from node {Node} failed")]
    public static partial void ControlRequestFailed(ILogger logger, Exception exception, string kind, string node);

    [LoggerMessage(216, LogLevel.Error, "Session control: limit exceeded: cluster-control-pending (requests to every node may hold {Budget} of its {Limit} slots); '{Kind}' to {Nodes} node(s) is not sent")]
    public static partial void ControlBroadcastFull(ILogger logger, string kind, int nodes, int budget, int limit);
}
