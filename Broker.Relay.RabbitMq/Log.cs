using Microsoft.Extensions.Logging;

namespace Broker.Relay.RabbitMq;

internal static partial class Log
{
    [LoggerMessage(EventId = 300, Level = LogLevel.Information, Message = "RabbitMQ relay starting: {Connections} connection(s) to {Endpoint}")]
    public static partial void Starting(ILogger logger, int connections, string endpoint);

    [LoggerMessage(EventId = 301, Level = LogLevel.Information, Message = "RabbitMQ relay connection {Index} connected to {Endpoint} after {FailedAttempts} failed attempt(s)")]
    public static partial void Connected(ILogger logger, int index, string endpoint, int failedAttempts);

    [LoggerMessage(EventId = 302, Level = LogLevel.Warning, Message = "RabbitMQ relay connection {Index} cannot connect to {Endpoint} (attempt {Attempt}): {Reason}; retrying every {DelayMs} ms at most, in the background")]
    public static partial void ConnectFailed(ILogger logger, int index, string endpoint, int attempt, double delayMs, string reason);

    [LoggerMessage(EventId = 311, Level = LogLevel.Debug, Message = "RabbitMQ relay connection {Index} cannot connect to {Endpoint} (attempt {Attempt}): {Reason}; retrying in {DelayMs} ms")]
    public static partial void ConnectRetryFailed(ILogger logger, int index, string endpoint, int attempt, double delayMs, string reason);

    [LoggerMessage(EventId = 303, Level = LogLevel.Warning, Message = "RabbitMQ relay connection {Index} to {Endpoint} lost: {Reason}; reconnecting")]
    public static partial void ConnectionLost(ILogger logger, int index, string endpoint, string reason);

    [LoggerMessage(EventId = 304, Level = LogLevel.Information, Message = "RabbitMQ relay connection {Index} resumed {Count} subscription(s)")]
    public static partial void Resubscribed(ILogger logger, int index, int count);

    [LoggerMessage(EventId = 305, Level = LogLevel.Warning, Message = "RabbitMQ relay could not attach subscription {SubscriptionId} of session {SessionId} to {Destination}; it is retried on reconnect")]
    public static partial void AttachFailed(ILogger logger, Exception exception, string sessionId, string subscriptionId, string destination);

    [LoggerMessage(EventId = 306, Level = LogLevel.Debug, Message = "RabbitMQ relay: subscription {SubscriptionId} of session {SessionId} consumes {Queue} (existed: {Existed})")]
    public static partial void Attached(ILogger logger, string sessionId, string subscriptionId, string queue, bool existed);

    [LoggerMessage(EventId = 307, Level = LogLevel.Debug, Message = "RabbitMQ relay could not detach subscription {SubscriptionId} of session {SessionId}")]
    public static partial void DetachFailed(ILogger logger, Exception exception, string sessionId, string subscriptionId);

    [LoggerMessage(EventId = 308, Level = LogLevel.Warning, Message = "RabbitMQ relay: a SEND failed, no connection to {Endpoint} within {Wait}")]
    public static partial void PublishUnavailable(ILogger logger, string endpoint, TimeSpan wait);

    [LoggerMessage(EventId = 309, Level = LogLevel.Information, Message = "RabbitMQ relay: subscription {SubscriptionId} of session {SessionId} to {Destination} starts when RabbitMQ is reachable")]
    public static partial void SubscribedWhileDisconnected(ILogger logger, string sessionId, string subscriptionId, string destination);

    [LoggerMessage(EventId = 310, Level = LogLevel.Debug, Message = "RabbitMQ relay connection {Index} did not close cleanly")]
    public static partial void CloseFailed(ILogger logger, Exception exception, int index);

    [LoggerMessage(EventId = 312, Level = LogLevel.Debug, Message = "RabbitMQ relay: a pipelined SEND to {Destination} was not confirmed; publishing it again")]
    public static partial void PipelinedPublishRetried(ILogger logger, Exception exception, string destination);

    [LoggerMessage(EventId = 313, Level = LogLevel.Warning, Message = "RabbitMQ relay: durable subscription {SubscriptionId} of session {SessionId} shares the consumer channel ({Max} durable subscriptions already have a channel of their own on this connection); a resume on another node may get some of its redeliveries behind newer messages")]
    public static partial void SharedChannelForDurable(ILogger logger, string sessionId, string subscriptionId, int max);

    [LoggerMessage(EventId = 314, Level = LogLevel.Warning, Message = "RabbitMQ relay: queue {Queue} exists with other arguments than these settings give ({Reason}); it is used as it is. Delete it, or set a RabbitMQ policy, to change its limits")]
    public static partial void QueueArgumentsDiffer(ILogger logger, string queue, string reason);

    [LoggerMessage(EventId = 315, Level = LogLevel.Information, Message = "RabbitMQ relay: the queue {Queue} of subscription {SubscriptionId} of session {SessionId} dropped messages while the client was away (Broker:MaxQueueLength or Broker:MaxQueueBytes); the resume says recovered:false")]
    public static partial void DroppedWhileAway(ILogger logger, string sessionId, string subscriptionId, string queue);

    [LoggerMessage(EventId = 316, Level = LogLevel.Warning, Message = "RabbitMQ relay: the drops queue {Queue} of subscription {SubscriptionId} of session {SessionId} is gone (expired or deleted): a drop may have left no mark, so the resume says recovered:false")]
    public static partial void DropsQueueMissing(ILogger logger, string sessionId, string subscriptionId, string queue);

    [LoggerMessage(EventId = 317, Level = LogLevel.Information, Message = "RabbitMQ relay: the queue {Queue} of subscription {SubscriptionId} of session {SessionId} has other arguments than these settings give and no drops queue {DropsQueue}, so the resume says recovered:false; the drops queue is declared now. If an earlier version declared the queue (no dead-letter target), later resumes tell its drops by length only, not by Broker:MaxQueueBytes, until it is declared again; if it was declared with other limits, its drops are marked from now on")]
    public static partial void QueueWithoutDropMarks(ILogger logger, string sessionId, string subscriptionId, string queue, string dropsQueue);

    [LoggerMessage(EventId = 318, Level = LogLevel.Debug, Message = "RabbitMQ relay connection {Index} could not renew its durable subscriptions' drops queues; it tries again next round")]
    public static partial void RenewFailed(ILogger logger, Exception exception, int index);

    [LoggerMessage(EventId = 320, Level = LogLevel.Debug, Message = "RabbitMQ relay connection {Index} renewed {Count} drops queue(s) in {ElapsedMs} ms")]
    public static partial void Renewed(ILogger logger, int index, int count, long elapsedMs);

    [LoggerMessage(EventId = 319, Level = LogLevel.Warning, Message = "RabbitMQ relay could not delete the queues of ended session {SessionId}; they expire by themselves (Broker:Relay:RabbitMq:DurableQueueExpiry)")]
    public static partial void SessionQueuesNotDeleted(ILogger logger, Exception exception, string sessionId);
}
