using Broker.Application;
using Broker.Durability;
using Broker.Protocol;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace Broker.Tests.Application;

/// <summary>IStompSessionObserver events over real sockets: once each, with the right reasons, resume and expiry included.</summary>
[TestFixture]
public sealed class SessionEventTests
{
    private static async Task<(TestServer Server, RecordingObserver Events)> StartAsync(Action<IServiceCollection>? services = null)
    {
        var events = new RecordingObserver();
        var server = await ApplicationTestKit.StartAsync(services: s =>
        {
            s.AddSingleton<IStompSessionObserver>(events);
            services?.Invoke(s);
        });
        return (server, events);
    }

    [Test]
    public async Task A_session_that_subscribes_unsubscribes_and_disconnects_is_announced_once_for_each()
    {
        var (server, events) = await StartAsync();
        await using var _ = server;
        var (alice, connected) = await ApplicationTestKit.ConnectAsync(server);
        var id = connected["session"]!;

        await alice.SubscribeAndWaitAsync("s1", "/topic/events");
        await alice.SendFrameAsync(StompCommand.Unsubscribe, ("id", "s1"), ("receipt", "u"));
        await alice.ExpectReceiptAsync("u");
        await alice.SendFrameAsync(StompCommand.Disconnect, ("receipt", "bye"));
        await alice.ExpectReceiptAsync("bye");
        await alice.DisposeAsync();
        await server.WaitSessionGoneAsync(id);

        Assert.That(await events.NextAsync(), Is.EqualTo($"connected {id} alice"));
        Assert.That(await events.NextAsync(), Is.EqualTo($"subscribed {id} s1 /topic/events"));
        Assert.That(await events.NextAsync(), Is.EqualTo($"unsubscribed {id} s1 /topic/events"));
        Assert.That(await events.NextAsync(), Is.EqualTo($"disconnected {id} ClientDisconnect"));
        Assert.That(events.All, Has.Count.EqualTo(4), "nothing twice");
        var connectedInfo = events.Sessions.First();
        Assert.That((connectedInfo.Id, connectedInfo.Login, connectedInfo.Connected, connectedInfo.Durable, connectedInfo.Node), Is.EqualTo((id, "alice", true, true, server.Services.GetRequiredService<Broker.Sessions.StompSessionServices>().NodeId)));
        Assert.That(events.Sessions.Last().Connected, Is.False);
    }

    [Test]
    public async Task Disconnected_says_why_dropped_error_closed_by_the_server_and_server_shutdown()
    {
        var (server, events) = await StartAsync();
        var (dropped, d) = await ApplicationTestKit.ConnectAsync(server);
        await dropped.DisposeAsync();
        Assert.That(await events.NextStartingWithAsync("disconnected"), Is.EqualTo($"disconnected {d["session"]} Dropped"));

        var (broken, b) = await ApplicationTestKit.ConnectAsync(server);
        await using var _ = broken;
        await broken.SendFrameAsync(StompCommand.Subscribe, ("id", "no-destination"));
        Assert.That((await broken.ReceiveAsync()).Command, Is.EqualTo(StompCommand.Error));
        Assert.That(await events.NextStartingWithAsync("disconnected"), Is.EqualTo($"disconnected {b["session"]} Error"));

        var (ended, e) = await ApplicationTestKit.ConnectAsync(server);
        await using var __ = ended;
        await server.Services.GetRequiredService<IStompSessionControl>().TerminateAsync(e["session"]!, "maintenance");
        Assert.That(await events.NextStartingWithAsync("disconnected"), Is.EqualTo($"disconnected {e["session"]} ClosedByServer"));

        var (last, l) = await ApplicationTestKit.ConnectAsync(server);
        await using var ___ = last;
        await server.DisposeAsync();
        Assert.That(await events.NextStartingWithAsync("disconnected"), Is.EqualTo($"disconnected {l["session"]} ServerShutdown"));
    }

    [Test]
    public async Task A_resume_is_announced_with_recovered_and_a_take_over_ends_the_old_connection_as_TakenOver()
    {
        var (server, events) = await StartAsync();
        await using var _ = server;
        var (first, connected) = await ApplicationTestKit.ConnectAsync(server);
        var id = connected["session"]!;
        await first.SubscribeAndWaitAsync("s", "/topic/resume-events");
        await first.DisposeAsync();
        await server.WaitSessionGoneAsync(id);

        var (second, again) = await ApplicationTestKit.ConnectAsync(server, token: connected["session-token"]);
        await using var s = second;
        var (third, taken) = await ApplicationTestKit.ConnectAsync(server, token: connected["session-token"]);
        await using var t = third;

        Assert.That((again["resumed"], taken["resumed"]), Is.EqualTo(("true", "true")));
        Assert.That(await events.NextAsync(), Is.EqualTo($"connected {id} alice"));
        Assert.That(await events.NextAsync(), Is.EqualTo($"subscribed {id} s /topic/resume-events"));
        Assert.That(await events.NextAsync(), Is.EqualTo($"disconnected {id} Dropped"));
        Assert.That(await events.NextAsync(), Is.EqualTo($"resumed {id} recovered=True"));
        Assert.That(await events.NextAsync(), Is.EqualTo($"disconnected {id} TakenOver"));
        Assert.That(await events.NextAsync(), Is.EqualTo($"resumed {id} recovered=True"));
        Assert.That(events.Sessions.Last().Subscriptions.Select(x => (x.Id, x.Destination)), Is.EqualTo(new[] { ("s", "/topic/resume-events") }), "the resumed session's subscriptions");
    }

    [Test]
    public async Task A_dropped_durable_session_expires_once_when_its_TTL_passes_and_its_token_no_longer_resumes()
    {
        var time = new FakeTimeProvider();
        var (server, events) = await StartAsync(s =>
        {
            s.AddSingleton<TimeProvider>(time);
            s.AddStompBroker().AddInMemorySessionStore(o => o.Ttl = TimeSpan.FromMinutes(5));
            s.Configure<DurableSessionOptions>(o =>
            {
                o.Ttl = TimeSpan.FromMinutes(5);
                o.CleanupInterval = TimeSpan.FromMinutes(1);
            });
        });
        await using var _ = server;
        var (away, connected) = await ApplicationTestKit.ConnectAsync(server);
        var id = connected["session"]!;
        var (stays, _) = await ApplicationTestKit.ConnectAsync(server, "bob");
        await using var s = stays;
        await away.DisposeAsync();
        Assert.That(await events.NextStartingWithAsync($"disconnected {id}"), Is.EqualTo($"disconnected {id} Dropped"));
        await server.Services.GetRequiredService<SessionPersistence>().FlushAsync(TimeSpan.FromSeconds(5));

        time.Advance(TimeSpan.FromMinutes(4));
        var (resumedInTime, early) = await ApplicationTestKit.ConnectAsync(server, token: connected["session-token"]);
        Assert.That(early["resumed"], Is.EqualTo("true"), "within its TTL it resumes");
        await resumedInTime.DisposeAsync();
        Assert.That(await events.NextStartingWithAsync($"disconnected {id}"), Is.EqualTo($"disconnected {id} Dropped"));
        await server.Services.GetRequiredService<SessionPersistence>().FlushAsync(TimeSpan.FromSeconds(5));

        for (var minute = 0; minute < 7; minute++)
        {
            time.Advance(TimeSpan.FromMinutes(1));
        }

        Assert.That(await events.NextStartingWithAsync("expired"), Is.EqualTo($"expired {id}"));
        var (fresh, late) = await ApplicationTestKit.ConnectAsync(server, token: connected["session-token"]);
        await using var f = fresh;
        for (var minute = 0; minute < 7; minute++)
        {
            time.Advance(TimeSpan.FromMinutes(1));
        }

        Assert.That(late["resumed"], Is.EqualTo("false"));
        Assert.That(await events.NextStartingWithAsync("connected"), Is.EqualTo($"connected {late["session"]} alice"));
        Assert.That(events.All.Count(e => e.StartsWith("expired", StringComparison.Ordinal)), Is.EqualTo(1), "once; bob, still connected, does not expire");
    }

    [Test]
    public async Task A_client_that_stops_its_heart_beats_is_announced_as_TimedOut()
    {
        var time = new FakeTimeProvider();
        var (server, events) = await StartAsync(s => s.AddSingleton<TimeProvider>(time));
        await using var _ = server;
        await using var client = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        var connected = await client.ConnectAsync(heartbeat: "1000,0", login: "alice", passcode: "alice");

        for (var step = 0; step < 20; step++)
        {
            time.Advance(TimeSpan.FromMilliseconds(250));
        }

        Assert.That(await events.NextStartingWithAsync("disconnected"), Is.EqualTo($"disconnected {connected["session"]} TimedOut"));
    }

    [Test]
    public async Task An_observer_that_throws_is_logged_and_neither_the_session_nor_the_next_observer_notices()
    {
        var events = new RecordingObserver();
        await using var server = await ApplicationTestKit.StartAsync(services: s =>
        {
            s.AddSingleton<IStompSessionObserver, ThrowingObserver>();
            s.AddSingleton<IStompSessionObserver>(events);
        });
        var (alice, connected) = await ApplicationTestKit.ConnectAsync(server);
        await using var _ = alice;

        await alice.SubscribeAndWaitAsync("s", "/topic/throwing-observer");
        await alice.PublishAsync("/topic/throwing-observer", "still works");

        Assert.That((await alice.ExpectMessageAsync("s")).BodyText, Is.EqualTo("still works"));
        Assert.That(await events.NextAsync(), Is.EqualTo($"connected {connected["session"]} alice"));
        Assert.That(await events.NextAsync(), Is.EqualTo($"subscribed {connected["session"]} s /topic/throwing-observer"));
    }

    private sealed class ThrowingObserver : IStompSessionObserver
    {
        public void OnConnected(StompSessionInfo session) => throw new InvalidOperationException("observer bug");

        public void OnSubscribed(StompSubscriptionEvent subscription) => throw new InvalidOperationException("observer bug");
    }
}
