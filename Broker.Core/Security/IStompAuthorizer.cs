using System.Security.Claims;

namespace Broker.Security;

/// <summary>What a client asks to do with a destination.</summary>
public enum StompOperation
{
    /// <summary>SUBSCRIBE: receive what is sent to the destination.</summary>
    Subscribe,

    /// <summary>SEND: publish to the destination.</summary>
    Send,
}

/// <summary>
/// Decides, from code, whether a session may subscribe or send to a destination. Every registered
/// authorizer is asked in registration order before the configured rules (<c>Broker:Authorization:Rules</c>);
/// the first that allows or denies decides, and when all abstain the rules decide (with no rules
/// configured: allowed). To replace the rules, never abstain. A session asks once per operation and
/// destination while the answer stays in its small decision cache, so answer from the principal and
/// the destination only.
/// </summary>
public interface IStompAuthorizer
{
    ValueTask<StompAuthorizationResult> AuthorizeAsync(StompAuthorizationContext context, CancellationToken cancellationToken);
}

/// <summary>Who asks to do what.</summary>
public sealed class StompAuthorizationContext
{
    /// <summary>The session's user: the ASP.NET user, or one built from the STOMP login (name claim = login, role claims from <c>Broker:Authorization:Roles</c>); unauthenticated when anonymous.</summary>
    public required ClaimsPrincipal User { get; init; }

    /// <summary>The authenticated principal's name; null when anonymous.</summary>
    public string? Login { get; init; }

    public required string SessionId { get; init; }

    public required StompOperation Operation { get; init; }

    /// <summary>The destination as the client wrote it (<c>/user/bob/queue/x</c> stays as it is).</summary>
    public required string Destination { get; init; }

    /// <summary>
    /// True for a wildcard subscription (a <c>/topic/</c> key with a <c>*</c> or <c>#</c> word): an allow
    /// must hold for every destination the pattern can match.
    /// </summary>
    public bool IsPattern { get; init; }
}

/// <summary>An authorizer's answer: allow, deny, or no opinion (the next authorizer, then the rules, decide).</summary>
public readonly record struct StompAuthorizationResult
{
    private StompAuthorizationResult(int outcome, string? reason)
    {
        Outcome = outcome;
        Reason = reason;
    }

    public static StompAuthorizationResult Allow { get; } = new(1, null);

    public static StompAuthorizationResult Abstain { get; } = new(0, null);

    public bool IsAllowed => Outcome == 1;

    public bool IsDenied => Outcome == -1;

    /// <summary>Why it was denied: logged, never sent to the client.</summary>
    public string? Reason { get; }

    private int Outcome { get; }

    public static StompAuthorizationResult Deny(string? reason = null) => new(-1, reason);
}
