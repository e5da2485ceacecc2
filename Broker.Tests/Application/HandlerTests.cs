using System.Collections.Concurrent;
using Broker.Application;
using Broker.Protocol;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace Broker.Tests.Application;

/// <summary>MapStompMessage and MapStompSubscription over real sockets: binding, replies, receipts, failures, concurrency.</summary>
[TestFixture]
public sealed class HandlerTests
{
    private static Task<TestServer> StartAsync(Action<StompBrokerOptions>? configure = null, Action<IServiceCollection>? services = null) =>
        ApplicationTestKit.StartAsync(Map, s =>
        {
            s.AddSingleton<Gates>();
            s.AddSingleton<Counter>();
            services?.Invoke(s);
        }, configure);

    private static void Map(WebApplication app)
    {
        app.MapStompMessage("/orders/{room}/{count}", (string room, int count, Order order, StompMessageContext context) => new
        {
            room,
            count,
            order.Item,
            order.Quantity,
            context.SessionId,
            context.Login,
            Principal = context.Principal.Identity?.Name,
            Authenticated = context.Principal.Identity?.IsAuthenticated,
            Tag = context.GetHeader("x-tag"),
            context.Destination,
            RouteRoom = context.RouteValues["room"],
            context.ReplyDestination,
        });
        app.MapStompMessage("/upper", (string text) => text.ToUpperInvariant());
        app.MapStompMessage("/length", (ReadOnlyMemory<byte> body) => new { body.Length });
        app.MapStompMessage("/count", (Counter counter, CancellationToken cancellationToken) => new { Next = counter.Next(), Cancelled = cancellationToken.IsCancellationRequested });
        app.MapStompMessage("/twice", async (StompMessageContext context) =>
        {
            await context.ReplyAsync(new { First = 1 });
            await context.ReplyAsync("second");
        });
        app.MapStompMessage("/fail", new Func<string>(() => throw new InvalidOperationException("secret detail: connection string=xyz")));
        app.MapStompMessage("/refuse", new Func<string>(() => throw new StompApplicationException("order 42 does not exist")));
        app.MapStompMessage("/gate/{key}", async (string key, Gates gates) =>
        {
            await gates.WaitAsync(key);
            return $"opened {key}";
        });
        app.MapStompMessage("/silent", () => { });
        app.MapStompSubscription("/state/{name}", (string name, StompMessageContext context) => new { name, context.SubscriptionId, Items = new[] { "a", "b" } });
    }

    [Test]
    public async Task Template_values_a_JSON_body_and_the_context_bind_and_the_return_value_comes_back_on_user_queue_replies()
    {
        await using var server = await StartAsync();
        var (alice, connected) = await ApplicationTestKit.ConnectAsync(server);
        await using var _ = alice;
        await alice.SubscribeAndWaitAsync("replies", "/user/queue/replies");

        await alice.SendJsonAsync("/app/orders/lobby/3", """{"item":"tea","quantity":2}""", ("x-tag", "t1"), ("receipt", "r1"));

        var reply = await alice.ExpectMessageAsync("replies");
        await alice.ExpectReceiptAsync("r1");
        var json = reply.Json();
        Assert.Multiple(() =>
        {
            Assert.That(reply["destination"], Is.EqualTo("/user/queue/replies"));
            Assert.That(reply["content-type"], Is.EqualTo("application/json"));
            Assert.That(json.GetProperty("room").GetString(), Is.EqualTo("lobby"));
            Assert.That(json.GetProperty("count").GetInt32(), Is.EqualTo(3));
            Assert.That(json.GetProperty("item").GetString(), Is.EqualTo("tea"));
            Assert.That(json.GetProperty("quantity").GetInt32(), Is.EqualTo(2));
            Assert.That(json.GetProperty("sessionId").GetString(), Is.EqualTo(connected["session"]));
            Assert.That(json.GetProperty("login").GetString(), Is.EqualTo("alice"));
            Assert.That(json.GetProperty("principal").GetString(), Is.EqualTo("alice"));
            Assert.That(json.GetProperty("authenticated").GetBoolean(), Is.True);
            Assert.That(json.GetProperty("tag").GetString(), Is.EqualTo("t1"));
            Assert.That(json.GetProperty("destination").GetString(), Is.EqualTo("/app/orders/lobby/3"));
            Assert.That(json.GetProperty("routeRoom").GetString(), Is.EqualTo("lobby"));
            Assert.That(json.GetProperty("replyDestination").GetString(), Is.EqualTo("/user/queue/replies"));
        });
    }

    [Test]
    public async Task A_string_body_raw_bytes_services_and_the_cancellation_token_bind_and_results_keep_their_kind()
    {
        await using var server = await StartAsync();
        var (alice, _) = await ApplicationTestKit.ConnectAsync(server);
        await using var client = alice;
        await alice.SubscribeAndWaitAsync("replies", "/user/queue/replies");

        await alice.PublishAsync("/app/upper", "héllo", ("content-type", "text/plain"));
        var upper = await alice.ExpectMessageAsync("replies");
        await alice.SendFrameAsync(StompCommand.Send, [("destination", "/app/length")], [0, 1, 2, 255, 0]);
        var length = await alice.ExpectMessageAsync("replies");
        await alice.PublishAsync("/app/count", "");
        await alice.PublishAsync("/app/count", "");
        var first = await alice.ExpectMessageAsync("replies");
        var second = await alice.ExpectMessageAsync("replies");

        Assert.That((upper.BodyText, upper["content-type"]), Is.EqualTo(("HÉLLO", "text/plain;charset=utf-8")));
        Assert.That(length.Json().GetProperty("length").GetInt32(), Is.EqualTo(5));
        Assert.That(new[] { first.Json().GetProperty("next").GetInt32(), second.Json().GetProperty("next").GetInt32() }, Is.EquivalentTo(new[] { 1, 2 }), "one Counter from DI");
        Assert.That(first.Json().GetProperty("cancelled").GetBoolean(), Is.False);
    }

    [Test]
    public async Task A_reply_goes_to_the_senders_reply_to_destination_only_with_its_correlation_id()
    {
        await using var server = await StartAsync();
        var (alice, _) = await ApplicationTestKit.ConnectAsync(server);
        await using var a = alice;
        var (otherAlice, _) = await ApplicationTestKit.ConnectAsync(server);
        await using var o = otherAlice;
        var (bob, _) = await ApplicationTestKit.ConnectAsync(server, "bob");
        await using var b = bob;
        foreach (var client in new[] { alice, otherAlice, bob })
        {
            await client.SubscribeAndWaitAsync("answers", "/user/queue/answers");
            await client.SubscribeAndWaitAsync("replies", "/user/queue/replies");
        }

        await alice.PublishAsync("/app/upper", "x", ("reply-to", "/user/queue/answers"), ("correlation-id", "c-7"), ("receipt", "sent"));

        var reply = await alice.ReceiveAsync();
        await alice.ExpectReceiptAsync("sent");
        Assert.That((reply.Command, reply["subscription"], reply["destination"], reply["correlation-id"], reply.BodyText),
            Is.EqualTo((StompCommand.Message, "answers", "/user/queue/answers", "c-7", "X")));

        // Nobody else got it: the next frame each of them sees is the receipt of a frame sent now.
        foreach (var client in new[] { otherAlice, bob })
        {
            await client.SendFrameAsync(StompCommand.Begin, ("transaction", "t"), ("receipt", "probe"));
            await client.ExpectReceiptAsync("probe");
        }

        await alice.SendFrameAsync(StompCommand.Begin, ("transaction", "t"), ("receipt", "probe"));
        await alice.ExpectReceiptAsync("probe");
    }

    [Test]
    public async Task ReplyAsync_sends_as_many_replies_as_the_handler_wants_and_a_void_handler_none()
    {
        await using var server = await StartAsync();
        var (alice, _) = await ApplicationTestKit.ConnectAsync(server);
        await using var client = alice;
        await alice.SubscribeAndWaitAsync("replies", "/user/queue/replies");

        await alice.PublishAsync("/app/twice", "", ("receipt", "r"));
        var first = await alice.ExpectMessageAsync("replies");
        var second = await alice.ExpectMessageAsync("replies");
        await alice.ExpectReceiptAsync("r");
        await alice.PublishAsync("/app/silent", "", ("receipt", "quiet"));

        Assert.That(first.Json().GetProperty("first").GetInt32(), Is.EqualTo(1));
        Assert.That(second.BodyText, Is.EqualTo("second"));
        await alice.ExpectReceiptAsync("quiet"); // no reply in between
    }

    [Test]
    public async Task Without_a_subscription_to_its_destination_the_reply_is_dropped_and_the_receipt_still_comes()
    {
        await using var server = await StartAsync();
        var (alice, _) = await ApplicationTestKit.ConnectAsync(server);
        await using var client = alice;

        await alice.PublishAsync("/app/upper", "nobody listens", ("receipt", "r1"));
        await alice.ExpectReceiptAsync("r1");
        await alice.SubscribeAndWaitAsync("replies", "/user/queue/replies");
        await alice.PublishAsync("/app/upper", "now", ("receipt", "r2"));

        // The dropped reply did not wait in the session's queue for the subscription: the first reply is the second one.
        Assert.That((await alice.ExpectMessageAsync("replies")).BodyText, Is.EqualTo("NOW"));
        await alice.ExpectReceiptAsync("r2");
    }

    [Test]
    public async Task A_SENDs_receipt_comes_after_its_handler_completed_while_later_frames_are_answered_meanwhile()
    {
        await using var server = await StartAsync();
        var gates = server.Services.GetRequiredService<Gates>();
        var (alice, _) = await ApplicationTestKit.ConnectAsync(server);
        await using var client = alice;
        await alice.SubscribeAndWaitAsync("replies", "/user/queue/replies");

        await alice.PublishAsync("/app/gate/slow", "", ("receipt", "handled"));
        await Eventually.That(() => gates.Entered("slow"), "the handler started");
        await alice.SubscribeAsync("news", "/topic/receipts-after", receipt: "subscribed");

        // Queued after the SEND's, this receipt comes first: the SEND's waits for its handler.
        await alice.ExpectReceiptAsync("subscribed");
        gates.Open("slow");
        Assert.That((await alice.ExpectMessageAsync("replies")).BodyText, Is.EqualTo("opened slow"));
        await alice.ExpectReceiptAsync("handled");
    }

    [Test]
    public async Task A_failing_handler_tells_the_sender_on_user_queue_errors_without_details_and_the_connection_stays_open()
    {
        await using var server = await StartAsync();
        var (alice, _) = await ApplicationTestKit.ConnectAsync(server);
        await using var client = alice;
        await alice.SubscribeAndWaitAsync("errors", "/user/queue/errors");
        await alice.SubscribeAndWaitAsync("replies", "/user/queue/replies");

        await alice.PublishAsync("/app/fail", "", ("receipt", "r1"), ("correlation-id", "c1"));
        var failed = await alice.ExpectMessageAsync("errors");
        await alice.ExpectReceiptAsync("r1");
        await alice.PublishAsync("/app/refuse", "");
        var refused = await alice.ExpectMessageAsync("errors");
        await alice.SendJsonAsync("/app/orders/lobby/1", "{not json");
        var badJson = await alice.ExpectMessageAsync("errors");
        await alice.PublishAsync("/app/orders/lobby/1", """{"item":"tea"}""", ("content-type", "text/csv"));
        var badType = await alice.ExpectMessageAsync("errors");
        await alice.SendJsonAsync("/app/orders/lobby/many", """{"item":"tea","quantity":1}""");
        var badValue = await alice.ExpectMessageAsync("errors");

        Assert.Multiple(() =>
        {
            Assert.That(failed["destination"], Is.EqualTo("/user/queue/errors"));
            Assert.That(failed["correlation-id"], Is.EqualTo("c1"));
            Assert.That(failed["message"], Is.EqualTo("the handler for '/app/fail' failed"));
            Assert.That(failed.Json().GetProperty("error").GetString(), Is.EqualTo("InvalidOperationException"));
            Assert.That(failed.Json().GetProperty("destination").GetString(), Is.EqualTo("/app/fail"));
            Assert.That(failed.BodyText, Does.Not.Contain("secret").And.Not.Contain(" at "), "no exception message, no stack trace");
            Assert.That(refused.Json().GetProperty("message").GetString(), Is.EqualTo("order 42 does not exist"));
            Assert.That(badJson["message"], Is.EqualTo("the body is not valid JSON for 'order'"));
            Assert.That(badType["message"], Does.Contain("content-type application/json").And.Contain("text/csv"));
            Assert.That(badValue["message"], Is.EqualTo("'many' is not a valid count"));
        });

        await alice.PublishAsync("/app/upper", "still here", ("receipt", "alive"));
        Assert.That((await alice.ExpectMessageAsync("replies")).BodyText, Is.EqualTo("STILL HERE"));
        await alice.ExpectReceiptAsync("alive");
    }

    [TestCase("SEND", "/app/nowhere", "no application handler for '/app/nowhere'")]
    [TestCase("SEND", "/app/state/x", "no application handler for '/app/state/x'")]
    [TestCase("SUBSCRIBE", "/app/nowhere", "no application subscription for '/app/nowhere'")]
    [TestCase("SUBSCRIBE", "/app/upper", "no application subscription for '/app/upper'")]
    public async Task An_application_destination_nothing_maps_gets_an_ERROR_naming_it(string command, string destination, string message)
    {
        await using var server = await StartAsync();
        var (alice, _) = await ApplicationTestKit.ConnectAsync(server);
        await using var client = alice;

        if (command == "SEND")
        {
            await alice.PublishAsync(destination, "", ("receipt", "r"));
        }
        else
        {
            await alice.SubscribeAsync("s", destination, receipt: "r");
        }

        var error = await alice.ReceiveAsync();
        Assert.That((error.Command, error["message"], error["receipt-id"]), Is.EqualTo((StompCommand.Error, message, "r")));
        Assert.That(await alice.WaitClosedAsync(), Is.True);
    }

    [TestCase("reply-to", "/topic/everyone", "reply-to '/topic/everyone' must be one of your own user destinations, /user/queue/<name>")]
    [TestCase("reply-to", "/user/bob/queue/x", "reply-to '/user/bob/queue/x' must be one of your own user destinations, /user/queue/<name>")]
    [TestCase("transaction", "t1", "a SEND to application destination '/app/upper' cannot be part of a transaction")]
    public async Task A_SEND_to_a_handler_with_a_foreign_reply_to_or_in_a_transaction_gets_an_ERROR(string header, string value, string message)
    {
        await using var server = await StartAsync();
        var (alice, _) = await ApplicationTestKit.ConnectAsync(server);
        await using var client = alice;
        await alice.SendFrameAsync(StompCommand.Begin, ("transaction", "t1"));

        await alice.PublishAsync("/app/upper", "x", (header, value));

        var error = await alice.ReceiveAsync();
        Assert.That((error.Command, error["message"]), Is.EqualTo((StompCommand.Error, message)));
    }

    [Test]
    public async Task A_SUBSCRIBE_to_a_subscription_mapping_gets_the_handlers_value_once_then_nothing_and_UNSUBSCRIBE_ends_it()
    {
        await using var server = await StartAsync();
        var (alice, _) = await ApplicationTestKit.ConnectAsync(server);
        await using var client = alice;

        await alice.SubscribeAsync("state-1", "/app/state/board", receipt: "subscribed");
        var initial = await alice.ReceiveAsync();
        await alice.ExpectReceiptAsync("subscribed");
        await alice.SendFrameAsync(StompCommand.Unsubscribe, ("id", "state-1"), ("receipt", "unsubscribed"));
        await alice.ExpectReceiptAsync("unsubscribed");
        await alice.SubscribeAsync("state-1", "/app/state/again", receipt: "again"); // the id is free again
        var again = await alice.ExpectMessageAsync("state-1");
        await alice.ExpectReceiptAsync("again");

        Assert.That((initial.Command, initial["subscription"], initial["destination"], initial["content-type"]),
            Is.EqualTo((StompCommand.Message, "state-1", "/app/state/board", "application/json")));
        Assert.That(initial.Json().GetProperty("name").GetString(), Is.EqualTo("board"));
        Assert.That(initial.Json().GetProperty("subscriptionId").GetString(), Is.EqualTo("state-1"));
        Assert.That(initial.Json().GetProperty("items").GetArrayLength(), Is.EqualTo(2));
        Assert.That(again.Json().GetProperty("name").GetString(), Is.EqualTo("again"));
    }

    [Test]
    public async Task A_slow_handler_does_not_stall_the_same_connections_subscriptions_or_its_other_frames()
    {
        await using var server = await StartAsync();
        var gates = server.Services.GetRequiredService<Gates>();
        var (alice, _) = await ApplicationTestKit.ConnectAsync(server);
        await using var a = alice;
        var (bob, _) = await ApplicationTestKit.ConnectAsync(server, "bob");
        await using var b = bob;
        await alice.SubscribeAndWaitAsync("replies", "/user/queue/replies");
        await alice.SubscribeAndWaitAsync("news", "/topic/slow-handler-news");

        await alice.PublishAsync("/app/gate/stuck", "");
        await Eventually.That(() => gates.Entered("stuck"), "the slow handler started");
        await bob.PublishAsync("/topic/slow-handler-news", "from bob");
        var fromBob = await alice.ExpectMessageAsync("news");
        await alice.PublishAsync("/topic/slow-handler-news", "from alice", ("receipt", "own"));
        var own = await alice.ExpectMessageAsync("news");
        await alice.ExpectReceiptAsync("own");

        Assert.That((fromBob.BodyText, own.BodyText), Is.EqualTo(("from bob", "from alice")));
        Assert.That(gates.Completed("stuck"), Is.False, "all of that while the handler still ran");
        gates.Open("stuck");
        Assert.That((await alice.ExpectMessageAsync("replies")).BodyText, Is.EqualTo("opened stuck"));
    }

    [Test]
    public async Task Past_MaxConcurrentHandlersPerSession_the_read_loop_waits_for_a_handler_to_finish()
    {
        await using var server = await StartAsync(services: s => s.Configure<StompApplicationOptions>(o => o.MaxConcurrentHandlersPerSession = 2));
        var gates = server.Services.GetRequiredService<Gates>();
        var (alice, _) = await ApplicationTestKit.ConnectAsync(server);
        await using var client = alice;
        await alice.SubscribeAndWaitAsync("replies", "/user/queue/replies");

        await alice.PublishAsync("/app/gate/one", "");
        await alice.PublishAsync("/app/gate/two", "");
        await alice.PublishAsync("/app/gate/three", "");
        await alice.SubscribeAsync("news", "/topic/back-pressure", receipt: "read");
        await Eventually.That(() => gates.Entered("one") && gates.Entered("two"), "two handlers running");

        Assert.That(await alice.TryReceiveAsync(TimeSpan.FromMilliseconds(300)), Is.Null, "the third SEND holds the read loop: the SUBSCRIBE after it is not read");
        Assert.That(gates.Entered("three"), Is.False);
        gates.Open("one");
        Assert.That((await alice.ExpectMessageAsync("replies")).BodyText, Is.EqualTo("opened one"));
        await alice.ExpectReceiptAsync("read");
        await Eventually.That(() => gates.Entered("three"), "the third handler started once a slot was free");
        gates.Open("two");
        gates.Open("three");
        var rest = new[] { (await alice.ExpectMessageAsync("replies")).BodyText, (await alice.ExpectMessageAsync("replies")).BodyText };
        Assert.That(rest, Is.EquivalentTo(new[] { "opened two", "opened three" }));
    }

    [Test]
    public async Task DISCONNECT_lets_running_handlers_finish_and_their_replies_come_before_its_receipt()
    {
        await using var server = await StartAsync();
        var gates = server.Services.GetRequiredService<Gates>();
        var (alice, _) = await ApplicationTestKit.ConnectAsync(server);
        await using var client = alice;
        await alice.SubscribeAndWaitAsync("replies", "/user/queue/replies");

        await alice.PublishAsync("/app/gate/last", "", ("receipt", "handled"));
        await Eventually.That(() => gates.Entered("last"), "the handler started");
        await alice.SendFrameAsync(StompCommand.Disconnect, ("receipt", "bye"));
        gates.Open("last");

        Assert.That((await alice.ExpectMessageAsync("replies")).BodyText, Is.EqualTo("opened last"));
        await alice.ExpectReceiptAsync("handled");
        await alice.ExpectReceiptAsync("bye");
        Assert.That(await alice.WaitClosedAsync(), Is.True);
    }

    [Test]
    public async Task The_application_prefix_is_configurable_and_then_app_is_no_application_destination()
    {
        await using var server = await TestServer.StartAsync(
            services: s => s.AddStompBroker().ConfigureApplication(o => o.DestinationPrefix = "/rpc/"),
            app: a => a.MapStompMessage("/ping", () => "pong"));
        await using var client = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await client.ConnectAsync();
        await client.SubscribeAndWaitAsync("replies", "/user/queue/replies");

        await client.PublishAsync("/rpc/ping", "");
        Assert.That((await client.ExpectMessageAsync("replies")).BodyText, Is.EqualTo("pong"));
        await client.PublishAsync("/app/ping", "");
        Assert.That((await client.ReceiveAsync())["message"], Is.EqualTo("unknown destination '/app/ping': use /topic/<key> or /queue/<name>"));
    }

    [Test]
    public void Mapping_checks_templates_and_parameters_when_the_app_maps_them()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Services.AddStompBroker();
        builder.Services.AddSingleton<Counter>();
        var app = builder.Build();

        app.MapStompMessage("/a/{id}", (int id) => id);
        Assert.Multiple(() =>
        {
            Assert.That(() => app.MapStompMessage("/a/{other}", (string other) => other), Throws.InvalidOperationException.With.Message.Contains("mapped twice"));
            Assert.That(() => app.MapStompMessage("no-slash", () => 1), Throws.ArgumentException.With.Message.Contains("must start with '/'"));
            Assert.That(() => app.MapStompMessage("/b/{x}{y}", () => 1), Throws.ArgumentException.With.Message.Contains("one {name}"));
            Assert.That(() => app.MapStompMessage("/c/{id}/{id}", () => 1), Throws.ArgumentException.With.Message.Contains("twice"));
            Assert.That(() => app.MapStompMessage("/d", (Order first, Order second) => 1), Throws.ArgumentException.With.Message.Contains("the body already binds to 'first'"));
            Assert.That(() => app.MapStompMessage("/e", (IDisposable thing) => 1), Throws.ArgumentException.With.Message.Contains("parameter 'thing'"));
            Assert.That(() => app.MapStompMessage("/f/{when}", (Order when) => 1), Throws.ArgumentException.With.Message.Contains("IParsable"));
            Assert.That(() => app.MapStompSubscription("/g", (string body) => body), Throws.ArgumentException.With.Message.Contains("a SUBSCRIBE has no body"));
        });
        app.MapStompMessage("/app/full/{id}", (Counter counter, string id) => id); // the prefix may be named; a service is not the body
    }

    /// <summary>Handlers that wait until the test opens their gate.</summary>
    internal sealed class Gates
    {
        private readonly ConcurrentDictionary<string, TaskCompletionSource> _open = new();
        private readonly ConcurrentDictionary<string, bool> _entered = new();
        private readonly ConcurrentDictionary<string, bool> _completed = new();

        public async Task WaitAsync(string key)
        {
            _entered[key] = true;
            await Gate(key).Task;
            _completed[key] = true;
        }

        public void Open(string key) => Gate(key).TrySetResult();

        public bool Entered(string key) => _entered.ContainsKey(key);

        public bool Completed(string key) => _completed.ContainsKey(key);

        private TaskCompletionSource Gate(string key) => _open.GetOrAdd(key, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
    }

    internal sealed class Counter
    {
        private int _value;

        public int Next() => Interlocked.Increment(ref _value);
    }

    internal sealed record Order(string Item, int Quantity);
}
