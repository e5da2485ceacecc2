using System.Collections.Concurrent;
using Broker.Application;
using Broker.Protocol;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace Broker.Tests.Application;

/// <summary>IStompInterceptor over real sockets: what it sees, refusals as ERROR frames, headers it adds, its order.</summary>
[TestFixture]
public sealed class InterceptorTests
{
    private static Task<TestServer> StartAsync(params IStompInterceptor[] interceptors) => ApplicationTestKit.StartAsync(
        app => app.MapStompMessage("/whoami", (StompMessageContext context) => new { Stamp = context.GetHeader("x-stamp"), Order = context.Headers.Where(h => h.Key == "x-order").Select(h => h.Value).ToArray() }),
        s =>
        {
            foreach (var interceptor in interceptors)
            {
                s.AddSingleton(interceptor);
            }
        });

    [Test]
    public async Task It_sees_CONNECT_SUBSCRIBE_SEND_and_UNSUBSCRIBE_with_the_sender_and_the_destination()
    {
        var seen = new Interceptor(_ => StompInterceptResult.Continue);
        await using var server = await StartAsync(seen);
        var (alice, connected) = await ApplicationTestKit.ConnectAsync(server);
        await using var _ = alice;

        await alice.SubscribeAndWaitAsync("s", "/topic/intercepted");
        await alice.PublishAsync("/topic/intercepted", "x", ("receipt", "sent"));
        await alice.ExpectMessageAsync("s");
        await alice.ExpectReceiptAsync("sent");
        await alice.SendFrameAsync(StompCommand.Unsubscribe, ("id", "s"), ("receipt", "u"));
        await alice.ExpectReceiptAsync("u");

        Assert.That(seen.Frames.Select(f => (f.Command, f.Destination, f.Login, f.Principal)), Is.EqualTo(new[]
        {
            (StompCommand.Connect, (string?)null, "alice", "alice"),
            (StompCommand.Subscribe, "/topic/intercepted", "alice", "alice"),
            (StompCommand.Send, "/topic/intercepted", "alice", "alice"),
            (StompCommand.Unsubscribe, "/topic/intercepted", "alice", "alice"),
        }));
        Assert.That(seen.Frames[1].SessionId, Is.EqualTo(connected["session"]));
    }

    [TestCase("CONNECT")]
    [TestCase("SUBSCRIBE")]
    [TestCase("SEND")]
    [TestCase("UNSUBSCRIBE")]
    public async Task A_refusal_becomes_an_ERROR_naming_it_and_the_frame_goes_no_further(string command)
    {
        var events = new RecordingObserver();
        var refuse = new Interceptor(f => f.Login == "alice" && f.Command.ToString().Equals(command, StringComparison.OrdinalIgnoreCase)
            ? StompInterceptResult.Reject($"{command} not allowed here")
            : StompInterceptResult.Continue);
        await using var server = await ApplicationTestKit.StartAsync(services: s =>
        {
            s.AddSingleton<IStompInterceptor>(refuse);
            s.AddSingleton<IStompSessionObserver>(events);
        });
        await using var observer = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await using var alice = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        var connected = await alice.ConnectAsync(login: "alice", passcode: "alice");
        if (command == "CONNECT")
        {
            Assert.That((connected.Command, connected["message"]), Is.EqualTo((StompCommand.Error, "CONNECT not allowed here")));
            Assert.That(await alice.WaitClosedAsync(), Is.True);
            await server.Services.GetRequiredService<Broker.Durability.SessionPersistence>().FlushAsync(TimeSpan.FromSeconds(5));
            Assert.That(await server.Services.GetRequiredService<Broker.Durability.IUserRegistry>().GetSessionsAsync("alice"), Is.Empty, "no session was set up");
            Assert.That(events.All, Is.Empty, "a refused CONNECT is never announced");
            return;
        }

        await observer.ConnectAsync(login: "bob", passcode: "bob");
        await observer.SubscribeAndWaitAsync("watch", "/topic/refusals");
        if (command != "SUBSCRIBE")
        {
            await alice.SubscribeAndWaitAsync("s", "/topic/refusals");
        }

        switch (command)
        {
            case "SUBSCRIBE":
                await alice.SubscribeAsync("s", "/topic/refusals", receipt: "r");
                break;
            case "SEND":
                await alice.PublishAsync("/topic/refusals", "must not arrive", ("receipt", "r"));
                break;
            default:
                await alice.SendFrameAsync(StompCommand.Unsubscribe, ("id", "s"), ("receipt", "r"));
                break;
        }

        var error = await alice.ReceiveAsync();
        Assert.That((error.Command, error["message"], error["receipt-id"]), Is.EqualTo((StompCommand.Error, $"{command} not allowed here", "r")));
        Assert.That(await alice.WaitClosedAsync(), Is.True);
        await observer.SendFrameAsync(StompCommand.Begin, ("transaction", "t"), ("receipt", "probe"));
        await observer.ExpectReceiptAsync("probe"); // the refused SEND reached nobody
        var id = connected["session"];
        Assert.That(events.All.Count(e => e == $"subscribed {id} s /topic/refusals"), Is.EqualTo(command == "SUBSCRIBE" ? 0 : 1));
        Assert.That(events.All, Has.None.EqualTo($"unsubscribed {id} s /topic/refusals"));
    }

    [Test]
    public async Task Headers_added_in_order_of_registration_travel_to_the_MESSAGE_and_to_a_handler()
    {
        var stamp = new Interceptor(f =>
        {
            if (f.Command == StompCommand.Send)
            {
                f.AddHeader("x-stamp", "by-" + f.Login);
                f.AddHeader("x-order", "first");
            }

            return StompInterceptResult.Continue;
        });
        var second = new Interceptor(f =>
        {
            if (f.Command == StompCommand.Send)
            {
                // Runs after the first and sees what it added.
                f.AddHeader("x-order", f.GetHeader("x-stamp") is null ? "second-without-stamp" : "second");
            }

            return StompInterceptResult.Continue;
        });
        await using var server = await StartAsync(stamp, second);
        var (alice, _) = await ApplicationTestKit.ConnectAsync(server);
        await using var a = alice;
        var (bob, _) = await ApplicationTestKit.ConnectAsync(server, "bob");
        await using var b = bob;
        await bob.SubscribeAndWaitAsync("s", "/topic/stamped");
        await alice.SubscribeAndWaitAsync("replies", "/user/queue/replies");

        await alice.PublishAsync("/topic/stamped", "hello");
        await alice.PublishAsync("/app/whoami", "");

        var message = await bob.ExpectMessageAsync("s");
        Assert.That(message["x-stamp"], Is.EqualTo("by-alice"));
        Assert.That(message.HeaderList.Where(h => h.Key == "x-order").Select(h => h.Value), Is.EqualTo(new[] { "first", "second" }));
        var handled = (await alice.ExpectMessageAsync("replies")).Json();
        Assert.That(handled.GetProperty("stamp").GetString(), Is.EqualTo("by-alice"));
        Assert.That(handled.GetProperty("order").EnumerateArray().Select(e => e.GetString()), Is.EqualTo(new[] { "first", "second" }));
    }

    [Test]
    public async Task An_interceptor_that_throws_refuses_the_frame_without_telling_why()
    {
        await using var server = await StartAsync(new Interceptor(f => f.Command == StompCommand.Send ? throw new InvalidOperationException("interceptor bug") : StompInterceptResult.Continue));
        var (alice, _) = await ApplicationTestKit.ConnectAsync(server);
        await using var _ = alice;

        await alice.PublishAsync("/topic/x", "x");

        var error = await alice.ReceiveAsync();
        Assert.That((error.Command, error["message"]), Is.EqualTo((StompCommand.Error, "SEND refused: the server could not check it")));
        Assert.That(error.BodyText, Does.Not.Contain("bug"));
    }

    private sealed record Seen(StompCommand Command, string? Destination, string? SessionId, string? Login, string? Principal);

    private sealed class Interceptor(Func<StompInboundFrame, StompInterceptResult> decide) : IStompInterceptor
    {
        private readonly ConcurrentQueue<Seen> _frames = new();

        public List<Seen> Frames => [.. _frames];

        public StompInterceptResult OnInbound(StompInboundFrame frame)
        {
            _frames.Enqueue(new Seen(frame.Command, frame.Destination, frame.SessionId, frame.Login, frame.Principal.Identity?.Name));
            return decide(frame);
        }
    }
}
