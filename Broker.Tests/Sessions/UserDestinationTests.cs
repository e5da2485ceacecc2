using Broker.Durability;
using Broker.Protocol;
using Broker.Sessions;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace Broker.Tests.Sessions;

/// <summary>
/// User destinations over in-memory pipes (Spring's semantics): SUBSCRIBE /user/queue/&lt;name&gt;, SEND
/// /user/&lt;login&gt;/queue/&lt;name&gt;. Held to the same tests without a store, with the in-memory store
/// and with a real SQLite file.
/// </summary>
[TestFixture("none")]
[TestFixture("memory")]
[TestFixture("sqlite")]
public sealed class UserDestinationTests(string store)
{
    private string _directory = null!;

    [OneTimeSetUp]
    public void CreateDirectory() => _directory = Directory.CreateTempSubdirectory("broker-userdest-tests-").FullName;

    [OneTimeTearDown]
    public void DeleteDirectory()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }

    private SessionHarness Harness() => new(
        o =>
        {
            o.Users["alice"] = "alice";
            o.Users["bob"] = "bob";
        },
        b =>
        {
            switch (store)
            {
                case "memory":
                    b.AddInMemorySessionStore();
                    break;
                case "sqlite":
                    b.AddSqliteSessionStore(o => o.Path = Path.Combine(_directory, Guid.NewGuid().ToString("N") + ".db"));
                    break;
            }
        });

    private bool Durable => store != "none";

    [Test]
    public async Task Every_session_of_the_user_gets_the_message_once_showing_what_it_subscribed_to()
    {
        await using var harness = Harness();
        var (alice1, _) = await harness.OpenConnectedAsync("1.2", "alice");
        var (alice2, _) = await harness.OpenConnectedAsync("1.1", "alice");
        var (bob, _) = await harness.OpenConnectedAsync("1.2", "bob");
        await alice1.SubscribeAndWaitAsync("in1", "/user/queue/inbox");
        await alice2.SubscribeAndWaitAsync("in2", "/user/queue/inbox");
        await bob.SubscribeAndWaitAsync("mine", "/user/queue/inbox");

        await bob.PublishAsync("/user/alice/queue/inbox", "hello alice", ("content-type", "text/plain"), ("x-from", "bob"), ("receipt", "sent"));

        // Handling is in order: had bob been a target, his MESSAGE would be queued before his RECEIPT.
        await bob.ExpectReceiptAsync("sent");
        var messageIds = new List<string?>();
        foreach (var (alice, id) in new[] { (alice1, "in1"), (alice2, "in2") })
        {
            var message = await alice.ReceiveAsync();
            Assert.That(message.Command, Is.EqualTo(StompCommand.Message));
            Assert.That(message["destination"], Is.EqualTo("/user/queue/inbox"));
            Assert.That(message.HeaderList.Count(h => h.Key == "destination"), Is.EqualTo(1), "one destination header, not a second one behind it");
            Assert.That(message.HeaderList.Select(h => h.Value), Has.None.Contains("-user"), "the per-session queue's name never shows");
            Assert.That(message["subscription"], Is.EqualTo(id));
            Assert.That(message["x-from"], Is.EqualTo("bob"));
            Assert.That(message["content-type"], Is.EqualTo("text/plain"));
            Assert.That(message.BodyText, Is.EqualTo("hello alice"));
            messageIds.Add(message["message-id"]);
        }

        Assert.That(messageIds.Distinct().Count(), Is.EqualTo(1), "one message, one id");

        // Once: the next thing each alice session sees is the next message.
        await bob.PublishAsync("/user/alice/queue/inbox", "second");
        Assert.That((await alice1.ReceiveAsync()).BodyText, Is.EqualTo("second"));
        Assert.That((await alice2.ReceiveAsync()).BodyText, Is.EqualTo("second"));

        // And bob's own destination reaches bob alone.
        await alice1.PublishAsync("/user/bob/queue/inbox", "hi bob");
        var reply = await bob.ReceiveAsync();
        Assert.That((reply["destination"], reply["subscription"], reply.BodyText), Is.EqualTo(("/user/queue/inbox", "mine", "hi bob")));
    }

    [Test]
    public async Task A_stomp_1_0_subscriber_gets_the_same_destination()
    {
        await using var harness = Harness();
        var (alice, _) = await harness.OpenConnectedAsync("1.0", "alice");
        var (bob, _) = await harness.OpenConnectedAsync("1.2", "bob");
        await alice.SubscribeAndWaitAsync("in", "/user/queue/inbox");

        await bob.PublishAsync("/user/alice/queue/inbox", "old protocol");

        var message = await alice.ReceiveAsync();
        Assert.That((message.Command, message["destination"], message.BodyText), Is.EqualTo((StompCommand.Message, "/user/queue/inbox", "old protocol")));
    }

    [Test]
    public async Task A_queue_name_with_a_colon_round_trips_escaped()
    {
        await using var harness = Harness();
        var (alice, _) = await harness.OpenConnectedAsync("1.2", "alice");
        var (bob, _) = await harness.OpenConnectedAsync("1.1", "bob");
        await alice.SubscribeAndWaitAsync("in", "/user/queue/orders:eu");

        await bob.PublishAsync("/user/alice/queue/orders:eu", "x");

        Assert.That((await alice.ReceiveAsync())["destination"], Is.EqualTo("/user/queue/orders:eu"));
    }

    [Test]
    public async Task Only_the_named_queue_is_reached()
    {
        await using var harness = Harness();
        var (alice, _) = await harness.OpenConnectedAsync("1.2", "alice");
        var (bob, _) = await harness.OpenConnectedAsync("1.2", "bob");
        await alice.SubscribeAndWaitAsync("in", "/user/queue/inbox");
        await alice.SubscribeAndWaitAsync("alerts", "/user/queue/alerts");

        await bob.PublishAsync("/user/alice/queue/alerts", "alert");
        await bob.PublishAsync("/user/alice/queue/inbox", "mail");

        var first = await alice.ReceiveAsync();
        var second = await alice.ReceiveAsync();
        Assert.That((first["subscription"], first["destination"], first.BodyText), Is.EqualTo(("alerts", "/user/queue/alerts", "alert")));
        Assert.That((second["subscription"], second["destination"], second.BodyText), Is.EqualTo(("in", "/user/queue/inbox", "mail")));
    }

    [Test]
    public async Task Sending_to_a_user_with_no_sessions_succeeds_and_delivers_nothing()
    {
        await using var harness = Harness();
        var (bob, _) = await harness.OpenConnectedAsync("1.2", "bob");
        await bob.SubscribeAndWaitAsync("mine", "/user/queue/inbox");

        await bob.PublishAsync("/user/nobody/queue/inbox", "into the void", ("receipt", "r1"));
        await bob.ExpectReceiptAsync("r1");

        // The connection is still usable: a message to bob himself arrives next.
        await bob.PublishAsync("/user/bob/queue/inbox", "still here");
        var next = await bob.ReceiveAsync();
        Assert.That((next.Command, next.BodyText), Is.EqualTo((StompCommand.Message, "still here")));
    }

    [Test]
    public async Task A_session_of_the_user_that_has_not_subscribed_gets_nothing_and_a_later_subscription_starts_empty()
    {
        await using var harness = Harness();
        var (alice, _) = await harness.OpenConnectedAsync("1.2", "alice");
        var (bob, _) = await harness.OpenConnectedAsync("1.2", "bob");

        await bob.PublishAsync("/user/alice/queue/inbox", "before", ("receipt", "r"));
        await bob.ExpectReceiptAsync("r");
        await alice.SubscribeAndWaitAsync("in", "/user/queue/inbox");
        await bob.PublishAsync("/user/alice/queue/inbox", "after");

        Assert.That((await alice.ReceiveAsync()).BodyText, Is.EqualTo("after"));
    }

    [Test]
    public async Task A_transactional_send_to_a_user_is_delivered_on_commit()
    {
        await using var harness = Harness();
        var (alice, _) = await harness.OpenConnectedAsync("1.2", "alice");
        var (bob, _) = await harness.OpenConnectedAsync("1.2", "bob");
        await alice.SubscribeAndWaitAsync("in", "/user/queue/inbox");

        await bob.SendFrameAsync(StompCommand.Begin, ("transaction", "tx"));
        await bob.PublishAsync("/user/alice/queue/inbox", "in the transaction", ("transaction", "tx"));
        await bob.PublishAsync("/user/alice/queue/inbox", "outside it");
        await bob.SendFrameAsync(StompCommand.Commit, ("transaction", "tx"), ("receipt", "committed"));
        await bob.ExpectReceiptAsync("committed");

        Assert.That((await alice.ReceiveAsync()).BodyText, Is.EqualTo("outside it"));
        Assert.That((await alice.ReceiveAsync()).BodyText, Is.EqualTo("in the transaction"));
    }

    [Test]
    public async Task Anonymous_sessions_may_send_to_a_user_and_subscribe_but_no_login_reaches_them()
    {
        await using var harness = Harness();
        var (alice, _) = await harness.OpenConnectedAsync("1.2", "alice");
        var anonymous = harness.Open();
        Assert.That((await anonymous.ConnectAsync()).Command, Is.EqualTo(StompCommand.Connected));
        await alice.SubscribeAndWaitAsync("in", "/user/queue/inbox");
        await anonymous.SubscribeAndWaitAsync("in", "/user/queue/inbox");

        await anonymous.PublishAsync("/user/alice/queue/inbox", "from nobody", ("receipt", "r"));
        await anonymous.ExpectReceiptAsync("r");

        Assert.That((await alice.ReceiveAsync()).BodyText, Is.EqualTo("from nobody"));
    }

    [TestCase("SEND", "/user/queue/inbox", "a SEND must name the user, as in /user/<login>/queue/<name>")]
    [TestCase("SEND", "/user/alice/inbox", "user destinations are /user/<login>/queue/<name>")]
    [TestCase("SEND", "/user/alice/queue/", "user destinations are /user/<login>/queue/<name>")]
    [TestCase("SEND", "/user//queue/inbox", "user destinations are /user/<login>/queue/<name>")]
    [TestCase("SEND", "/user/alice/topic/news", "user destinations are /user/<login>/queue/<name>")]
    [TestCase("SUBSCRIBE", "/user/bob/queue/inbox", "subscribe to /user/queue/<name>")]
    [TestCase("SUBSCRIBE", "/user/topic/news", "subscribe to /user/queue/<name>")]
    [TestCase("SUBSCRIBE", "/user/queue/", "empty queue name")]
    [TestCase("SUBSCRIBE", "/queue/inbox-user0123456789abcdef01234567", "reserved for user destinations")]
    [TestCase("SEND", "/queue/inbox-user0123456789abcdef01234567", "reserved for user destinations")]
    public async Task An_invalid_user_destination_gets_an_error_naming_the_problem(string command, string destination, string expected)
    {
        await using var harness = Harness();
        var (client, _) = await harness.OpenConnectedAsync("1.2", "alice");

        if (command == "SEND")
        {
            await client.PublishAsync(destination, "x", ("receipt", "r"));
        }
        else
        {
            await client.SubscribeAsync("s", destination, receipt: "r");
        }

        var error = await client.ReceiveAsync();
        Assert.That(error.Command, Is.EqualTo(StompCommand.Error));
        Assert.That(error["message"], Does.Contain(expected).And.Contain(destination));
        Assert.That(error["receipt-id"], Is.EqualTo("r"));
        Assert.That(await client.WaitClosedAsync(), Is.True);
    }

    [Test]
    public async Task Another_sessions_own_queue_cannot_be_subscribed_to_by_name()
    {
        await using var harness = Harness();
        var (alice, connected) = await harness.OpenConnectedAsync("1.2", "alice");
        await alice.SubscribeAndWaitAsync("in", "/user/queue/inbox");
        var (mallory, _) = await harness.OpenConnectedAsync("1.2", "bob");

        await mallory.SubscribeAsync("steal", $"/queue/inbox-user{connected["session"]}");

        var error = await mallory.ReceiveAsync();
        Assert.That((error.Command, error["message"]), Is.EqualTo((StompCommand.Error, $"destination '/queue/inbox-user{connected["session"]}' is reserved for user destinations: use /user/queue/<name> or /user/<login>/queue/<name>")));
    }

    [Test]
    public async Task A_session_that_ended_with_disconnect_gets_nothing_more()
    {
        await using var harness = Harness();
        var (alice, connected) = await harness.OpenConnectedAsync("1.2", "alice");
        var (other, _) = await harness.OpenConnectedAsync("1.2", "alice");
        var (bob, _) = await harness.OpenConnectedAsync("1.2", "bob");
        await alice.SubscribeAndWaitAsync("in", "/user/queue/inbox");
        await other.SubscribeAndWaitAsync("in", "/user/queue/inbox");
        await alice.SendFrameAsync(StompCommand.Disconnect, ("receipt", "bye"));
        await alice.ExpectReceiptAsync("bye");
        await harness.WaitSessionGoneAsync(connected["session"]!);

        await bob.PublishAsync("/user/alice/queue/inbox", "to whoever is left", ("receipt", "r"));
        await bob.ExpectReceiptAsync("r");

        Assert.That((await other.ReceiveAsync()).BodyText, Is.EqualTo("to whoever is left"));
        Assert.That(harness.Services.GetRequiredService<StompSessionRegistry>().DormantSubscribers("alice", "/user/queue/inbox"), Is.Empty);
    }
}
