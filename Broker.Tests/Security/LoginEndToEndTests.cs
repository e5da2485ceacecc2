using Broker.Protocol;
using Broker.Security;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using NUnit.Framework;

namespace Broker.Tests.Security;

/// <summary>Hashed passcodes and login throttling, over real TCP sockets against the embedded server.</summary>
[TestFixture]
public sealed class LoginEndToEndTests
{
    private const string AlicePasscode = "alice-passcode-7f3e";
    private const string BobPasscode = "bob-plain-passcode-91c2";

    private static Task<TestServer> StartAsync(Action<StompBrokerOptions>? configure = null, CapturedLogs? logs = null) =>
        TestServer.StartAsync(o =>
        {
            o.Users["alice"] = PasscodeHasher.Hash(AlicePasscode, PasscodeHasher.MinIterations);
            o.Users["bob"] = BobPasscode;
            o.LoginThrottling.BaseDelay = TimeSpan.FromMilliseconds(1);
            o.LoginThrottling.MaxDelay = TimeSpan.FromMilliseconds(5);
            configure?.Invoke(o);
        }, services: s => logs?.AddTo(s));

    private static async Task<ReceivedFrame> ConnectAsync(TestServer server, string login, string passcode)
    {
        await using var client = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        var answer = await client.ConnectAsync(login: login, passcode: passcode);
        if (answer.Command == StompCommand.Error)
        {
            Assert.That(await client.WaitClosedAsync(), Is.True, "an ERROR closes the connection");
        }

        return answer;
    }

    [Test]
    public async Task A_hashed_passcode_logs_in_and_a_wrong_one_gets_an_error()
    {
        await using var server = await StartAsync();

        var connected = await ConnectAsync(server, "alice", AlicePasscode);
        Assert.That(connected.Command, Is.EqualTo(StompCommand.Connected));
        Assert.That(connected["user-name"], Is.EqualTo("alice"));

        var refused = await ConnectAsync(server, "alice", "not-the-passcode");
        Assert.That(refused.Command, Is.EqualTo(StompCommand.Error));
        Assert.That(refused["message"], Is.EqualTo("authentication failed: bad login or passcode"));

        var hash = server.Services.GetRequiredService<IOptions<StompBrokerOptions>>().Value.Users["alice"];
        Assert.That((await ConnectAsync(server, "alice", hash)).Command, Is.EqualTo(StompCommand.Error), "the stored hash is not a passcode");
        Assert.That((await ConnectAsync(server, "bob", BobPasscode)).Command, Is.EqualTo(StompCommand.Connected), "plain passcodes still work");
    }

    [Test]
    public async Task Repeated_failures_for_a_login_are_delayed_then_refused_unchecked()
    {
        await using var server = await StartAsync(o =>
        {
            o.LoginThrottling.FreeAttempts = 1;
            o.LoginThrottling.MaxFailuresPerLogin = 3;
        });
        using var counters = new BrokerMeter(server.Services);

        var answers = new List<string?>();
        for (var i = 0; i < 6; i++)
        {
            answers.Add((await ConnectAsync(server, "alice", $"guess-{i}"))["message"]);
        }

        Assert.That(answers, Is.EqualTo(new[]
        {
            "authentication failed: bad login or passcode", "authentication failed: bad login or passcode", "authentication failed: bad login or passcode",
            ThrottlingAuthenticator.RefusedMessage, ThrottlingAuthenticator.RefusedMessage, ThrottlingAuthenticator.RefusedMessage,
        }));
        Assert.That(counters["broker.auth.failures"], Is.EqualTo(3), "three passcodes were checked");
        Assert.That(counters["broker.auth.throttled{action=refused}"], Is.EqualTo(3), "three were refused without a check");
        Assert.That(counters["broker.auth.throttled{action=delayed}"], Is.EqualTo(2), "after the free attempt, each checked one waited");

        Assert.That((await ConnectAsync(server, "alice", AlicePasscode))["message"], Is.EqualTo(ThrottlingAuthenticator.RefusedMessage),
            "locked: not even the right passcode is checked");
        Assert.That((await ConnectAsync(server, "bob", BobPasscode)).Command, Is.EqualTo(StompCommand.Connected), "another login from the same address is fine");
    }

    [Test]
    public async Task A_burst_of_wrong_passcodes_from_one_address_checks_no_more_than_its_limit()
    {
        await using var server = await StartAsync(o =>
        {
            o.LoginThrottling.FreeAttempts = 100;
            o.LoginThrottling.MaxFailuresPerAddress = 10;
        });
        using var counters = new BrokerMeter(server.Services);

        // As the issue found it: many CONNECTs at once, each with another login.
        var answers = await Task.WhenAll(Enumerable.Range(0, 60).Select(i => ConnectAsync(server, $"user{i}", "guess")));

        Assert.That(answers.Count(a => a["message"] == "authentication failed: bad login or passcode"), Is.EqualTo(10));
        Assert.That(answers.Count(a => a["message"] == ThrottlingAuthenticator.RefusedMessage), Is.EqualTo(50));
        Assert.That(counters["broker.auth.failures"], Is.EqualTo(10));
        Assert.That(counters["broker.auth.throttled{action=refused}"], Is.EqualTo(50));
    }

    [Test]
    public async Task Many_right_logins_of_one_user_at_once_all_connect_with_the_default_throttling()
    {
        // As the load tool does it: 64 connections of one user from one address at once, with the default limits.
        // Hash checks one at a time, so the attempts overlap; counted as failures while in flight, they locked the login out.
        await using var server = await TestServer.StartAsync(o =>
        {
            o.Users["guest"] = PasscodeHasher.Hash(AlicePasscode, PasscodeHasher.MinIterations);
            o.LoginThrottling.MaxConcurrentPasscodeChecks = 1;
        });
        using var counters = new BrokerMeter(server.Services);

        var answers = await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => ConnectAsync(server, "guest", AlicePasscode)));

        Assert.That(answers.Select(a => a["message"]).Where(m => m is not null), Is.Empty, "no login refused");
        Assert.That(answers.Count(a => a.Command == StompCommand.Connected), Is.EqualTo(64));
        Assert.That(counters["broker.auth.failures"], Is.Zero);
        Assert.That(counters["broker.auth.throttled{action=delayed}"] + counters["broker.auth.throttled{action=refused}"], Is.Zero, "none delayed or refused");
    }

    [Test]
    public async Task Nothing_secret_reaches_the_log()
    {
        var logs = new CapturedLogs();
        string? token;
        await using (var server = await StartAsync(o => o.LoginThrottling.MaxFailuresPerLogin = 2, logs))
        {
            await using var client = await StompTestClient.ConnectTcpAsync(server.TcpPort);
            var connected = await client.ConnectAsync(login: "alice", passcode: AlicePasscode);
            token = connected["session-token"];
            await client.SubscribeAndWaitAsync("s", "/topic/logged");
            await client.PublishAsync("/topic/logged", "hello");
            await client.ReceiveAsync();
            await ConnectAsync(server, "alice", "wrong-guess-5c1a");
            await ConnectAsync(server, "alice", "wrong-guess-5c1b");
            await ConnectAsync(server, "alice", "wrong-guess-5c1c");
            await ConnectAsync(server, "bob", BobPasscode);
        }

        var count = logs.Entries.Count; // read after the server stopped: every entry is in
        Assert.That(token, Is.Not.Null);
        Assert.That(logs.Entries, Has.Some.Contains("plain text").And.Some.Contains("(bob, guest)"), "the plain-passcode warning names the login");
        Assert.That(logs.Entries, Has.Some.Contains("authentication failed for login 'alice'"), "failures are logged, by login");
        Assert.That(logs.Entries, Has.Some.Contains("refused for"), "the lockout is logged");
        foreach (var secret in new[] { AlicePasscode, BobPasscode, "wrong-guess-5c1", token!, "pbkdf2-sha256$" })
        {
            Assert.That(logs.Entries.Where(e => e.Contains(secret, StringComparison.Ordinal)), Is.Empty, $"'{secret}' in the log ({count} entries)");
        }
    }

    [Test]
    public void A_connect_request_prints_without_its_passcode()
    {
        var request = new Broker.Sessions.StompConnectRequest("alice", "s3cr3t", "localhost", null, null);
        Assert.That(request.ToString(), Does.Contain("alice").And.Not.Contain("s3cr3t"));
    }
}
