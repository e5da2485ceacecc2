using Microsoft.Extensions.Logging;

namespace Broker.Security;

// Never a passcode, a hash or a session token: logins, addresses, destinations and counts only.
internal static partial class SecurityLog
{
    [LoggerMessage(101, LogLevel.Warning, "Broker:Users: the passcodes of {Count} user(s) ({Logins}) are plain text in the configuration; store PBKDF2 hashes instead (Broker.Server hash-passcode)")]
    public static partial void PlainPasscodes(ILogger logger, int count, string logins);

    [LoggerMessage(102, LogLevel.Information, "Authorization: no rules configured (Broker:Authorization:Rules) and no IStompAuthorizer registered: every client may subscribe and send to every destination")]
    public static partial void AuthorizationOpen(ILogger logger);

    [LoggerMessage(103, LogLevel.Information, "Authorization: {Rules} rule(s) from Broker:Authorization:Rules, first match wins, a destination no rule matches is refused; {Authorizers} IStompAuthorizer(s) asked first. Rules are read at startup")]
    public static partial void AuthorizationRules(ILogger logger, int rules, int authorizers);

    [LoggerMessage(104, LogLevel.Information, "Authorization: {Authorizers} IStompAuthorizer(s) registered and no rules configured: what they abstain on is allowed")]
    public static partial void AuthorizationAuthorizersOnly(ILogger logger, int authorizers);

    [LoggerMessage(105, LogLevel.Information, "STOMP session {SessionId}: {Operation} to {Destination} refused for {Principal} ({Because})")]
    public static partial void AccessDenied(ILogger logger, string sessionId, string operation, string destination, string principal, string because);

    [LoggerMessage(106, LogLevel.Information, "STOMP session {SessionId}: restored subscription to {Destination} dropped: {Principal} may no longer subscribe to it")]
    public static partial void RestoredSubscriptionDropped(ILogger logger, string sessionId, string destination, string principal);

    [LoggerMessage(107, LogLevel.Debug, "Login throttling: attempt for login '{Login}' from {Address} delayed {Delay}")]
    public static partial void LoginDelayed(ILogger logger, string login, string? address, TimeSpan delay);

    [LoggerMessage(108, LogLevel.Debug, "Login throttling: attempt for login '{Login}' from {Address} refused unchecked; retry in {RetryAfter}")]
    public static partial void LoginRefused(ILogger logger, string login, string? address, TimeSpan retryAfter);

    [LoggerMessage(113, LogLevel.Information, "Login throttling: attempt for login '{Login}' from {Address} refused unchecked: no turn to check it ({Limit})")]
    public static partial void LoginBusy(ILogger logger, string login, string? address, string limit);

    [LoggerMessage(109, LogLevel.Warning, "Login throttling: {Key} refused for {Duration} after {Failures} failed logins")]
    public static partial void LockedOut(ILogger logger, string key, TimeSpan duration, int failures);

    [LoggerMessage(110, LogLevel.Debug, "Login throttling: {Count} entries tracked, the limit (max-tracked-logins); the least recently seen was forgotten")]
    public static partial void ThrottleEntryEvicted(ILogger logger, int count);

    [LoggerMessage(111, LogLevel.Information, "Login throttling: failed logins are delayed after {FreeAttempts} per login and per address (up to {MaxDelay}); a login is refused for {Lockout} after {PerLogin} failures, an address after {PerAddress}")]
    public static partial void ThrottlingOn(ILogger logger, int freeAttempts, TimeSpan maxDelay, TimeSpan lockout, int perLogin, int perAddress);

    [LoggerMessage(112, LogLevel.Warning, "Login throttling is off (Broker:LoginThrottling:Enabled=false): wrong passcodes can be tried as fast as the server checks them")]
    public static partial void ThrottlingOff(ILogger logger);
}
