using Broker.Durability;
using Broker.Protocol;
using Broker.Security;
using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace Broker.Tests.Security;

/// <summary>Per-destination rules over real TCP sockets against the embedded server (the in-process broker).</summary>
[TestFixture]
public sealed class AuthorizationEndToEndTests
{
    private static StompAuthorizationRule Rule(string who, string what, string destination, string access) =>
        new() { Who = who, What = what, Destination = destination, Access = access };

    // The README's examples: an admin-only queue, per-user private topics, read-only public topics, user destinations.
    private static void ExampleRules(StompBrokerOptions o)
    {
        foreach (var login in new[] { "alice", "bob", "admin", "publisher" })
        {
            o.Users[login] = login;
        }

        o.Authorization.Roles["admin"] = ["admin"];
        o.Authorization.Rules.AddRange([
            Rule("role:admin", "*", "/queue/admin.#", "allow"),
            Rule("*", "*", "/queue/admin.#", "deny"),
            Rule("*", "subscribe", "/topic/admin.*", "deny"),
            Rule("*", "subscribe", "/topic/private.{login}", "allow"),
            Rule("*", "subscribe", "/topic/private.*", "deny"),
            Rule("*", "subscribe", "/topic/#", "allow"),
            Rule("publisher", "send", "/topic/public.#", "allow"),
            Rule("*", "subscribe", "/user/queue/#", "allow"),
            Rule("*", "send", "/user/{login}/queue/#", "allow"),
            Rule("role:admin", "send", "/user/*/queue/#", "allow"),
        ]);
    }

    private static async Task<StompTestClient> LoginAsync(TestServer server, string login)
    {
        var client = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        var connected = await client.ConnectAsync(login: login, passcode: login);
        Assert.That(connected.Command, Is.EqualTo(StompCommand.Connected), connected.ToString());
        return client;
    }

    private static async Task ExpectRefusedAsync(StompTestClient client, string message)
    {
        var error = await client.ReceiveAsync();
        Assert.That(error.Command, Is.EqualTo(StompCommand.Error), error.ToString());
        Assert.That(error["message"], Is.EqualTo(message));
        Assert.That(await client.WaitClosedAsync(), Is.True, "an ERROR closes the connection");
    }

    [Test]
    public async Task A_public_topic_is_readable_by_everyone_and_writable_by_its_publisher_only()
    {
        await using var server = await TestServer.StartAsync(ExampleRules);
        using var counters = new CounterReader(server.Services);
        await using var reader = await LoginAsync(server, "alice");
        await reader.SubscribeAndWaitAsync("news", "/topic/public.news");
        await using var publisher = await LoginAsync(server, "publisher");
        await using var other = await LoginAsync(server, "bob");

        await other.PublishAsync("/topic/public.news", "forged");
        await ExpectRefusedAsync(other, "send to /topic/public.news is not permitted");
        await publisher.PublishAsync("/topic/public.news", "real");

        var first = await reader.ReceiveAsync();
        Assert.That(first.BodyText, Is.EqualTo("real"), "the refused SEND delivered nothing (the publisher's later one comes first)");
        Assert.That(counters["broker.authorization.denied{operation=send}"], Is.EqualTo(1));
    }

    [Test]
    public async Task A_send_in_a_transaction_is_refused_when_it_is_sent_not_at_commit()
    {
        await using var server = await TestServer.StartAsync(ExampleRules);
        await using var bob = await LoginAsync(server, "bob");
        await bob.SendFrameAsync(StompCommand.Begin, ("transaction", "tx"));
        await bob.SendFrameAsync(StompCommand.Send, [("destination", "/queue/admin.jobs"), ("transaction", "tx")], "queued"u8.ToArray());
        await ExpectRefusedAsync(bob, "send to /queue/admin.jobs is not permitted");
    }

    [Test]
    public async Task An_admin_only_queue_refuses_everyone_else_with_an_error_naming_it()
    {
        await using var server = await TestServer.StartAsync(ExampleRules);
        await using var bob = await LoginAsync(server, "bob");
        await bob.SubscribeAsync("jobs", "/queue/admin.jobs", receipt: "r1");
        var error = await bob.ReceiveAsync();
        Assert.That((error.Command, error["message"], error["receipt-id"]), Is.EqualTo((StompCommand.Error, "subscribe to /queue/admin.jobs is not permitted", "r1")));

        await using var intruder = await LoginAsync(server, "alice");
        await intruder.PublishAsync("/queue/admin.jobs", "rm -rf");
        await ExpectRefusedAsync(intruder, "send to /queue/admin.jobs is not permitted");

        await using var admin = await LoginAsync(server, "admin");
        await admin.PublishAsync("/queue/admin.jobs", "rotate logs", ("receipt", "sent"));
        await admin.ExpectReceiptAsync("sent");
        await admin.SubscribeAsync("jobs", "/queue/admin.jobs");
        var job = await admin.ReceiveAsync();
        Assert.That(job.BodyText, Is.EqualTo("rotate logs"), "only the admin's job is in the queue");
    }

    [Test]
    public async Task Login_variable_gives_each_user_a_private_topic()
    {
        await using var server = await TestServer.StartAsync(ExampleRules);
        await using var alice = await LoginAsync(server, "alice");
        await alice.SubscribeAndWaitAsync("mine", "/topic/private.alice");
        await using var bob = await LoginAsync(server, "bob");
        await bob.SubscribeAsync("theirs", "/topic/private.alice");
        await ExpectRefusedAsync(bob, "subscribe to /topic/private.alice is not permitted");
    }

    [Test]
    public async Task A_wildcard_subscription_cannot_reach_around_a_deny()
    {
        await using var server = await TestServer.StartAsync(ExampleRules);
        await using var alice = await LoginAsync(server, "alice");
        await alice.SubscribeAndWaitAsync("public", "/topic/public.#");

        await using var greedy = await LoginAsync(server, "bob");
        await greedy.SubscribeAsync("all", "/topic/#");
        await ExpectRefusedAsync(greedy, "subscribe to /topic/# is not permitted");
    }

    [Test]
    public async Task User_destinations_are_authorized_as_written()
    {
        await using var server = await TestServer.StartAsync(ExampleRules);
        await using var alice = await LoginAsync(server, "alice");
        await alice.SubscribeAndWaitAsync("notes", "/user/queue/notes");

        await alice.PublishAsync("/user/alice/queue/notes", "note to self");
        Assert.That((await alice.ReceiveAsync()).BodyText, Is.EqualTo("note to self"), "/user/{login}/queue/# allows her own");

        await using var bob = await LoginAsync(server, "bob");
        await bob.PublishAsync("/user/alice/queue/notes", "spam");
        await ExpectRefusedAsync(bob, "send to /user/alice/queue/notes is not permitted");

        await using var admin = await LoginAsync(server, "admin");
        await admin.PublishAsync("/user/alice/queue/notes", "from the admin", ("receipt", "a"));
        await admin.ExpectReceiptAsync("a");
        Assert.That((await alice.ReceiveAsync()).BodyText, Is.EqualTo("from the admin"), "bob's SEND delivered nothing; the admin's arrives next");
    }

    [Test]
    public async Task The_startup_log_says_whether_rules_apply()
    {
        var open = new CapturedLogs();
        await using (await TestServer.StartAsync(services: open.AddTo))
        {
        }

        var ruled = new CapturedLogs();
        await using (await TestServer.StartAsync(ExampleRules, services: ruled.AddTo))
        {
        }

        Assert.That(open.Entries, Has.Some.Contains("no rules configured").And.Some.Contains("every client may subscribe and send to every destination"));
        Assert.That(ruled.Entries, Has.Some.Contains("Authorization: 10 rule(s)").And.Some.Contains("read at startup"));
    }

    [Test]
    public async Task An_authorizer_from_code_and_an_aspnet_policy_decide_with_the_rules()
    {
        await using var server = await TestServer.StartAsync(
            o =>
            {
                o.Users["olga"] = "olga";
                o.Authorization.Roles["ops"] = ["olga"];
                o.Authorization.Rules.AddRange([
                    Rule("policy:operators", "*", "/queue/ops.#", "allow"),
                    Rule("*", "*", "#", "allow"),
                ]);
            },
            services: s =>
            {
                s.AddAuthorization(a => a.AddPolicy("operators", p => p.RequireRole("ops")));
                s.AddSingleton<IStompAuthorizer, NoSecrets>();
            });

        await using var olga = await LoginAsync(server, "olga");
        await olga.SubscribeAndWaitAsync("ops", "/queue/ops.alerts");
        await olga.SubscribeAndWaitAsync("news", "/topic/news");
        await olga.SubscribeAsync("secret", "/topic/secret.plans");
        await ExpectRefusedAsync(olga, "subscribe to /topic/secret.plans is not permitted");

        await using var guest = await LoginAsync(server, "guest");
        await guest.SubscribeAndWaitAsync("ops", "/queue/ops.alerts"); // the policy fails for guest: the next rule allows everything
    }

    [Test]
    public async Task A_rule_change_takes_a_restart_and_a_resumed_session_loses_what_the_new_rules_refuse()
    {
        var store = new InMemorySessionStore();
        void Shared(IServiceCollection s) => s.AddSingleton(store);

        string token;
        await using (var before = await TestServer.StartAsync(services: Shared))
        {
            await using var client = await StompTestClient.ConnectTcpAsync(before.TcpPort);
            token = (await client.ConnectAsync(login: "guest", passcode: "guest"))["session-token"]!;
            await client.SubscribeAndWaitAsync("open", "/topic/open.news");
            await client.SubscribeAndWaitAsync("closed", "/topic/closed.news");
            await before.Services.GetRequiredService<SessionPersistence>().FlushAsync(TimeSpan.FromSeconds(5));
        }

        var logs = new CapturedLogs();
        await using var after = await TestServer.StartAsync(
            o => o.Authorization.Rules.AddRange([Rule("*", "*", "/topic/open.#", "allow"), Rule("*", "send", "/topic/closed.#", "allow")]),
            services: s =>
            {
                Shared(s);
                logs.AddTo(s);
            });
        await using var resumed = await StompTestClient.ConnectTcpAsync(after.TcpPort);
        var connected = await resumed.ConnectAsync(login: "guest", passcode: "guest", sessionToken: token);
        Assert.That(connected["resumed"], Is.EqualTo("true"));

        await using var publisher = await StompTestClient.ConnectTcpAsync(after.TcpPort);
        await publisher.ConnectAsync();
        await publisher.PublishAsync("/topic/closed.news", "refused now");
        await publisher.PublishAsync("/topic/open.news", "still allowed");
        var first = await resumed.ReceiveAsync();
        Assert.That((first["subscription"], first.BodyText), Is.EqualTo(("open", "still allowed")), "the closed subscription was not restored");
        Assert.That(logs.Entries, Has.Some.Contains("restored subscription to /topic/closed.news dropped"));
    }

    private sealed class NoSecrets : IStompAuthorizer
    {
        public ValueTask<StompAuthorizationResult> AuthorizeAsync(StompAuthorizationContext context, CancellationToken cancellationToken) =>
            ValueTask.FromResult(context.Destination.Contains("secret", StringComparison.Ordinal) ? StompAuthorizationResult.Deny("no secrets") : StompAuthorizationResult.Abstain);
    }
}
