namespace Broker.Server.Admin;

internal static partial class Log
{
    [LoggerMessage(EventId = 400, Level = LogLevel.Information, Message = "admin dashboard off: set Broker:Api:Key to turn on /admin and the HTTP API under /api/")]
    public static partial void AdminOff(ILogger logger);

    [LoggerMessage(EventId = 401, Level = LogLevel.Information, Message = "admin dashboard on: /admin, HTTP API under /api/ (Bearer key from Broker:Api:Key)")]
    public static partial void AdminOn(ILogger logger);

    [LoggerMessage(EventId = 403, Level = LogLevel.Warning, Message = "admin statistics sample failed")]
    public static partial void SampleFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 404, Level = LogLevel.Information, Message = "admin API: ended session {SessionId} ({Reason})")]
    public static partial void SessionEnded(ILogger logger, string sessionId, string reason);

    [LoggerMessage(EventId = 405, Level = LogLevel.Information, Message = "admin API: ended the sessions of {User}: {Ended} session(s) ({Reason})")]
    public static partial void UserSessionsEnded(ILogger logger, string user, int ended, string reason);

    [LoggerMessage(EventId = 406, Level = LogLevel.Error, Message = "HTTP API: publishing to {Destination} failed")]
    public static partial void PublishFailed(ILogger logger, Exception exception, string destination);
}
