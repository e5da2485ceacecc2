using Broker.Durability;
using Broker.Protocol;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace Broker.Tests.Sessions;

/// <summary>Durable sessions over in-memory pipes, with the in-memory store: the wire contract.</summary>
[TestFixture]
public sealed class ResumeTests
{
    private static SessionHarness Durable(Action<StompBrokerOptions>? configure = null) =>
        new(configure, b => b.AddInMemorySessionStore());

    [Test]
    public async Task A_first_connect_gets_a_session_id_and_a_256_bit_token()
    {
        await using var harness = Durable();
        var (_, connected) = await harness.OpenConnectedAsync("1.2", "guest");

        Assert.That(connected["session"], Is.Not.Empty);
        Assert.That(Convert.FromBase64String(Base64(connected["session-token"]!)), Has.Length.EqualTo(32));
        Assert.That(connected["resumed"], Is.EqualTo("false"));
    }

    [Test]
    public async Task Without_a_store_there_is_no_token()
    {
        await using var harness = new SessionHarness();
        var (_, connected) = await harness.OpenConnectedAsync("1.2", "guest");

        Assert.That(connected["session-token"], Is.Null);
    }

    [Test]
    public async Task A_dropped_client_resumes_and_gets_every_missed_message_once_in_order()
    {
        await using var harness = Durable();
        var (first, connected) = await harness.OpenConnectedAsync("1.2", "guest");
        await first.SubscribeAndWaitAsync("prices", "/topic/prices.eur");
        await first.DisposeAsync(); // no DISCONNECT: the connection just drops
        var publisher = await harness.OpenConnectedAsync();
        for (var i = 1; i <= 100; i++)
        {
            await publisher.PublishAsync("/topic/prices.eur", $"m{i}");
        }

        await publisher.PublishAsync("/topic/prices.eur", "m101", ("receipt", "all-sent"));
        await publisher.ExpectReceiptAsync("all-sent");
        var (resumed, again) = await harness.OpenConnectedAsync("1.2", "guest", connected["session-token"]);

        Assert.That(again["resumed"], Is.EqualTo("true"));
        Assert.That(again["recovered"], Is.EqualTo("true"));
        Assert.That(again["session"], Is.EqualTo(connected["session"]));
        for (var i = 1; i <= 101; i++)
        {
            var message = await resumed.ReceiveAsync();
            Assert.That(message.BodyText, Is.EqualTo($"m{i}"));
            Assert.That(message["subscription"], Is.EqualTo("prices"));
        }

        Assert.That(await resumed.TryReceiveAsync(TimeSpan.FromMilliseconds(200)), Is.Null, "nothing twice");
    }

    [Test]
    public async Task Subscribing_and_resuming_during_a_flood_loses_and_repeats_nothing()
    {
        await using var harness = Durable(o => o.HistorySize = 10_000);
        var publisher = await harness.OpenConnectedAsync();

        // The flood waits at its 1,000th message until the subscription is in place, so the subscriber joins in its
        // middle with 2,000 still to come, however slowly this machine runs either side.
        var subscribed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var flood = Task.Run(async () =>
        {
            for (var i = 1; i <= 3000; i++)
            {
                if (i == 1000)
                {
                    await subscribed.Task;
                }

                await publisher.PublishAsync("/topic/flood", i.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }

            await publisher.PublishAsync("/topic/flood", "end", ("receipt", "flooded"));
            await publisher.ExpectReceiptAsync("flooded");
        });
        var (first, connected) = await harness.OpenConnectedAsync("1.2", "guest");
        await first.SubscribeAsync("f", "/topic/flood", receipt: "subscribed");
        var seen = new List<string>();
        while (seen.Count < 200)
        {
            var frame = await first.ReceiveAsync();
            if (frame.Command == StompCommand.Message)
            {
                seen.Add(frame.BodyText);
            }
            else if (frame.Command == StompCommand.Receipt)
            {
                subscribed.TrySetResult();
            }
        }

        await first.DisposeAsync(); // everything the server wrote before the drop is still read by the client
        while (first.TryTake() is { } late)
        {
            seen.Add(late.BodyText);
        }

        await flood;
        var (resumed, again) = await harness.OpenConnectedAsync("1.2", "guest", connected["session-token"]);
        while (seen[^1] != "end")
        {
            seen.Add((await resumed.ReceiveAsync()).BodyText);
        }

        var numbers = seen.Take(seen.Count - 1).Select(int.Parse).ToList();
        var firstBreak = Enumerable.Range(1, numbers.Count - 1).FirstOrDefault(i => numbers[i] != numbers[i - 1] + 1);
        TestContext.Out.WriteLine($"first break at {firstBreak}: {string.Join(",", numbers.Skip(Math.Max(0, firstBreak - 3)).Take(8))}");
        Assert.That(again["recovered"], Is.EqualTo("true"));
        Assert.That(numbers, Is.EqualTo(Enumerable.Range(numbers[0], 3000 - numbers[0] + 1)), "contiguous from the first message seen, none twice");
        Assert.That(await resumed.TryReceiveAsync(TimeSpan.FromMilliseconds(200)), Is.Null);
    }

    [Test]
    public async Task Messages_already_delivered_are_not_replayed()
    {
        await using var harness = Durable();
        var (first, connected) = await harness.OpenConnectedAsync("1.2", "guest");
        await first.SubscribeAndWaitAsync("s", "/topic/seen");
        var publisher = await harness.OpenConnectedAsync();
        for (var i = 1; i <= 5; i++)
        {
            await publisher.PublishAsync("/topic/seen", $"m{i}");
        }

        for (var i = 1; i <= 5; i++)
        {
            Assert.That((await first.ReceiveAsync()).BodyText, Is.EqualTo($"m{i}"));
        }

        await first.DisposeAsync();
        for (var i = 6; i <= 8; i++)
        {
            await publisher.PublishAsync("/topic/seen", $"m{i}");
        }

        var (resumed, _) = await harness.OpenConnectedAsync("1.2", "guest", connected["session-token"]);
        var bodies = new[] { await resumed.ReceiveAsync(), await resumed.ReceiveAsync(), await resumed.ReceiveAsync() }.Select(m => m.BodyText);

        Assert.That(bodies, Is.EqualTo(new[] { "m6", "m7", "m8" }));
        Assert.That(await resumed.TryReceiveAsync(TimeSpan.FromMilliseconds(200)), Is.Null);
    }

    [Test]
    public async Task Re_subscribing_a_restored_id_attaches_without_duplicates()
    {
        await using var harness = Durable();
        var (first, connected) = await harness.OpenConnectedAsync("1.2", "guest");
        await first.SubscribeAndWaitAsync("sub-0", "/topic/chat");
        await first.DisposeAsync();
        var (resumed, _) = await harness.OpenConnectedAsync("1.2", "guest", connected["session-token"]);

        await resumed.SubscribeAndWaitAsync("sub-0", "/topic/chat"); // what a stomp.js app does in onConnect
        var publisher = await harness.OpenConnectedAsync();
        await publisher.PublishAsync("/topic/chat", "once");

        Assert.That((await resumed.ReceiveAsync()).BodyText, Is.EqualTo("once"));
        Assert.That(await resumed.TryReceiveAsync(TimeSpan.FromMilliseconds(200)), Is.Null);
    }

    [Test]
    public async Task Unacknowledged_messages_come_back_on_resume()
    {
        await using var harness = Durable();
        var (first, connected) = await harness.OpenConnectedAsync("1.2", "guest");
        await first.SubscribeAndWaitAsync("q", "/queue/orders", "client-individual");
        await first.SubscribeAndWaitAsync("t", "/topic/ticks", "client");
        var publisher = await harness.OpenConnectedAsync();
        await publisher.PublishAsync("/queue/orders", "order-1");
        await publisher.PublishAsync("/queue/orders", "order-2");
        await publisher.PublishAsync("/topic/ticks", "tick-1");
        await publisher.PublishAsync("/topic/ticks", "tick-2");
        var received = new List<ReceivedFrame>();
        for (var i = 0; i < 4; i++)
        {
            received.Add(await first.ReceiveAsync());
        }

        var order1 = received.Single(m => m.BodyText == "order-1");
        var tick1 = received.Single(m => m.BodyText == "tick-1");
        await first.SendFrameAsync(StompCommand.Ack, ("id", order1["ack"]!));
        await first.SendFrameAsync(StompCommand.Ack, ("id", tick1["ack"]!), ("receipt", "acked"));
        await first.ExpectReceiptAsync("acked");
        await first.DisposeAsync();

        var (resumed, again) = await harness.OpenConnectedAsync("1.2", "guest", connected["session-token"]);
        var redelivered = new[] { await resumed.ReceiveAsync(), await resumed.ReceiveAsync() }.Select(m => m.BodyText);

        Assert.That(again["recovered"], Is.EqualTo("true"));
        Assert.That(redelivered, Is.EquivalentTo(new[] { "order-2", "tick-2" }));
        Assert.That(await resumed.TryReceiveAsync(TimeSpan.FromMilliseconds(200)), Is.Null);
    }

    [Test]
    public async Task Evicted_history_resumes_the_subscriptions_but_says_not_recovered()
    {
        await using var harness = Durable(o => o.HistorySize = 10);
        var (first, connected) = await harness.OpenConnectedAsync("1.2", "guest");
        await first.SubscribeAndWaitAsync("s", "/topic/busy");
        await first.DisposeAsync();
        var publisher = await harness.OpenConnectedAsync();
        for (var i = 0; i < 20; i++)
        {
            await publisher.PublishAsync("/topic/busy", $"m{i}");
        }

        var (resumed, again) = await harness.OpenConnectedAsync("1.2", "guest", connected["session-token"]);
        await publisher.PublishAsync("/topic/busy", "live");

        Assert.That(again["resumed"], Is.EqualTo("true"));
        Assert.That(again["recovered"], Is.EqualTo("false"));
        Assert.That((await resumed.ReceiveAsync()).BodyText, Is.EqualTo("live"));
    }

    [Test]
    public async Task A_token_never_restores_another_users_session()
    {
        await using var harness = Durable();
        var (victim, connected) = await harness.OpenConnectedAsync("1.2", "guest");
        await victim.SubscribeAndWaitAsync("secret", "/topic/private");
        await victim.DisposeAsync();

        var (thief, stolen) = await harness.OpenConnectedAsync("1.2", "mallory", connected["session-token"]);
        var (anonymous, anon) = await harness.OpenConnectedAsync("1.2", null, connected["session-token"]);
        var (guesser, forged) = await harness.OpenConnectedAsync("1.2", "guest", "AAAAforged-token");
        var publisher = await harness.OpenConnectedAsync();
        await publisher.PublishAsync("/topic/private", "for guest only");

        foreach (var (client, frame) in new[] { (thief, stolen), (anonymous, anon), (guesser, forged) })
        {
            Assert.That(frame["resumed"], Is.EqualTo("false"));
            Assert.That(frame["session"], Is.Not.EqualTo(connected["session"]));
            Assert.That(await client.TryReceiveAsync(TimeSpan.FromMilliseconds(150)), Is.Null);
        }

        var (owner, back) = await harness.OpenConnectedAsync("1.2", "guest", connected["session-token"]);
        Assert.That(back["resumed"], Is.EqualTo("true"), "the failed attempts did not destroy the session");
    }

    [Test]
    public async Task DISCONNECT_ends_the_session_for_good()
    {
        await using var harness = Durable();
        var (first, connected) = await harness.OpenConnectedAsync("1.2", "guest");
        await first.SubscribeAndWaitAsync("s", "/topic/bye");
        await first.SendFrameAsync(StompCommand.Disconnect, ("receipt", "bye"));
        await first.ExpectReceiptAsync("bye");
        await first.WaitClosedAsync();

        var (_, again) = await harness.OpenConnectedAsync("1.2", "guest", connected["session-token"]);

        Assert.That(again["resumed"], Is.EqualTo("false"));
    }

    [Test]
    public async Task An_expired_session_is_not_resumed()
    {
        var time = new ManualTime();
        await using var harness = new SessionHarness(broker: b =>
        {
            b.AddInMemorySessionStore(o => o.Ttl = TimeSpan.FromMinutes(5));
            b.Services.AddSingleton<TimeProvider>(time);
        });
        var (first, connected) = await harness.OpenConnectedAsync("1.2", "guest");
        await first.DisposeAsync();
        await harness.Services.GetRequiredService<SessionPersistence>().FlushAsync(TimeSpan.FromSeconds(5));

        time.Advance(TimeSpan.FromMinutes(6));
        var (_, again) = await harness.OpenConnectedAsync("1.2", "guest", connected["session-token"]);

        Assert.That(again["resumed"], Is.EqualTo("false"));
    }

    [Test]
    public async Task Resuming_while_the_old_connection_is_still_open_takes_it_over()
    {
        await using var harness = Durable();
        var (old, connected) = await harness.OpenConnectedAsync("1.2", "guest");
        await old.SubscribeAndWaitAsync("s", "/topic/takeover");

        var (fresh, again) = await harness.OpenConnectedAsync("1.2", "guest", connected["session-token"]);
        var publisher = await harness.OpenConnectedAsync();
        await publisher.PublishAsync("/topic/takeover", "to the new connection");

        Assert.That((await old.ReceiveAsync())["message"], Is.EqualTo("session resumed on another connection"));
        Assert.That(again["resumed"], Is.EqualTo("true"));
        Assert.That((await fresh.ReceiveAsync()).BodyText, Is.EqualTo("to the new connection"));
    }

    private static string Base64(string base64Url)
    {
        var s = base64Url.Replace('-', '+').Replace('_', '/');
        return s + new string('=', (4 - s.Length % 4) % 4);
    }

    private sealed class ManualTime : TimeProvider
    {
        private DateTimeOffset _now = DateTimeOffset.UtcNow;

        public void Advance(TimeSpan by) => _now += by;

        public override DateTimeOffset GetUtcNow() => _now;
    }
}
