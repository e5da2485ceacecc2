using Broker.Protocol;
using Broker.Tests.Browser;
using Broker.Tests.EndToEnd;
using NUnit.Framework;
using static Broker.Tests.Relay.RelayTesting;

// In the relay tests' namespace, so their [SetUpFixture] stops the shared rabbitmq-server at the end of the run.
namespace Broker.Tests.Relay;

/// <summary>GET /api/stats of an executable configured with the RabbitMQ relay: what the relay knows.</summary>
[TestFixture]
public sealed class AdminApiRelayTests
{
    private const string Key = "relay-api-test-key-0123456789";

    [Test]
    public async Task With_the_relay_stats_show_its_links_and_the_sessions_subscriber_counts()
    {
        var rabbit = await RabbitMqServer.GetSharedAsync();
        var p = Unique();
        await using var server = await ServerProcess.StartAsync(
            [$"--Broker:Api:Key={Key}", "--Broker:Sessions:Store=memory", "--Broker:Relay:Kind=rabbitmq", $"--Broker:Relay:RabbitMq:Uri={rabbit.Uri}"]);
        await server.WaitRelayConnectedAsync(1);
        await using var first = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await first.ConnectAsync();
        await first.SubscribeAndWaitAsync("t", $"/topic/{p}.prices");
        await using var second = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await second.ConnectAsync();
        await second.SubscribeAndWaitAsync("t", $"/topic/{p}.prices");
        await second.SubscribeAndWaitAsync("q", $"/queue/{p}.work", "client");
        using var api = new AdminApiClient(server.HttpUri, Key);

        var stats = await api.GetOkAsync("/api/stats");
        var broker = stats.GetProperty("broker");
        var destinations = stats.GetProperty("destinations");
        var items = destinations.GetProperty("items").EnumerateArray().ToDictionary(d => d.GetProperty("destination").GetString()!);

        Assert.That(broker.GetProperty("kind").GetString(), Is.EqualTo("rabbitmq"));
        Assert.That(broker.GetProperty("links").EnumerateArray().Select(l => (l.GetProperty("link").GetString(), l.GetProperty("up").GetBoolean())),
            Is.EqualTo(new[] { ("rabbitmq", true), ("rabbitmq", true) }), "both relay connections up");
        Assert.That(destinations.GetProperty("source").GetString(), Is.EqualTo("sessions"));
        Assert.That(items[$"/topic/{p}.prices"].GetProperty("subscribers").GetInt32(), Is.EqualTo(2));
        Assert.That(items[$"/queue/{p}.work"].GetProperty("kind").GetString(), Is.EqualTo("queue"));
        Assert.That(items[$"/queue/{p}.work"].GetProperty("subscribers").GetInt32(), Is.EqualTo(1));
        Assert.That(stats.GetProperty("sessions").GetProperty("connected").GetInt32(), Is.EqualTo(2));
    }
}
