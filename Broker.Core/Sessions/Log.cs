using Microsoft.Extensions.Logging;

namespace Broker.Sessions;

internal static partial class Log
{
    [LoggerMessage(1, LogLevel.Debug, "STOMP session {SessionId} connected from {Remote} as {Principal} (STOMP {Version})")]
    public static partial void Connected(ILogger logger, string sessionId, string? remote, string principal, string version);

    [LoggerMessage(2, LogLevel.Debug, "STOMP session {SessionId} closed ({Reason})")]
    public static partial void Closed(ILogger logger, string sessionId, CloseReason reason);

    [LoggerMessage(3, LogLevel.Information, "STOMP session {SessionId}: ERROR sent: {Message}")]
    public static partial void ProtocolError(ILogger logger, string sessionId, string message);

    [LoggerMessage(4, LogLevel.Warning, "STOMP session {SessionId}: slow consumer closed: {Reason}")]
    public static partial void SlowConsumer(ILogger logger, string sessionId, string reason);

    [LoggerMessage(5, LogLevel.Error, "STOMP session {SessionId} failed")]
    public static partial void SessionFailed(ILogger logger, Exception exception, string sessionId);

    [LoggerMessage(6, LogLevel.Trace, "STOMP session {SessionId} received {Command}")]
    public static partial void FrameReceived(ILogger logger, string sessionId, Protocol.StompCommand command);

    [LoggerMessage(7, LogLevel.Information, "STOMP session {SessionId}: client {Remote} not heard from in {Silence}; closing")]
    public static partial void HeartbeatTimeout(ILogger logger, string sessionId, string? remote, TimeSpan silence);

    [LoggerMessage(9, LogLevel.Warning, "STOMP session {SessionId}: session store lookup failed; resuming as a new session")]
    public static partial void ResumeLookupFailed(ILogger logger, Exception exception, string sessionId);

    [LoggerMessage(13, LogLevel.Information, "STOMP session {SessionId}: the presented token's session {Resumed} was just ended past max-away-sessions-per-user on all nodes together; resuming as a new session")]
    public static partial void ResumeRefusedEnded(ILogger logger, string sessionId, string resumed);

    [LoggerMessage(10, LogLevel.Warning, "STOMP session {SessionId}: user registry lookup for '{Principal}' failed; sending to this node's sessions only")]
    public static partial void UserLookupFailed(ILogger logger, Exception exception, string sessionId, string principal);

    [LoggerMessage(8, LogLevel.Information, "STOMP session {SessionId}: authentication failed for login '{Login}' from {Remote}")]
    public static partial void AuthenticationFailed(ILogger logger, string sessionId, string? login, string? remote);

    [LoggerMessage(11, LogLevel.Warning, "STOMP session {SessionId}: a SEND to {Destination} without receipt failed after it was handed to the broker; closing with ERROR")]
    public static partial void PipelinedPublishFailed(ILogger logger, Exception exception, string sessionId, string destination);

    [LoggerMessage(12, LogLevel.Warning, "STOMP session {SessionId}: the broker refused a request; ERROR sent: {Message}")]
    public static partial void BrokerRefused(ILogger logger, Exception exception, string sessionId, string message);
}
