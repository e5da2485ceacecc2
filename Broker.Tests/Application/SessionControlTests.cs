using Broker.Application;
using Broker.Durability;
using Broker.Protocol;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace Broker.Tests.Application;

/// <summary>IStompSessionControl and Broker:Sessions:MaxPerUser on one node, over real sockets.</summary>
[TestFixture]
public sealed class SessionControlTests
{
    private static IStompSessionControl Control(TestServer server) => server.Services.GetRequiredService<IStompSessionControl>();

    private static Task<TestServer> StartAsync(int maxPerUser = 0, MaxSessionsPerUserPolicy policy = MaxSessionsPerUserPolicy.TerminateOldest) =>
        ApplicationTestKit.StartAsync(services: s => s.Configure<DurableSessionOptions>(o =>
        {
            o.MaxPerUser = maxPerUser;
            o.WhenMaxPerUser = policy;
        }));

    [Test]
    public void Invalid_settings_stop_the_start_with_a_message_naming_them()
    {
        Assert.Multiple(() =>
        {
            Assert.That(async () => await ApplicationTestKit.StartAsync(services: s => s.Configure<DurableSessionOptions>(o => o.MaxPerUser = -1)),
                Throws.InstanceOf<Microsoft.Extensions.Options.OptionsValidationException>().With.Message.Contains("Broker:Sessions:MaxPerUser is -1"));
            Assert.That(async () => await ApplicationTestKit.StartAsync(services: s => s.Configure<StompApplicationOptions>(o => o.DestinationPrefix = "/topic")),
                Throws.InstanceOf<Microsoft.Extensions.Options.OptionsValidationException>().With.Message.Contains("may not be /topic, /queue or /user"));
            Assert.That(async () => await ApplicationTestKit.StartAsync(services: s => s.Configure<StompApplicationOptions>(o => o.MaxConcurrentHandlersPerSession = 0)),
                Throws.InstanceOf<Microsoft.Extensions.Options.OptionsValidationException>().With.Message.Contains("MaxConcurrentHandlersPerSession is 0"));
        });
    }

    [Test]
    public async Task FindByUserAsync_lists_the_users_connected_and_away_sessions()
    {
        await using var server = await StartAsync();
        var (one, first) = await ApplicationTestKit.ConnectAsync(server);
        await using var o = one;
        await one.SubscribeAndWaitAsync("news", "/topic/control-news");
        var (away, second) = await ApplicationTestKit.ConnectAsync(server);
        await away.SubscribeAndWaitAsync("inbox", "/user/queue/inbox");
        await away.DisposeAsync();
        await server.WaitSessionGoneAsync(second["session"]!);
        var (bob, _) = await ApplicationTestKit.ConnectAsync(server, "bob");
        await using var b = bob;

        var sessions = await Control(server).FindByUserAsync("alice");

        Assert.That(sessions.Select(s => (s.Id, s.Connected)), Is.EquivalentTo(new[] { (first["session"]!, true), (second["session"]!, false) }));
        var live = sessions.Single(s => s.Connected);
        Assert.That(live.Subscriptions.Select(s => s.Destination), Is.EqualTo(new[] { "/topic/control-news" }));
        Assert.That(sessions.Single(s => !s.Connected).Subscriptions.Select(s => s.Destination), Is.EqualTo(new[] { "/user/queue/inbox" }));
        Assert.That(sessions.All(s => s.Login == "alice" && s.Durable && s.CreatedAt is not null), Is.True);
        Assert.That((await Control(server).FindAsync(first["session"]!))?.Connected, Is.True);
        Assert.That(await Control(server).FindAsync("0123456789abcdef01234567"), Is.Null);
    }

    [Test]
    public async Task Terminating_a_connected_session_sends_an_ERROR_with_the_reason_closes_it_and_its_token_no_longer_resumes()
    {
        await using var server = await StartAsync();
        var (doomed, connected) = await ApplicationTestKit.ConnectAsync(server);
        await using var d = doomed;
        await doomed.SubscribeAndWaitAsync("inbox", "/user/queue/inbox");
        var (other, _) = await ApplicationTestKit.ConnectAsync(server);
        await using var o = other;

        var ended = await Control(server).TerminateAsync(connected["session"]!, "your account was suspended");

        var error = await doomed.ReceiveAsync();
        Assert.That((ended, error.Command, error["message"]), Is.EqualTo((true, StompCommand.Error, "your account was suspended")));
        Assert.That(await doomed.WaitClosedAsync(), Is.True);
        var (again, resumed) = await ApplicationTestKit.ConnectAsync(server, token: connected["session-token"]);
        await using var a = again;
        Assert.That(resumed["resumed"], Is.EqualTo("false"));
        Assert.That(await server.Services.GetRequiredService<IStompMessenger>().SendToUserAsync("alice", "/queue/inbox", "x"), Is.EqualTo(0),
            "its user destination is not kept for it either");
        await other.SendFrameAsync(StompCommand.Begin, ("transaction", "t"), ("receipt", "alive"));
        await other.ExpectReceiptAsync("alive");
    }

    [Test]
    public async Task Terminating_an_away_session_deletes_it_so_its_token_no_longer_resumes()
    {
        await using var server = await StartAsync();
        var (away, connected) = await ApplicationTestKit.ConnectAsync(server);
        await away.DisposeAsync();
        await server.WaitSessionGoneAsync(connected["session"]!);

        var ended = await Control(server).TerminateAsync(connected["session"]!, "cleanup");
        var unknown = await Control(server).TerminateAsync("0123456789abcdef01234567", "cleanup");
        var (again, resumed) = await ApplicationTestKit.ConnectAsync(server, token: connected["session-token"]);
        await using var a = again;

        Assert.That((ended, unknown, resumed["resumed"]), Is.EqualTo((true, false, "false")));
    }

    [Test]
    public async Task TerminateUserAsync_ends_every_session_of_the_user_and_no_one_elses()
    {
        await using var server = await StartAsync();
        var (one, first) = await ApplicationTestKit.ConnectAsync(server);
        await using var o = one;
        await using var two = (await StompTestClient.ConnectWebSocketAsync(server.WebSocketUri, "v12.stomp")).Client;
        var second = await two.ConnectAsync(login: "alice", passcode: "alice");
        var (away, third) = await ApplicationTestKit.ConnectAsync(server);
        await away.DisposeAsync();
        await server.WaitSessionGoneAsync(third["session"]!);
        var (bob, _) = await ApplicationTestKit.ConnectAsync(server, "bob");
        await using var b = bob;

        var ended = await Control(server).TerminateUserAsync("alice", "signed out everywhere");

        Assert.That(ended, Is.EqualTo(3));
        foreach (var client in new[] { one, two })
        {
            Assert.That((await client.ReceiveAsync())["message"], Is.EqualTo("signed out everywhere"));
            Assert.That(await client.WaitClosedAsync(), Is.True);
        }

        foreach (var token in new[] { first, second, third }.Select(c => c["session-token"]))
        {
            var (again, resumed) = await ApplicationTestKit.ConnectAsync(server, token: token);
            await using var a = again;
            Assert.That(resumed["resumed"], Is.EqualTo("false"));
        }

        Assert.That(await Control(server).FindByUserAsync("bob"), Has.Count.EqualTo(1));
    }

    [Test]
    public async Task Past_MaxPerUser_the_users_oldest_session_is_terminated()
    {
        await using var server = await StartAsync(maxPerUser: 2);
        var (oldest, first) = await ApplicationTestKit.ConnectAsync(server);
        await using var o = oldest;
        var (middle, second) = await ApplicationTestKit.ConnectAsync(server);
        await using var m = middle;
        var (bob, _) = await ApplicationTestKit.ConnectAsync(server, "bob");
        await using var b = bob;

        // Resuming a session that is still connected takes it over: it does not count twice.
        var (takeover, taken) = await ApplicationTestKit.ConnectAsync(server, token: second["session-token"]);
        await using var t = takeover;
        Assert.That((await middle.ReceiveAsync())["message"], Is.EqualTo("session resumed on another connection"));
        Assert.That(oldest.TryTake(), Is.Null);

        var (newest, _) = await ApplicationTestKit.ConnectAsync(server);
        await using var n = newest;

        var error = await oldest.ReceiveAsync();
        Assert.That((error.Command, error["message"]), Is.EqualTo((StompCommand.Error, "session ended: 'alice' opened a newer session past max-sessions-per-user (2)")));
        Assert.That(await oldest.WaitClosedAsync(), Is.True);
        Assert.That(taken["resumed"], Is.EqualTo("true"));
        foreach (var client in new[] { takeover, newest, bob })
        {
            await client.SendFrameAsync(StompCommand.Begin, ("transaction", "t"), ("receipt", "alive"));
            await client.ExpectReceiptAsync("alive");
        }

        await server.WaitSessionGoneAsync(first["session"]!);
        Assert.That((await Control(server).FindByUserAsync("alice")).Count, Is.EqualTo(2));
    }

    [Test]
    public async Task Past_MaxPerUser_with_RefuseNew_the_new_CONNECT_gets_an_ERROR_naming_the_limit()
    {
        await using var server = await StartAsync(maxPerUser: 2, MaxSessionsPerUserPolicy.RefuseNew);
        var (one, _) = await ApplicationTestKit.ConnectAsync(server);
        await using var o = one;
        var (two, _) = await ApplicationTestKit.ConnectAsync(server);
        await using var t = two;
        await using var anonymous = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await using var anonymous2 = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await using var anonymous3 = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        foreach (var client in new[] { anonymous, anonymous2, anonymous3 })
        {
            Assert.That((await client.ConnectAsync()).Command, Is.EqualTo(StompCommand.Connected), "anonymous sessions have no user to count");
        }

        await using var third = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        var refused = await third.ConnectAsync(login: "alice", passcode: "alice");

        Assert.That((refused.Command, refused["message"]), Is.EqualTo((StompCommand.Error, "limit exceeded: max-sessions-per-user (3 > 2)")));
        Assert.That(await third.WaitClosedAsync(), Is.True);
        foreach (var client in new[] { one, two })
        {
            await client.SendFrameAsync(StompCommand.Begin, ("transaction", "t"), ("receipt", "alive"));
            await client.ExpectReceiptAsync("alive");
        }
    }
}
