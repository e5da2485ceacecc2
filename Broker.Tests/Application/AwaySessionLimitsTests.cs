using Broker.Application;
using Broker.Durability;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace Broker.Tests.Application;

/// <summary>
/// The away-session limits over real sockets: <c>max-away-sessions-per-user</c> ends the owner's oldest dropped session
/// for good (its token no longer resumes, other owners' sessions are untouched); <c>max-away-sessions</c> only stops
/// tracking the oldest (its token still resumes, it is still found through the store).
/// </summary>
[TestFixture]
public sealed class AwaySessionLimitsTests
{
    [Test]
    public async Task Past_MaxAwayPerUser_the_users_oldest_dropped_session_no_longer_resumes_and_other_users_keep_theirs()
    {
        await using var server = await StartAsync(maxAway: 0, maxAwayPerUser: 2, users: true);
        using var meter = new BrokerMeter(server.Services);
        var bob = await DropAsync(server, "bob");
        var alice1 = await DropAsync(server, "alice");
        var alice2 = await DropAsync(server, "alice");
        var before = meter["broker.limits.exceeded{limit=max-away-sessions-per-user}"];

        var alice3 = await DropAsync(server, "alice");

        Assert.That(before, Is.Zero);
        await Eventually.That(() => meter["broker.limits.exceeded{limit=max-away-sessions-per-user}"] >= 1, "the limit counted");
        Assert.That(meter["broker.limits.exceeded{limit=max-away-sessions-per-user}"], Is.EqualTo(1));
        Assert.That(meter.Observe().Value("broker.sessions.away"), Is.EqualTo(3), "bob's and alice's two newest");
        Assert.That(await ResumedAsync(server, "alice", alice1), Is.EqualTo("false"), "the oldest of alice's ended for good");
        foreach (var (login, token) in new[] { ("alice", alice2), ("alice", alice3), ("bob", bob) })
        {
            Assert.That(await ResumedAsync(server, login, token), Is.EqualTo("true"), $"{login}'s {token}");
        }
    }

    [Test]
    public async Task Past_MaxAwayPerUser_an_anonymous_clients_oldest_dropped_session_from_its_address_no_longer_resumes()
    {
        await using var server = await StartAsync(maxAway: 0, maxAwayPerUser: 1, users: false);
        using var meter = new BrokerMeter(server.Services);
        var first = await DropAsync(server, null);

        var second = await DropAsync(server, null);

        await Eventually.That(() => meter["broker.limits.exceeded{limit=max-away-sessions-per-user}"] >= 1, "the limit counted");
        Assert.That(meter["broker.limits.exceeded{limit=max-away-sessions-per-user}"], Is.EqualTo(1));
        Assert.That(await ResumedAsync(server, null, first), Is.EqualTo("false"));
        Assert.That(await ResumedAsync(server, null, second), Is.EqualTo("true"));
    }

    [Test]
    public async Task Past_MaxAway_the_oldest_dropped_session_is_no_longer_tracked_but_still_found_and_resumes()
    {
        await using var server = await StartAsync(maxAway: 2, maxAwayPerUser: 0, users: true);
        using var meter = new BrokerMeter(server.Services);
        var oldest = await DropAsync(server, "alice");
        await DropAsync(server, "bob");
        var before = meter["broker.limits.exceeded{limit=max-away-sessions}"];

        await DropAsync(server, "bob");

        Assert.That(before, Is.Zero);
        await Eventually.That(() => meter["broker.limits.exceeded{limit=max-away-sessions}"] >= 1, "the limit counted");
        Assert.That(meter["broker.limits.exceeded{limit=max-away-sessions}"], Is.EqualTo(1));
        var control = server.Services.GetRequiredService<IStompSessionControl>();
        var listed = await control.ListAsync(10);
        Assert.That((listed.Total, listed.Sessions.Any(s => s.Id == oldest.Id)), Is.EqualTo((2, false)), "no longer tracked here");
        await server.Services.GetRequiredService<SessionPersistence>().FlushAsync(TimeSpan.FromSeconds(5));
        var found = await control.FindAsync(oldest.Id);
        Assert.That((found?.Id, found?.Login, found?.Connected), Is.EqualTo((oldest.Id, "alice", false)), "found through the store");
        Assert.That(await ResumedAsync(server, "alice", oldest), Is.EqualTo("true"), "its record was kept");
    }

    private static Task<TestServer> StartAsync(int maxAway, int maxAwayPerUser, bool users) => TestServer.StartAsync(
        o =>
        {
            if (users)
            {
                o.Users["alice"] = "alice";
                o.Users["bob"] = "bob";
            }
        },
        services => services.Configure<DurableSessionOptions>(o =>
        {
            o.MaxAway = maxAway;
            o.MaxAwayPerUser = maxAwayPerUser;
        }));

    // Connects a durable session, subscribes, drops the connection and waits until the server let it go.
    private static async Task<Dropped> DropAsync(TestServer server, string? login)
    {
        var client = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        var connected = await client.ConnectAsync(login: login, passcode: login);
        Assert.That(connected["session-token"], Is.Not.Null, connected.ToString());
        await client.SubscribeAndWaitAsync("s", "/topic/away-limits");
        await client.DisposeAsync();
        await server.WaitSessionGoneAsync(connected["session"]!);
        var away = server.Services.GetRequiredService<AwaySessions>();
        await Eventually.That(() => away.Find(connected["session"]!) is not null, "the dropped session recorded as away");
        return new Dropped(connected["session"]!, connected["session-token"]!);
    }

    private static async Task<string?> ResumedAsync(TestServer server, string? login, Dropped dropped)
    {
        await using var client = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        var connected = await client.ConnectAsync(login: login, passcode: login, sessionToken: dropped.Token);

        // Ended for good, so that this check leaves no away session of its own behind.
        await client.SendFrameAsync(Broker.Protocol.StompCommand.Disconnect, ("receipt", "bye"));
        await client.ExpectReceiptAsync("bye");
        return connected["resumed"];
    }

    private sealed record Dropped(string Id, string Token);
}
