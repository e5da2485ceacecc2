using Broker.Durability;
using Broker.Protocol;
using Broker.Tests.Durability;
using NUnit.Framework;

namespace Broker.Tests.EndToEnd;

/// <summary>Durable sessions through a server restart (SQLite) and across two nodes (Redis), with the real executable.</summary>
[TestFixture]
public sealed class ResumeAcrossProcessesTests
{
    [Test]
    public async Task Subscriptions_survive_a_server_restart_with_the_sqlite_store()
    {
        var directory = Directory.CreateTempSubdirectory("broker-restart-");
        try
        {
            string[] args = [$"--Broker:Sessions:SqlitePath={Path.Combine(directory.FullName, "broker.db")}"];
            string token;
            string sessionId;
            await using (var first = await ServerProcess.StartAsync(args))
            {
                await using var client = await StompTestClient.ConnectTcpAsync(first.TcpPort);
                var connected = await client.ConnectAsync();
                token = connected["session-token"]!;
                sessionId = connected["session"]!;
                await client.SubscribeAndWaitAsync("news", "/topic/news.world");
                await client.SubscribeAndWaitAsync("jobs", "/queue/jobs", "client-individual");
                await client.DisposeAsync(); // dropped, not DISCONNECTed
                Assert.That(await first.TerminateAsync(TimeSpan.FromSeconds(20)), Is.True, first.Output);
            }

            await using var second = await ServerProcess.StartAsync(args);
            await using var resumed = await StompTestClient.ConnectTcpAsync(second.TcpPort);
            var again = await resumed.ConnectAsync(sessionToken: token);
            await using var publisher = await StompTestClient.ConnectTcpAsync(second.TcpPort);
            await publisher.ConnectAsync();
            await publisher.PublishAsync("/topic/news.world", "after the restart");
            await publisher.PublishAsync("/queue/jobs", "job-1");

            Assert.That(again["resumed"], Is.EqualTo("true"), second.Output);
            Assert.That(again["session"], Is.EqualTo(sessionId));
            Assert.That(again["recovered"], Is.EqualTo("false"), "in-process history died with the first process");
            var messages = new[] { await resumed.ReceiveAsync(), await resumed.ReceiveAsync() };
            Assert.That(messages.Select(m => (m["subscription"], m.BodyText)), Is.EquivalentTo(new[] { ("news", "after the restart"), ("jobs", "job-1") }));
            Assert.That(messages.Single(m => m["subscription"] == "jobs")["ack"], Is.Not.Null, "the ack mode was restored");
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Test]
    public async Task A_session_created_on_one_node_resumes_on_another_after_the_first_is_killed()
    {
        var redis = await RedisServer.GetSharedAsync();
        var prefix = $"broker-{Guid.NewGuid():N}:";
        string[] args = ["--Broker:Sessions:Store=redis", $"--Broker:Sessions:Redis={redis.Configuration}", $"--Broker:Sessions:RedisKeyPrefix={prefix}"];
        await using var nodeA = await ServerProcess.StartAsync(args);
        await using var nodeB = await ServerProcess.StartAsync(args);

        await using var client = await StompTestClient.ConnectTcpAsync(nodeA.TcpPort);
        var connected = await client.ConnectAsync(login: null);
        await client.SubscribeAndWaitAsync("alerts", "/topic/alerts.#");
        var token = connected["session-token"]!;

        // The subscription reaches Redis behind the client's back; wait for it, as a client retrying would.
        using var store = new RedisSessionStore(new RedisSessionStoreOptions { Configuration = redis.Configuration, KeyPrefix = prefix });
        await Eventually.That(async () => (await store.FindByTokenHashAsync(Broker.Sessions.StompSession.HashToken(token)))?.Subscriptions.Count == 1, "the session reached Redis");
        await nodeA.KillAsync();

        await using var resumed = await StompTestClient.ConnectTcpAsync(nodeB.TcpPort);
        var again = await resumed.ConnectAsync(sessionToken: token);
        await using var publisher = await StompTestClient.ConnectTcpAsync(nodeB.TcpPort);
        await publisher.ConnectAsync();
        await publisher.PublishAsync("/topic/alerts.disk.full", "on node B");

        Assert.That(again["resumed"], Is.EqualTo("true"), nodeB.Output);
        Assert.That(again["session"], Is.EqualTo(connected["session"]));
        var message = await resumed.ReceiveAsync();
        Assert.That(message["subscription"], Is.EqualTo("alerts"));
        Assert.That(message.BodyText, Is.EqualTo("on node B"));
    }
}
