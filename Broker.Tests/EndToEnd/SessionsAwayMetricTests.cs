using NUnit.Framework;

namespace Broker.Tests.EndToEnd;

/// <summary>The broker.sessions.away gauge: a durable session that dropped counts until it resumes.</summary>
[TestFixture]
public sealed class SessionsAwayMetricTests
{
    [Test]
    public async Task A_dropped_durable_session_counts_as_away_until_it_resumes()
    {
        await using var server = await TestServer.StartAsync();
        using var meter = new BrokerMeter(server.Services);
        var first = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        var connected = await first.ConnectAsync();
        await first.SubscribeAndWaitAsync("s", "/topic/away");
        var token = connected["session-token"]!;
        var before = meter.Observe().Value("broker.sessions.away");

        await first.DisposeAsync();
        await server.WaitSessionGoneAsync(connected["session"]!);
        var away = meter.Observe().Value("broker.sessions.away");
        await using var second = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        var resumed = await second.ConnectAsync(sessionToken: token);
        var after = meter.Observe().Value("broker.sessions.away");

        Assert.That(before, Is.Zero);
        Assert.That(away, Is.EqualTo(1));
        Assert.That(resumed["resumed"], Is.EqualTo("true"));
        Assert.That(after, Is.Zero);
    }
}
