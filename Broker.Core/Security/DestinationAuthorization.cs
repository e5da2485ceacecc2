using System.Runtime.CompilerServices;
using System.Security.Claims;
using Broker.Protocol;
using Broker.Sessions;
using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Broker.Security;

/// <summary>
/// Who may SUBSCRIBE and SEND to which destination: the registered <see cref="IStompAuthorizer"/>s, then
/// the configured rules (<c>Broker:Authorization:Rules</c>). Sessions call it from one place per frame
/// kind, before the broker is asked for anything, so it holds in-process and through the relay alike.
/// With no rule and no authorizer, <see cref="IsEnabled"/> is false and a check is that one flag.
/// </summary>
internal sealed class DestinationAuthorization
{
    /// <summary>Decisions each session remembers (then it starts over); destinations longer than <see cref="MaxCachedDestinationLength"/> are not remembered.</summary>
    public const int MaxCachedDecisions = 128;

    public const int MaxCachedDestinationLength = 256;

    /// <summary>
    /// Most words of a wildcard subscription that is checked against rules (limit name
    /// <c>max-wildcard-subscription-words</c>): its check walks a product of automata, so a longer one is refused.
    /// </summary>
    public const int MaxWildcardSubscriptionWords = 128;

    private readonly AuthorizationRule[] _rules;
    private readonly IStompAuthorizer[] _authorizers;
    private readonly IAuthorizationService? _policies;
    private readonly Dictionary<string, string[]> _rolesByLogin = new(StringComparer.Ordinal);
    private readonly SecurityMetrics? _metrics;
    private readonly ILogger _logger;
    private readonly ConditionalWeakTable<StompSession, SessionGrants> _sessions = new();

    public DestinationAuthorization(StompAuthorizationOptions options, IEnumerable<IStompAuthorizer> authorizers, IAuthorizationService? policies,
        SecurityMetrics? metrics, ILogger logger)
    {
        _rules = [.. options.Rules.Select(AuthorizationRule.Parse)];
        _authorizers = [.. authorizers];
        _policies = policies;
        _metrics = metrics;
        _logger = logger;
        foreach (var rule in _rules)
        {
            if (rule.Subject == RuleSubject.Policy && policies is null)
            {
                throw new InvalidOperationException(
                    $"Broker:Authorization:Rules:{rule.Index}: policy:{rule.Name} needs ASP.NET Core authorization (services.AddAuthorization(...) with that policy)");
            }
        }

        foreach (var (role, logins) in options.Roles)
        {
            foreach (var login in logins)
            {
                _rolesByLogin[login] = _rolesByLogin.TryGetValue(login, out var roles) ? [.. roles, role] : [role];
            }
        }

        IsEnabled = _rules.Length > 0 || _authorizers.Length > 0;
    }

    /// <summary>No rules, no authorizers: everyone may do everything.</summary>
    public static DestinationAuthorization Open { get; } = new(new StompAuthorizationOptions(), [], null, null, NullLogger.Instance);

    public bool IsEnabled { get; }

    public int RuleCount => _rules.Length;

    public int AuthorizerCount => _authorizers.Length;

    internal IReadOnlyList<AuthorizationRule> Rules => _rules;

    /// <summary>Called once a CONNECT is authenticated: fixes the session's user and the rules about it.</summary>
    public void Attach(StompSession session, StompAuthResult result, ClaimsPrincipal? transportUser)
    {
        if (IsEnabled)
        {
            _sessions.AddOrUpdate(session, CreateGrants(result.Principal, result.User, transportUser));
        }
    }

    /// <summary>Completes when <paramref name="session"/> may do <paramref name="operation"/> on <paramref name="destination"/>; throws the ERROR otherwise.</summary>
    public ValueTask AuthorizeAsync(StompSession session, StompOperation operation, string destination)
    {
        if (!IsEnabled)
        {
            return default;
        }

        var grants = GrantsOf(session);
        if (grants.TryRecall(operation, destination, out var allowed))
        {
            return allowed ? default : throw Refuse(session, grants, operation, destination, "refused before");
        }

        var decision = grants.DecideAsync(session.Id, operation, destination);
        if (decision.IsCompletedSuccessfully)
        {
            var result = decision.Result;
            return Conclude(grants, operation, destination, result) ? default : throw Refuse(session, grants, operation, destination, result.Because, result.Limit);
        }

        return AwaitDecisionAsync(session, grants, operation, destination, decision);
    }

    /// <summary>The same decision without the ERROR: for subscriptions a resumed session gets back.</summary>
    public async ValueTask<bool> IsAllowedAsync(StompSession session, StompOperation operation, string destination)
    {
        if (!IsEnabled)
        {
            return true;
        }

        var grants = GrantsOf(session);
        if (!grants.TryRecall(operation, destination, out var allowed))
        {
            allowed = Conclude(grants, operation, destination, await grants.DecideAsync(session.Id, operation, destination).ConfigureAwait(false));
        }

        if (!allowed)
        {
            SecurityLog.RestoredSubscriptionDropped(_logger, session.Id, destination, grants.Login ?? "anonymous");
        }

        return allowed;
    }

    /// <summary>For a hook in a method that must stay synchronous when the check is: waits for the check, then runs <paramref name="next"/> again (its check now answers from the session's memory).</summary>
    public static async ValueTask ThenAsync(ValueTask authorization, Func<StompFrame, ValueTask> next, StompFrame frame)
    {
        await authorization.ConfigureAwait(false);
        await next(frame).ConfigureAwait(false);
    }

    internal SessionGrants CreateGrants(string? login, ClaimsPrincipal? authenticated, ClaimsPrincipal? transportUser)
    {
        var user = authenticated is { Identity.IsAuthenticated: true } ? authenticated
            : transportUser is { Identity: { IsAuthenticated: true, Name: { } name } } && name == login ? transportUser
            : login is not null ? new ClaimsPrincipal(new ClaimsIdentity([new Claim(ClaimTypes.Name, login)], "stomp", ClaimTypes.Name, ClaimTypes.Role))
            : new ClaimsPrincipal(new ClaimsIdentity());
        if (login is not null && _rolesByLogin.TryGetValue(login, out var roles))
        {
            var identity = new ClaimsIdentity(roles.Select(r => new Claim(ClaimTypes.Role, r)), "broker-roles", ClaimTypes.Name, ClaimTypes.Role);
            user = new ClaimsPrincipal(user.Identities.Append(identity));
        }

        var effective = new List<SessionRule>(_rules.Length);
        foreach (var rule in _rules)
        {
            if (rule.IsAbout(user, login) && rule.PatternFor(login) is { } pattern)
            {
                effective.Add(new SessionRule(rule, pattern));
            }
        }

        return new SessionGrants(this, user, login, [.. effective]);
    }

    private SessionGrants GrantsOf(StompSession session) =>
        _sessions.TryGetValue(session, out var grants) ? grants : _sessions.GetValue(session, s => CreateGrants(s.Principal, null, null));

    private async ValueTask AwaitDecisionAsync(StompSession session, SessionGrants grants, StompOperation operation, string destination, ValueTask<AccessDecision> pending)
    {
        var decision = await pending.ConfigureAwait(false);
        if (!Conclude(grants, operation, destination, decision))
        {
            throw Refuse(session, grants, operation, destination, decision.Because, decision.Limit);
        }
    }

    private static bool Conclude(SessionGrants grants, StompOperation operation, string destination, AccessDecision decision)
    {
        grants.Remember(operation, destination, decision.Allowed);
        return decision.Allowed;
    }

    private StompProtocolException Refuse(StompSession session, SessionGrants grants, StompOperation operation, string destination, string because, string? limit = null)
    {
        _metrics?.AccessDenied(operation);
        var verb = Verb(operation);
        SecurityLog.AccessDenied(_logger, session.Id, verb, destination, grants.Login ?? "anonymous", because);
        return limit is null ? new StompProtocolException($"{verb} to {destination} is not permitted") : new StompProtocolException(because, limit);
    }

    internal static string Verb(StompOperation operation) => operation == StompOperation.Send ? "send" : "subscribe";

    internal async ValueTask<StompAuthorizationResult> AskAuthorizersAsync(StompAuthorizationContext context)
    {
        foreach (var authorizer in _authorizers)
        {
            var result = await authorizer.AuthorizeAsync(context, CancellationToken.None).ConfigureAwait(false);
            if (result.IsAllowed || result.IsDenied)
            {
                return result;
            }
        }

        return StompAuthorizationResult.Abstain;
    }

    internal async ValueTask<bool> PolicyAllowsAsync(string policy, StompAuthorizationContext context) =>
        (await _policies!.AuthorizeAsync(context.User, context, policy).ConfigureAwait(false)).Succeeded;

    internal bool HasAuthorizers => _authorizers.Length > 0;

    internal bool HasRules => _rules.Length > 0;
}

/// <summary>A rule that is about a session's user, with its pattern for that user.</summary>
internal readonly record struct SessionRule(AuthorizationRule Rule, DestinationPattern Pattern);

/// <summary>The outcome of one check, with what decided it (for the log).</summary>
/// <param name="Limit">Set when a limit refused it: the ERROR then names the limit.</param>
internal readonly record struct AccessDecision(bool Allowed, string Because, string? Limit = null);

/// <summary>
/// One session's user, the rules about it, and its last decisions. Used by the session's read loop only
/// (SUBSCRIBE, SEND and resume are handled there, one at a time), so nothing here is locked.
/// </summary>
internal sealed class SessionGrants(DestinationAuthorization owner, ClaimsPrincipal user, string? login, SessionRule[] rules)
{
    private readonly Dictionary<(StompOperation, string), bool> _remembered = [];
    private (StompOperation Operation, string? Destination, bool Allowed) _last;

    public ClaimsPrincipal User { get; } = user;

    public string? Login { get; } = login;

    public bool TryRecall(StompOperation operation, string destination, out bool allowed)
    {
        if (_last.Operation == operation && _last.Destination == destination)
        {
            allowed = _last.Allowed;
            return true;
        }

        return _remembered.TryGetValue((operation, destination), out allowed);
    }

    public void Remember(StompOperation operation, string destination, bool allowed)
    {
        _last = (operation, destination, allowed);
        if (destination.Length > DestinationAuthorization.MaxCachedDestinationLength)
        {
            return;
        }

        if (_remembered.Count >= DestinationAuthorization.MaxCachedDecisions)
        {
            _remembered.Clear();
        }

        _remembered[(operation, destination)] = allowed;
    }

    /// <summary>The authorizers first, then the rules: see <see cref="DecideByRulesAsync"/>.</summary>
    public async ValueTask<AccessDecision> DecideAsync(string sessionId, StompOperation operation, string destination)
    {
        var isPattern = operation == StompOperation.Subscribe && DestinationPattern.IsWildcardSubscription(destination);
        var context = new StompAuthorizationContext
        {
            User = User,
            Login = Login,
            SessionId = sessionId,
            Operation = operation,
            Destination = destination,
            IsPattern = isPattern,
        };
        if (owner.HasAuthorizers)
        {
            var answer = await owner.AskAuthorizersAsync(context).ConfigureAwait(false);
            if (answer.IsAllowed || answer.IsDenied)
            {
                return new AccessDecision(answer.IsAllowed, answer.IsDenied ? "an IStompAuthorizer: " + (answer.Reason ?? "denied") : "an IStompAuthorizer");
            }

            if (!owner.HasRules)
            {
                return new AccessDecision(true, "no rules configured");
            }
        }

        return await DecideByRulesAsync(context).ConfigureAwait(false);
    }

    /// <summary>
    /// First match wins; no match refuses.
    /// <para>
    /// A concrete destination D: the first rule (about this user, for this operation) whose pattern matches D decides.
    /// </para>
    /// <para>
    /// A wildcard subscription P receives every destination P can match, so it may only be allowed if each of them
    /// would be allowed on its own. The walk: skip rules whose pattern cannot match anything P matches (they
    /// decide none of P's destinations). The first rule R that overlaps P decides P: allowed iff R allows and R
    /// covers P (matches every destination P matches). Why that is safe: every destination D of P then matches R,
    /// and no earlier rule matches D (none overlaps P), so D alone would be decided by R: allowed. Why not more:
    /// if R denies, the destinations they share would be refused on their own; if R allows but does not cover P,
    /// the destinations of P outside R fall to later rules that may deny, and deciding those would need the
    /// walk to split P into pieces (which one SUBSCRIBE cannot be). So <c>/topic/#</c> is refused when a rule
    /// before the allow denies <c>/topic/admin.*</c>, and allowed when the deny comes after an allow of <c>/topic/#</c>
    /// (then no single destination under <c>/topic/admin.</c> is refused either). No overlapping rule: refused.
    /// A policy rule applies when its policy succeeds for the context (IsPattern = true for P).
    /// </para>
    /// </summary>
    private async ValueTask<AccessDecision> DecideByRulesAsync(StompAuthorizationContext context)
    {
        var pattern = context.IsPattern ? DestinationPattern.ForSubscription(context.Destination) : null;
        if (pattern?.Words.Length > DestinationAuthorization.MaxWildcardSubscriptionWords)
        {
            return new AccessDecision(false, $"limit exceeded: max-wildcard-subscription-words ({pattern.Words.Length} > {DestinationAuthorization.MaxWildcardSubscriptionWords})",
                "max-wildcard-subscription-words");
        }

        foreach (var (rule, rulePattern) in rules)
        {
            if (!rule.AppliesTo(context.Operation))
            {
                continue;
            }

            if (pattern is null ? !rulePattern.Matches(context.Destination) : !rulePattern.Overlaps(pattern))
            {
                continue;
            }

            if (rule.Subject == RuleSubject.Policy && !await owner.PolicyAllowsAsync(rule.Name!, context).ConfigureAwait(false))
            {
                continue;
            }

            if (pattern is null || !rule.Allow)
            {
                return new AccessDecision(rule.Allow, rule.ToString());
            }

            return rulePattern.Covers(pattern)
                ? new AccessDecision(true, rule.ToString())
                : new AccessDecision(false, $"{rule} allows only part of the wildcard subscription");
        }

        return new AccessDecision(false, "no rule matches");
    }
}
