using Broker.Durability;
using Broker.Relay.RabbitMq;
using Broker.Tests.Durability;
using Broker.Tests.EndToEnd;
using NUnit.Framework;
using static Broker.Tests.Relay.RelayTesting;

namespace Broker.Tests.Relay;

/// <summary>
/// The full shape "several nodes, full": two Broker.Server processes configured with
/// <c>Broker:Relay:Kind=rabbitmq</c> and Redis sessions. Messages cross nodes through RabbitMQ, and a
/// session whose node was killed resumes on the other with what was published meanwhile.
/// </summary>
[TestFixture]
public sealed class RelayServerExecutableTests
{
    [Test]
    public async Task Messages_cross_nodes_and_a_session_resumes_on_another_node_with_what_it_missed()
    {
        var rabbit = await RabbitMqServer.GetSharedAsync();
        var redis = await RedisServer.GetSharedAsync();
        var p = Unique();
        var keyPrefix = $"broker-{p}:";
        string[] args =
        [
            "--Broker:Sessions:Store=redis", $"--Broker:Sessions:Redis={redis.Configuration}", $"--Broker:Sessions:RedisKeyPrefix={keyPrefix}",
            "--Broker:Relay:Kind=rabbitmq", $"--Broker:Relay:RabbitMq:Uri={rabbit.Uri}",
        ];
        await using var nodeA = await ServerProcess.StartAsync(args);
        await using var nodeB = await ServerProcess.StartAsync(args);

        await using var onA = await StompTestClient.ConnectTcpAsync(nodeA.TcpPort);
        var connected = await onA.ConnectAsync();
        await onA.SubscribeAndWaitAsync("alerts", $"/topic/{p}.alerts.#");
        await using var onB = await StompTestClient.ConnectTcpAsync(nodeB.TcpPort);
        await onB.ConnectAsync();
        await onB.SubscribeAndWaitAsync("alerts", $"/topic/{p}.alerts.#");
        await using var publisher = await StompTestClient.ConnectTcpAsync(nodeB.TcpPort);
        await publisher.ConnectAsync();

        await publisher.PublishConfirmedAsync($"/topic/{p}.alerts.disk", "cross");
        Assert.That((await onA.NextMessageAsync()).BodyText, Is.EqualTo("cross"), "published on B, delivered on A");
        Assert.That((await onB.NextMessageAsync()).BodyText, Is.EqualTo("cross"));

        // The session reaches Redis behind the client's back, and its delivery is acknowledged to
        // RabbitMQ once written; wait for both, as the test is about what comes after.
        using var store = new RedisSessionStore(new RedisSessionStoreOptions { Configuration = redis.Configuration, KeyPrefix = keyPrefix });
        await WaitUntilAsync(async () => (await store.FindByTokenHashAsync(Broker.Sessions.StompSession.HashToken(connected["session-token"]!)))?.Subscriptions.Count == 1, "the session reached Redis");
        var queue = RelayDestinations.DurableQueueName(new RabbitMqRelayOptions().QueuePrefix, connected["session"]!, "alerts");
        await WaitUntilAsync(async () => (await rabbit.CtlAsync("list_queues", "-q", "--no-table-headers", "name", "messages_unacknowledged"))
            .Split('\n').Any(line => line.StartsWith(queue, StringComparison.Ordinal) && line.TrimEnd().EndsWith("\t0", StringComparison.Ordinal)), "the delivery on A acknowledged");
        await nodeA.KillAsync();

        for (var i = 1; i <= 5; i++)
        {
            await publisher.PublishConfirmedAsync($"/topic/{p}.alerts.cpu", $"m{i}");
        }

        await using var resumed = await StompTestClient.ConnectTcpAsync(nodeB.TcpPort);
        var again = await resumed.ConnectAsync(sessionToken: connected["session-token"]);

        Assert.That(again["resumed"], Is.EqualTo("true"), nodeB.Output);
        Assert.That(again["recovered"], Is.EqualTo("true"), "the session's queue kept what was published while its node was dead");
        for (var i = 1; i <= 5; i++)
        {
            var message = await resumed.ReceiveAsync();
            Assert.That(message.BodyText, Is.EqualTo($"m{i}"));
            Assert.That(message["subscription"], Is.EqualTo("alerts"));
            Assert.That(message["destination"], Is.EqualTo($"/topic/{p}.alerts.cpu"));
        }

        Assert.That(await resumed.TryReceiveAsync(TimeSpan.FromMilliseconds(300)), Is.Null, "nothing twice");
    }
}
