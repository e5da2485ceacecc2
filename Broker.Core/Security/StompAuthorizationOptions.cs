namespace Broker.Security;

/// <summary>
/// Per-destination authorization, section <c>Broker:Authorization</c>. Read at startup: a change needs a restart.
/// </summary>
public sealed class StompAuthorizationOptions
{
    /// <summary>
    /// Ordered rules; the first whose who, what and destination match decides. None: every client may
    /// subscribe and send to every destination. Some, and none matches: refused.
    /// </summary>
    public List<StompAuthorizationRule> Rules { get; set; } = [];

    /// <summary>role → logins: the roles a STOMP login has, for <c>role:&lt;name&gt;</c> rules (ASP.NET users bring their own too).</summary>
    public Dictionary<string, List<string>> Roles { get; set; } = new(StringComparer.Ordinal);
}

/// <summary>One rule of <see cref="StompAuthorizationOptions.Rules"/>.</summary>
public sealed class StompAuthorizationRule
{
    /// <summary>
    /// A login (or <c>login:&lt;name&gt;</c>), <c>role:&lt;name&gt;</c>, <c>claim:&lt;type&gt;=&lt;value&gt;</c>,
    /// <c>policy:&lt;name&gt;</c> (an ASP.NET Core authorization policy), <c>anonymous</c>, <c>authenticated</c>, or <c>*</c> (anyone). Default <c>*</c>.
    /// </summary>
    public string? Who { get; set; }

    /// <summary><c>subscribe</c>, <c>send</c>, or <c>*</c> for both. Default <c>*</c>.</summary>
    public string? What { get; set; }

    /// <summary>
    /// A destination pattern: words split at <c>.</c> and <c>/</c>, <c>*</c> one word, <c>#</c> zero or more, and
    /// <c>{login}</c> the session's login (e.g. <c>/topic/admin.#</c>, <c>/queue/jobs.*</c>, <c>/user/{login}/#</c>). Required.
    /// </summary>
    public string? Destination { get; set; }

    /// <summary><c>allow</c> or <c>deny</c>. Required.</summary>
    public string? Access { get; set; }
}
