using Microsoft.Extensions.Logging;

namespace Broker.Routing;

internal static partial class RoutingLog
{
    [LoggerMessage(200, LogLevel.Information, "Queue {Queue} expired (no consumer and no activity for {Expiry}): deleted with {Dropped} message(s)")]
    public static partial void QueueExpired(ILogger logger, string queue, TimeSpan expiry, int dropped);

    [LoggerMessage(201, LogLevel.Warning, "Message {MessageId} of {Queue} redelivered {Redeliveries} time(s): moved to {DeadLetterQueue}")]
    public static partial void DeadLettered(ILogger logger, string messageId, string queue, int redeliveries, string deadLetterQueue);

    [LoggerMessage(202, LogLevel.Warning, "Message {MessageId} of {Queue} redelivered {Redeliveries} time(s) could not be dead-lettered: dropped")]
    public static partial void DeadLetterDropped(ILogger logger, Exception exception, string messageId, string queue, int redeliveries);

    [LoggerMessage(203, LogLevel.Debug, "Queue {Queue} of an ended session deleted with {Dropped} message(s)")]
    public static partial void SessionQueueDeleted(ILogger logger, string queue, int dropped);
}
