using System.Security.Claims;
using Broker.Routing;
using Broker.Security;
using FsCheck;
using FsCheck.Fluent;
using Microsoft.Extensions.Logging.Abstractions;
using NUnit.Framework;

namespace Broker.Tests.Security;

[TestFixture]
public sealed class DestinationAuthorizationTests
{
    private static StompAuthorizationRule Rule(string who, string what, string destination, string access) =>
        new() { Who = who, What = what, Destination = destination, Access = access };

    private static DestinationAuthorization Build(IEnumerable<StompAuthorizationRule> rules, IStompAuthorizer[]? authorizers = null, Dictionary<string, List<string>>? roles = null)
    {
        var options = new StompAuthorizationOptions { Rules = [.. rules] };
        foreach (var (role, logins) in roles ?? [])
        {
            options.Roles[role] = logins;
        }

        return new DestinationAuthorization(options, authorizers ?? [], null, null, NullLogger.Instance);
    }

    private static bool Allowed(DestinationAuthorization authorization, string? login, StompOperation operation, string destination, ClaimsPrincipal? user = null) =>
        Allowed(authorization.CreateGrants(login, user, null), operation, destination);

    private static bool Allowed(SessionGrants grants, StompOperation operation, string destination) =>
        grants.DecideAsync("session", operation, destination).AsTask().GetAwaiter().GetResult().Allowed;

    [Test]
    public void Without_rules_or_authorizers_it_is_off_and_everything_is_allowed()
    {
        var open = Build([]);
        Assert.That(open.IsEnabled, Is.False);
        Assert.That(DestinationAuthorization.Open.IsEnabled, Is.False);
    }

    [Test]
    public void The_first_matching_rule_decides_and_no_match_refuses()
    {
        var authorization = Build([
            Rule("*", "subscribe", "/topic/public.#", "allow"),
            Rule("publisher", "send", "/topic/public.#", "allow"),
            Rule("*", "*", "/topic/public.secret", "deny"),
        ]);

        Assert.That(Allowed(authorization, "guest", StompOperation.Subscribe, "/topic/public.news"), Is.True);
        Assert.That(Allowed(authorization, null, StompOperation.Subscribe, "/topic/public.news"), Is.True, "* includes anonymous");
        Assert.That(Allowed(authorization, "guest", StompOperation.Send, "/topic/public.news"), Is.False, "read-only for others");
        Assert.That(Allowed(authorization, "publisher", StompOperation.Send, "/topic/public.news"), Is.True);
        Assert.That(Allowed(authorization, "guest", StompOperation.Subscribe, "/topic/public.secret"), Is.True, "an earlier allow matched first");
        Assert.That(Allowed(authorization, "guest", StompOperation.Subscribe, "/queue/anything"), Is.False, "no rule matches");
    }

    [Test]
    public void Who_can_be_a_login_a_role_a_claim_anonymous_or_authenticated()
    {
        var authorization = Build([
            Rule("role:admin", "*", "/queue/admin.#", "allow"),
            Rule("claim:team=ops", "*", "/queue/ops.#", "allow"),
            Rule("anonymous", "subscribe", "/topic/lobby", "allow"),
            Rule("authenticated", "*", "/topic/members.#", "allow"),
            Rule("login:anonymous", "*", "/topic/odd", "allow"),
        ], roles: new() { ["admin"] = ["alice"] });
        var ops = new ClaimsPrincipal(new ClaimsIdentity([new Claim(ClaimTypes.Name, "olga"), new Claim("team", "ops")], "test"));

        Assert.That(Allowed(authorization, "alice", StompOperation.Send, "/queue/admin.jobs"), Is.True, "role from Broker:Authorization:Roles");
        Assert.That(Allowed(authorization, "bob", StompOperation.Send, "/queue/admin.jobs"), Is.False);
        Assert.That(Allowed(authorization, "olga", StompOperation.Subscribe, "/queue/ops.alerts", ops), Is.True, "claim of the authenticated user");
        Assert.That(Allowed(authorization, "bob", StompOperation.Subscribe, "/queue/ops.alerts"), Is.False);
        Assert.That(Allowed(authorization, null, StompOperation.Subscribe, "/topic/lobby"), Is.True);
        Assert.That(Allowed(authorization, "bob", StompOperation.Subscribe, "/topic/lobby"), Is.False, "anonymous means not logged in");
        Assert.That(Allowed(authorization, "bob", StompOperation.Send, "/topic/members.chat"), Is.True);
        Assert.That(Allowed(authorization, null, StompOperation.Send, "/topic/members.chat"), Is.False);
        Assert.That(Allowed(authorization, "anonymous", StompOperation.Send, "/topic/odd"), Is.True, "login:<name> names a login even when it is a keyword");
    }

    [Test]
    public void Login_variable_gives_each_user_its_own_destinations()
    {
        var authorization = Build([
            Rule("*", "*", "/user/{login}/#", "allow"),
            Rule("*", "subscribe", "/topic/private.{login}", "allow"),
        ]);

        Assert.That(Allowed(authorization, "alice", StompOperation.Send, "/user/alice/queue/notes"), Is.True);
        Assert.That(Allowed(authorization, "alice", StompOperation.Send, "/user/bob/queue/notes"), Is.False);
        Assert.That(Allowed(authorization, "bob", StompOperation.Send, "/user/bob.smith/queue/notes"), Is.False, "bob is not bob.smith");
        Assert.That(Allowed(authorization, "bob.smith", StompOperation.Send, "/user/bob.smith/queue/notes"), Is.True, "a login with a dot matches itself");
        Assert.That(Allowed(authorization, "a*", StompOperation.Send, "/user/ab/queue/notes"), Is.False, "a login is literal text, never a wildcard");
        Assert.That(Allowed(authorization, "#", StompOperation.Send, "/user/alice/queue/notes"), Is.False, "a login is literal text, never a wildcard");
        Assert.That(Allowed(authorization, "alice", StompOperation.Subscribe, "/topic/private.alice"), Is.True);
        Assert.That(Allowed(authorization, "alice", StompOperation.Subscribe, "/topic/private.bob"), Is.False);
        Assert.That(Allowed(authorization, null, StompOperation.Subscribe, "/topic/private.{login}"), Is.False, "{login} rules never apply to anonymous sessions");
    }

    [Test]
    public void A_wildcard_subscription_is_allowed_only_when_every_destination_it_can_receive_is()
    {
        var denyFirst = Build([
            Rule("*", "subscribe", "/topic/admin.*", "deny"),
            Rule("*", "subscribe", "/topic/#", "allow"),
        ]);
        Assert.That(Allowed(denyFirst, "guest", StompOperation.Subscribe, "/topic/#"), Is.False, "/topic/# would receive /topic/admin.x");
        Assert.That(Allowed(denyFirst, "guest", StompOperation.Subscribe, "/topic/*"), Is.False, "/topic/* receives /topic/admin/x (a key word may hold a slash)");
        Assert.That(Allowed(denyFirst, "guest", StompOperation.Subscribe, "/topic/public.#"), Is.True);
        Assert.That(Allowed(denyFirst, "guest", StompOperation.Subscribe, "/topic/admin.x"), Is.False);
        Assert.That(Allowed(denyFirst, "guest", StompOperation.Subscribe, "/topic/admin"), Is.True, "admin.* needs a word after admin");

        var allowFirst = Build([
            Rule("*", "subscribe", "/topic/#", "allow"),
            Rule("*", "subscribe", "/topic/admin.*", "deny"),
        ]);
        Assert.That(Allowed(allowFirst, "guest", StompOperation.Subscribe, "/topic/#"), Is.True, "first match wins: the deny never decides anything");
        Assert.That(Allowed(allowFirst, "guest", StompOperation.Subscribe, "/topic/admin.x"), Is.True);

        var partial = Build([Rule("*", "subscribe", "/topic/public.#", "allow")]);
        Assert.That(Allowed(partial, "guest", StompOperation.Subscribe, "/topic/*.news"), Is.False, "allows /topic/public.news, but /topic/other.news matches no rule");
    }

    [Test]
    public void A_very_long_wildcard_subscription_is_refused_by_name_of_its_limit()
    {
        var authorization = Build([Rule("*", "subscribe", "/topic/#", "allow")]);
        var words = DestinationAuthorization.MaxWildcardSubscriptionWords;
        Assert.That(Allowed(authorization, "guest", StompOperation.Subscribe, "/topic/" + string.Join('.', Enumerable.Repeat("w", words - 3)) + ".#"), Is.True);
        var decision = authorization.CreateGrants("guest", null, null)
            .DecideAsync("s", StompOperation.Subscribe, "/topic/" + string.Join('.', Enumerable.Repeat("w", words)) + ".#").AsTask().GetAwaiter().GetResult();
        Assert.That((decision.Allowed, decision.Because, decision.Limit), Is.EqualTo((false, $"limit exceeded: max-wildcard-subscription-words ({words + 3} > {words})", "max-wildcard-subscription-words")));
    }

    [Test]
    public void A_rule_applies_to_any_destination_string()
    {
        var authorization = Build([
            Rule("*", "send", "/app/chat.#", "allow"),
            Rule("*", "send", "/user/*/queue/support", "allow"),
        ]);
        Assert.That(Allowed(authorization, "guest", StompOperation.Send, "/app/chat.send"), Is.True);
        Assert.That(Allowed(authorization, "guest", StompOperation.Send, "/app/admin.reset"), Is.False);
        Assert.That(Allowed(authorization, "guest", StompOperation.Send, "/user/alice/queue/support"), Is.True, "a SEND to a user destination is authorized as written");
        Assert.That(Allowed(authorization, "guest", StompOperation.Send, "/user/alice/queue/private"), Is.False);
    }

    [TestCase("*", "*", "/topic/x", "permit", "Access is 'permit'")]
    [TestCase("*", "*", "/topic/x", null, "Access is missing")]
    [TestCase("*", "publish", "/topic/x", "allow", "What is 'publish'")]
    [TestCase("*", "*", null, "allow", "Destination is missing")]
    [TestCase("claim:team", "*", "/topic/x", "allow", "claim:<type>=<value>")]
    [TestCase("role:", "*", "/topic/x", "allow", "a role name")]
    public void A_bad_rule_stops_the_start_naming_where_it_is(string? who, string? what, string? destination, string? access, string problem)
    {
        var rules = new[] { Rule("*", "*", "#", "allow"), new StompAuthorizationRule { Who = who, What = what, Destination = destination, Access = access } };
        Assert.That(() => Build(rules), Throws.InvalidOperationException.With.Message.StartsWith("Broker:Authorization:Rules:1: ").And.Message.Contains(problem));
    }

    [Test]
    public void A_policy_rule_needs_aspnet_authorization()
    {
        Assert.That(() => Build([Rule("policy:ops", "*", "#", "allow")]),
            Throws.InvalidOperationException.With.Message.Contains("AddAuthorization"));
    }

    [Test]
    public void Authorizers_are_asked_first_and_the_rules_decide_what_they_abstain_on()
    {
        var authorizer = new ListAuthorizer(context => context.Destination switch
        {
            "/topic/a" => StompAuthorizationResult.Allow,
            "/topic/b" => StompAuthorizationResult.Deny("no b"),
            _ => StompAuthorizationResult.Abstain,
        });
        var withRules = Build([Rule("*", "*", "/topic/b", "allow"), Rule("*", "*", "/topic/c", "allow")], [authorizer]);
        Assert.That(Allowed(withRules, "guest", StompOperation.Send, "/topic/a"), Is.True, "allowed by code, though no rule matches");
        Assert.That(Allowed(withRules, "guest", StompOperation.Send, "/topic/b"), Is.False, "denied by code, though a rule allows");
        Assert.That(Allowed(withRules, "guest", StompOperation.Send, "/topic/c"), Is.True, "abstained: the rule allows");
        Assert.That(Allowed(withRules, "guest", StompOperation.Send, "/topic/d"), Is.False, "abstained: no rule matches");

        var alone = Build([], [authorizer]);
        Assert.That(alone.IsEnabled, Is.True);
        Assert.That(Allowed(alone, "guest", StompOperation.Send, "/topic/d"), Is.True, "abstained and no rules: allowed");
        Assert.That(authorizer.Contexts.Exists(c => c.Login == "guest" && c.User.Identity?.Name == "guest" && !c.IsPattern), Is.True, "the principal is built from the login");
    }

    [Test]
    public void A_session_remembers_a_bounded_number_of_decisions()
    {
        var authorizer = new ListAuthorizer(_ => StompAuthorizationResult.Allow);
        var grants = Build([], [authorizer]).CreateGrants("guest", null, null);
        Remembered("/topic/x");
        Remembered("/topic/x");
        Assert.That(authorizer.Contexts, Has.Count.EqualTo(1), "asked once per destination");

        for (var i = 0; i < DestinationAuthorization.MaxCachedDecisions + 1; i++)
        {
            Remembered($"/topic/k{i}");
        }

        var asked = authorizer.Contexts.Count;
        Remembered("/topic/x");
        Assert.That(authorizer.Contexts, Has.Count.EqualTo(asked + 1), "forgotten once more destinations than the limit were decided");

        void Remembered(string destination)
        {
            if (!grants.TryRecall(StompOperation.Send, destination, out _))
            {
                grants.Remember(StompOperation.Send, destination, Allowed(grants, StompOperation.Send, destination));
            }
        }
    }

    // Rules and subscriptions over a small alphabet; every concrete key up to three dot-words.
    private static readonly string[] s_keyWords = ["a", "b", "c", "a/b"];
    private static readonly List<string> s_keys = [.. Keys(3)];

    private static IEnumerable<string> Keys(int words) => words == 1
        ? s_keyWords
        : Keys(words - 1).Concat(from key in Keys(words - 1) where key.Count(c => c == '.') == words - 2 from word in s_keyWords select key + "." + word);

    [FsCheck.NUnit.Property(MaxTest = 400)]
    public Property An_allowed_wildcard_subscription_receives_only_destinations_allowed_on_their_own()
    {
        var ruleWord = Gen.Elements("a", "b", "*", "#");
        var rulePattern = from n in Gen.Choose(1, 3) from words in Gen.ArrayOf(ruleWord, n) from gaps in Gen.ArrayOf(Gen.Elements(".", "/"), n) select
            "/topic/" + string.Concat(words.Select((w, i) => (i == 0 ? "" : gaps[i]) + w));
        var rule = from pattern in rulePattern from access in Gen.Elements("allow", "deny") select Rule("*", "subscribe", pattern, access);
        var rules = from n in Gen.Choose(1, 4) from list in Gen.ArrayOf(rule, n) select list;
        var subscription = from n in Gen.Choose(1, 3) from words in Gen.ArrayOf(Gen.Elements("a", "b", "*", "#"), n) select string.Join('.', words);
        return Prop.ForAll(rules.ToArbitrary(), subscription.ToArbitrary(), (ruleList, key) =>
        {
            var grants = Build(ruleList).CreateGrants("guest", null, null);
            var allowed = Allowed(grants, StompOperation.Subscribe, "/topic/" + key);
            var routing = new TopicPattern(key);
            var leak = allowed ? s_keys.Find(k => routing.Matches(k) && !Allowed(grants, StompOperation.Subscribe, "/topic/" + k)) : null;
            return (leak is null)
                .Label($"/topic/{key} allowed under [{string.Join(", ", ruleList.Select(r => $"{r.Access} {r.Destination}"))}] but receives /topic/{leak}, refused on its own")
                .Classify(allowed, "allowed");
        });
    }

    private sealed class ListAuthorizer(Func<StompAuthorizationContext, StompAuthorizationResult> decide) : IStompAuthorizer
    {
        public List<StompAuthorizationContext> Contexts { get; } = [];

        public ValueTask<StompAuthorizationResult> AuthorizeAsync(StompAuthorizationContext context, CancellationToken cancellationToken)
        {
            Contexts.Add(context);
            return ValueTask.FromResult(decide(context));
        }
    }
}
