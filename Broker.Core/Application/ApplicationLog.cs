using Microsoft.Extensions.Logging;

namespace Broker.Application;

internal static partial class ApplicationLog
{
    [LoggerMessage(600, LogLevel.Error, "STOMP session {SessionId}: the handler for {Destination} failed; the sender is told on /user/queue/errors")]
    public static partial void HandlerFailed(ILogger logger, Exception exception, string sessionId, string destination);

    [LoggerMessage(601, LogLevel.Information, "STOMP session {SessionId}: the handler for {Destination} refused the message: {Reason}")]
    public static partial void HandlerRefused(ILogger logger, string sessionId, string destination, string reason);

    [LoggerMessage(602, LogLevel.Debug, "STOMP session {SessionId}: a reply on {Destination} was dropped: the session does not subscribe to it")]
    public static partial void ReplyDropped(ILogger logger, string sessionId, string destination);

    [LoggerMessage(603, LogLevel.Error, "Session observer {Observer} failed in {Event} for session {SessionId}")]
    public static partial void ObserverFailed(ILogger logger, Exception exception, string observer, string @event, string sessionId);

    [LoggerMessage(604, LogLevel.Error, "STOMP session {SessionId}: interceptor {Interceptor} failed on {Command}; the frame is refused")]
    public static partial void InterceptorFailed(ILogger logger, Exception exception, string interceptor, string command, string sessionId);

    [LoggerMessage(605, LogLevel.Information, "STOMP session {SessionId}: {Command} refused by interceptor {Interceptor}: {Reason}")]
    public static partial void InterceptorRefused(ILogger logger, string sessionId, string command, string interceptor, string reason);

    [LoggerMessage(606, LogLevel.Information, "STOMP session {SessionId} of '{Login}' terminated: {Reason}")]
    public static partial void Terminated(ILogger logger, string sessionId, string? login, string reason);

    [LoggerMessage(607, LogLevel.Warning, "Checking away sessions for expiry failed; trying again at the next interval")]
    public static partial void ExpiryCheckFailed(ILogger logger, Exception exception);

    [LoggerMessage(608, LogLevel.Warning, "STOMP session {SessionId}: the user registry lookup for '{Login}' failed; max-sessions-per-user counts this node's sessions only")]
    public static partial void SessionCountFailed(ILogger logger, Exception exception, string sessionId, string login);

    [LoggerMessage(609, LogLevel.Warning, "'{Login}' has {Count} sessions (max-sessions-per-user {Max}); the older ones are on other nodes and stay until the cluster can end them")]
    public static partial void CannotEndRemoteSessions(ILogger logger, string login, int count, int max);

    [LoggerMessage(610, LogLevel.Error, "STOMP session {SessionId}: telling the sender about a failed handler for {Destination} failed")]
    public static partial void ErrorReportFailed(ILogger logger, Exception exception, string sessionId, string destination);

    [LoggerMessage(611, LogLevel.Warning, "Durable session {SessionId} of {Owner} ended for good: its owner went past max-away-sessions-per-user ({Max}) away sessions on this node")]
    public static partial void AwayPerUserLimit(ILogger logger, string sessionId, string owner, int max);

    [LoggerMessage(613, LogLevel.Warning, "Durable session {SessionId} of {Owner} ended for good: its owner went past max-away-sessions-per-user ({Max}) away sessions on all nodes together")]
    public static partial void AwayPerUserLimitAcrossNodes(ILogger logger, string sessionId, string owner, int max);

    [LoggerMessage(614, LogLevel.Warning, "The max-away-sessions-per-user check across nodes for '{Owner}' failed; the limit holds per node until the next check")]
    public static partial void AwayPerUserCheckFailed(ILogger logger, Exception exception, string owner);

    [LoggerMessage(615, LogLevel.Warning, "Durable session {SessionId} of {Owner} past max-away-sessions-per-user on all nodes together could not be ended; it stays away and resumable, and the next check takes it again")]
    public static partial void AwayEndFailed(ILogger logger, Exception exception, string sessionId, string owner);

    [LoggerMessage(616, LogLevel.Information, "Durable session {SessionId} of {Owner}, the oldest away on this node past max-away-sessions-per-user, is left: it is no longer away (it resumed on another node, or another node's check took it)")]
    public static partial void AwayPerUserLeft(ILogger logger, string sessionId, string owner);

    [LoggerMessage(612, LogLevel.Warning, "Durable session {SessionId} is no longer tracked as away on this node: max-away-sessions ({Max}) reached; its record stays resumable, but no expiry event will be told for it")]
    public static partial void AwayLimit(ILogger logger, string sessionId, int max);
}
