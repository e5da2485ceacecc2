using System.Security.Claims;

namespace Broker.Security;

/// <summary>Which operations a rule is about.</summary>
[Flags]
internal enum RuleOperations
{
    Subscribe = 1,
    Send = 2,
    Both = Subscribe | Send,
}

internal enum RuleSubject
{
    Anyone,
    Anonymous,
    Authenticated,
    Login,
    Role,
    Claim,
    Policy,
}

/// <summary>A validated <see cref="StompAuthorizationRule"/>: who, what, allow or deny, and the destination pattern (a template while it holds <c>{login}</c>).</summary>
internal sealed class AuthorizationRule
{
    public const string LoginVariable = "{login}";

    private readonly PatternWord[] _templateWords;
    private readonly char[] _templateGaps;

    private AuthorizationRule(int index, RuleSubject subject, string? name, string? value, RuleOperations operations, bool allow, string destination)
    {
        Index = index;
        Subject = subject;
        Name = name;
        Value = value;
        Operations = operations;
        Allow = allow;
        Destination = destination;
        var (texts, gaps) = DestinationPattern.Split(destination);
        _templateWords = Array.ConvertAll(texts, t => t switch
        {
            "*" => new PatternWord(PatternWordKind.Star),
            "#" => new PatternWord(PatternWordKind.Hash),
            _ => new PatternWord(PatternWordKind.Literal, t),
        });
        _templateGaps = gaps;
        UsesLogin = destination.Contains(LoginVariable, StringComparison.Ordinal);
        // Compiled now even with {login}: a pattern too long fails at startup, not at a client's first frame.
        var compiled = DestinationPattern.FromWords(destination, _templateWords, _templateGaps);
        Pattern = UsesLogin ? null : compiled;
    }

    /// <summary>Position in Broker:Authorization:Rules.</summary>
    public int Index { get; }

    public RuleSubject Subject { get; }

    /// <summary>The login, role, claim type or policy name.</summary>
    public string? Name { get; }

    /// <summary>The claim value of a <see cref="RuleSubject.Claim"/> rule.</summary>
    public string? Value { get; }

    public RuleOperations Operations { get; }

    public bool Allow { get; }

    public string Destination { get; }

    public bool UsesLogin { get; }

    /// <summary>The compiled pattern; null while the destination holds <c>{login}</c> (see <see cref="PatternFor"/>).</summary>
    public DestinationPattern? Pattern { get; }

    public bool AppliesTo(StompOperation operation) =>
        (Operations & (operation == StompOperation.Send ? RuleOperations.Send : RuleOperations.Subscribe)) != 0;

    public static AuthorizationRule Parse(StompAuthorizationRule rule, int index)
    {
        var where = $"Broker:Authorization:Rules:{index}";
        var who = string.IsNullOrWhiteSpace(rule.Who) ? "*" : rule.Who.Trim();
        var (subject, name, value) = who switch
        {
            "*" => (RuleSubject.Anyone, null, null),
            "anonymous" => (RuleSubject.Anonymous, null, null),
            "authenticated" => (RuleSubject.Authenticated, null, null),
            _ when who.StartsWith("role:", StringComparison.Ordinal) => (RuleSubject.Role, Required(who[5..], "a role name after role:"), null),
            _ when who.StartsWith("policy:", StringComparison.Ordinal) => (RuleSubject.Policy, Required(who[7..], "a policy name after policy:"), null),
            _ when who.StartsWith("login:", StringComparison.Ordinal) => (RuleSubject.Login, Required(who[6..], "a login after login:"), null),
            _ when who.StartsWith("claim:", StringComparison.Ordinal) => ParseClaim(who[6..]),
            _ => (RuleSubject.Login, who, (string?)null),
        };

        var operations = (rule.What?.Trim().ToLowerInvariant()) switch
        {
            null or "" or "*" => RuleOperations.Both,
            "subscribe" => RuleOperations.Subscribe,
            "send" => RuleOperations.Send,
            var other => throw Invalid($"What is '{other}'; expected subscribe, send or *"),
        };

        var allow = (rule.Access?.Trim().ToLowerInvariant()) switch
        {
            "allow" => true,
            "deny" => false,
            null or "" => throw Invalid("Access is missing; expected allow or deny"),
            var other => throw Invalid($"Access is '{other}'; expected allow or deny"),
        };

        if (string.IsNullOrWhiteSpace(rule.Destination))
        {
            throw Invalid("Destination is missing (a pattern such as /topic/news.# or #)");
        }

        try
        {
            return new AuthorizationRule(index, subject, name, value, operations, allow, rule.Destination.Trim());
        }
        catch (FormatException ex)
        {
            throw Invalid(ex.Message);
        }

        (RuleSubject, string?, string?) ParseClaim(string text)
        {
            var equals = text.IndexOf('=', StringComparison.Ordinal);
            return equals <= 0 ? throw Invalid("Who is a claim rule; expected claim:<type>=<value>") : (RuleSubject.Claim, text[..equals], text[(equals + 1)..]);
        }

        string Required(string text, string what) => text.Length > 0 ? text : throw Invalid($"Who needs {what}");

        InvalidOperationException Invalid(string problem) => new($"{where}: {problem}");
    }

    /// <summary>Whether the rule is about this user (policies are asked later, per destination).</summary>
    public bool IsAbout(ClaimsPrincipal user, string? login) => Subject switch
    {
        RuleSubject.Anyone or RuleSubject.Policy => true,
        RuleSubject.Anonymous => login is null,
        RuleSubject.Authenticated => login is not null,
        RuleSubject.Login => login is not null && string.Equals(login, Name, StringComparison.Ordinal),
        RuleSubject.Role => user.IsInRole(Name!),
        RuleSubject.Claim => user.HasClaim(Name!, Value!),
        _ => false,
    };

    /// <summary>
    /// The pattern for a session of <paramref name="login"/>: <c>{login}</c> becomes the login's literal text
    /// (a login holding <c>.</c> or <c>/</c> becomes several literal words, so it matches itself only).
    /// Null when the rule cannot apply: a <c>{login}</c> rule never applies to an anonymous session.
    /// </summary>
    public DestinationPattern? PatternFor(string? login)
    {
        if (Pattern is not null)
        {
            return Pattern;
        }

        if (login is null)
        {
            return null;
        }

        var words = new List<PatternWord>(_templateWords.Length);
        var gaps = new List<char>(_templateGaps.Length);
        for (var i = 0; i < _templateWords.Length; i++)
        {
            if (i > 0)
            {
                gaps.Add(_templateGaps[i - 1]);
            }

            var word = _templateWords[i];
            if (word.Kind != PatternWordKind.Literal || !word.Text.Contains(LoginVariable, StringComparison.Ordinal))
            {
                words.Add(word);
                continue;
            }

            var (texts, inner) = DestinationPattern.Split(word.Text.Replace(LoginVariable, login, StringComparison.Ordinal));
            for (var t = 0; t < texts.Length; t++)
            {
                if (t > 0)
                {
                    gaps.Add(inner[t - 1]);
                }

                words.Add(new PatternWord(PatternWordKind.Literal, texts[t]));
            }
        }

        try
        {
            return DestinationPattern.FromWords(Destination, [.. words], [.. gaps]);
        }
        catch (FormatException)
        {
            // A login of many words made the pattern too long to compile. An allow cannot apply; a deny must
            // still refuse at least what it would have: its {login} words become # (matches more, never less).
            return Allow ? null : DestinationPattern.FromWords(Destination, Array.ConvertAll(_templateWords, w =>
                w.Kind == PatternWordKind.Literal && w.Text.Contains(LoginVariable, StringComparison.Ordinal) ? new PatternWord(PatternWordKind.Hash) : w), _templateGaps);
        }
    }

    public override string ToString() =>
        $"rule {Index} ({(Allow ? "allow" : "deny")} {Operations switch { RuleOperations.Send => "send", RuleOperations.Subscribe => "subscribe", _ => "*" }} {Destination})";
}
