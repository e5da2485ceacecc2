using Broker.Durability;
using Broker.Protocol;
using Broker.Routing;
using Broker.Sessions;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace Broker.Tests.Sessions;

/// <summary>User destinations of durable sessions, with the in-memory store and a real SQLite file.</summary>
[TestFixture("memory")]
[TestFixture("sqlite")]
public sealed class UserDestinationResumeTests(string store)
{
    private string _directory = null!;

    [OneTimeSetUp]
    public void CreateDirectory() => _directory = Directory.CreateTempSubdirectory("broker-userdest-resume-tests-").FullName;

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
            if (store == "sqlite")
            {
                b.AddSqliteSessionStore(o => o.Path = Path.Combine(_directory, Guid.NewGuid().ToString("N") + ".db"));
            }
            else
            {
                b.AddInMemorySessionStore();
            }
        });

    [Test]
    public async Task A_resumed_session_keeps_its_user_destination_and_gets_what_it_missed()
    {
        await using var harness = Harness();
        var (alice, connected) = await harness.OpenConnectedAsync("1.2", "alice");
        var (bob, _) = await harness.OpenConnectedAsync("1.2", "bob");
        await alice.SubscribeAndWaitAsync("in", "/user/queue/inbox", ack: "client-individual");
        await bob.PublishAsync("/user/alice/queue/inbox", "unacked");
        Assert.That((await alice.ReceiveAsync()).BodyText, Is.EqualTo("unacked"));
        await alice.DisposeAsync(); // dropped, not DISCONNECTed, and the message not acknowledged
        await harness.WaitSessionGoneAsync(connected["session"]!);

        // While alice is away, a message waits in her session's queue.
        await bob.PublishAsync("/user/alice/queue/inbox", "while away", ("receipt", "r"));
        await bob.ExpectReceiptAsync("r");
        var persistence = harness.Services.GetRequiredService<SessionPersistence>();
        await persistence.FlushAsync(TimeSpan.FromSeconds(5));
        var record = await persistence.Store.FindByTokenHashAsync(StompSession.HashToken(connected["session-token"]!));
        var (resumed, again) = await harness.OpenConnectedAsync("1.2", "alice", connected["session-token"]);

        Assert.That(record!.Subscriptions.Single().Destination, Is.EqualTo("/user/queue/inbox"), "the store keeps what the client subscribed to");
        Assert.That((again["resumed"], again["session"]), Is.EqualTo(("true", connected["session"])));
        var redelivered = await resumed.ReceiveAsync();
        var waiting = await resumed.ReceiveAsync();
        Assert.That((redelivered["destination"], redelivered["subscription"], redelivered.BodyText), Is.EqualTo(("/user/queue/inbox", "in", "unacked")));
        Assert.That((waiting["destination"], waiting["subscription"], waiting.BodyText), Is.EqualTo(("/user/queue/inbox", "in", "while away")));

        // Live again without a new SUBSCRIBE, and a re-sent SUBSCRIBE (stomp.js onConnect) attaches to it.
        await resumed.SendFrameAsync(StompCommand.Ack, ("id", waiting["ack"]!));
        await resumed.SendFrameAsync(StompCommand.Ack, ("id", redelivered["ack"]!));
        await resumed.SubscribeAndWaitAsync("in", "/user/queue/inbox", ack: "client-individual");
        await bob.PublishAsync("/user/alice/queue/inbox", "after resume");
        var live = await resumed.ReceiveAsync();
        Assert.That((live["destination"], live["subscription"], live.BodyText), Is.EqualTo(("/user/queue/inbox", "in", "after resume")));
    }

    [Test]
    public async Task A_session_the_registry_lists_on_another_node_finds_the_message_when_it_resumes_here()
    {
        await using var harness = Harness();
        const string token = "token-of-a-session-served-elsewhere";
        var sessionId = StompSessionServices.NewSessionId();
        var now = DateTimeOffset.UtcNow;
        await harness.Services.GetRequiredService<ISessionStore>().SaveAsync(new SessionRecord
        {
            Id = sessionId,
            TokenHash = StompSession.HashToken(token),
            Principal = "alice",
            Node = "node-b",
            Subscriptions = [new SubscriptionRecord("in", "/user/queue/inbox", AckMode.Auto)],
            CreatedAt = now,
            LastSeenAt = now,
        });
        await harness.Services.GetRequiredService<IUserRegistry>().RegisterAsync("alice", sessionId, "node-b");
        var (bob, _) = await harness.OpenConnectedAsync("1.2", "bob");

        await bob.PublishAsync("/user/alice/queue/inbox", "across nodes", ("receipt", "r"));
        await bob.ExpectReceiptAsync("r");
        var (alice, connected) = await harness.OpenConnectedAsync("1.2", "alice", token);

        Assert.That((connected["resumed"], connected["session"]), Is.EqualTo(("true", sessionId)));
        var message = await alice.ReceiveAsync();
        Assert.That((message["destination"], message["subscription"], message.BodyText), Is.EqualTo(("/user/queue/inbox", "in", "across nodes")));
    }
}
