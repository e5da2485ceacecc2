using System.Net;
using Broker.Hosting;
using Broker.Protocol;
using Broker.Tests.EndToEnd;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace Broker.Tests.Hosting;

/// <summary>max-connections and max-connections-per-address, WebSocket and TCP counted together.</summary>
[TestFixture]
public sealed class ConnectionLimitTests
{
    [Test]
    public async Task Past_max_connections_tcp_gets_an_error_naming_the_limit_and_websocket_gets_503()
    {
        await using var server = await HostingTestServer.StartAsync(o => o.MaxConnections = 2);
        using var refusals = new BrokerMeter(server.Services);
        await using var first = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await first.ConnectAsync();
        var (second, _) = await StompTestClient.ConnectWebSocketAsync(server.WebSocketUri, "v12.stomp");
        await using var _1 = second;
        await second.ConnectAsync();
        await second.SubscribeAndWaitAsync("s", "/topic/limits");

        await using var third = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        var error = await third.ReceiveAsync();
        var closed = await third.WaitClosedAsync();
        var upgrade = await UpgradeAsync(server.WebSocketUri);

        // The two inside still have a working round trip.
        await first.PublishAsync("/topic/limits", "still served");
        var delivered = await second.ReceiveAsync();

        Assert.That(error.Command, Is.EqualTo(StompCommand.Error));
        Assert.That(error["message"], Is.EqualTo("limit exceeded: max-connections (3 > 2)"));
        Assert.That(closed, Is.True);
        Assert.That(upgrade.Status, Is.EqualTo(HttpStatusCode.ServiceUnavailable));
        Assert.That(upgrade.Body, Does.Contain("max-connections"));
        Assert.That(delivered.BodyText, Is.EqualTo("still served"));
        Assert.That(refusals[$"broker.connections.refused{{reason={ConnectionLimiter.MaxConnectionsLimit}}}"], Is.EqualTo(2));
        var line = await server.Logs.WaitForAsync(l => l.Contains("refused: limit exceeded: max-connections", StringComparison.Ordinal), "the refusal's log line");
        Assert.That(line, Does.StartWith("Warning"));
    }

    [Test]
    public async Task A_place_freed_by_a_leaving_client_is_taken_by_the_next()
    {
        await using var server = await HostingTestServer.StartAsync(o => o.MaxConnections = 1);
        var limiter = server.Services.GetRequiredService<ConnectionLimiter>();
        var first = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await first.ConnectAsync();
        await first.DisposeAsync();
        await Eventually.That(() => limiter.Count == 0, "the first client's place given back");

        await using var next = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        var connected = await next.ConnectAsync();

        Assert.That(connected.Command, Is.EqualTo(StompCommand.Connected), connected.ToString());
    }

    [Test]
    public async Task Past_max_connections_per_address_that_address_is_refused_and_another_still_gets_in()
    {
        await using var server = await HostingTestServer.StartAsync(o =>
        {
            o.MaxConnectionsPerAddress = 2;
            o.AllowAnonymous = true;
        });
        using var refusals = new BrokerMeter(server.Services);
        var first = IPAddress.Parse("127.0.0.1");
        var second = IPAddress.Parse("127.0.0.2");
        await using var a1 = await StompTestClient.ConnectTcpAsync(IPAddress.Loopback, server.TcpPort, first);
        await a1.ConnectAsync();
        var (a2, _) = await StompTestClient.ConnectWebSocketAsync(server.WebSocketUri, "v12.stomp");
        await using var _1 = a2;
        await a2.ConnectAsync();

        await using var a3 = await StompTestClient.ConnectTcpAsync(IPAddress.Loopback, server.TcpPort, first);
        var refused = await a3.ReceiveAsync();
        var upgrade = await UpgradeAsync(server.WebSocketUri);
        await using var b1 = await StompTestClient.ConnectTcpAsync(IPAddress.Loopback, server.TcpPort, second);
        var accepted = await b1.ConnectAsync();

        Assert.That(refused["message"], Is.EqualTo("limit exceeded: max-connections-per-address (3 > 2)"));
        Assert.That(upgrade.Status, Is.EqualTo(HttpStatusCode.ServiceUnavailable));
        Assert.That(accepted.Command, Is.EqualTo(StompCommand.Connected), accepted.ToString());
        Assert.That(refusals[$"broker.connections.refused{{reason={ConnectionLimiter.MaxConnectionsPerAddressLimit}}}"], Is.EqualTo(2));
    }

    [Test]
    public async Task An_address_opening_connections_faster_than_its_rate_is_refused_naming_the_limit_and_others_still_work()
    {
        var time = new FakeTimeProvider();
        await using var server = await HostingTestServer.StartAsync(o =>
        {
            o.MaxConnectionRatePerAddress = 1;
            o.ConnectionBurstPerAddress = 2;
            o.AllowAnonymous = true;
            o.HeartbeatSend = o.HeartbeatReceive = TimeSpan.Zero;
        }, services: s => s.AddSingleton<TimeProvider>(time));
        using var meter = new BrokerMeter(server.Services);
        var attacker = IPAddress.Parse("127.0.0.1");
        var other = IPAddress.Parse("127.0.0.2");

        // The burst: two connections from the attacker's address, one staying as an established session.
        var (subscriber, _) = await StompTestClient.ConnectWebSocketAsync(server.WebSocketUri, "v12.stomp");
        await using var _1 = subscriber;
        await subscriber.ConnectAsync();
        await subscriber.SubscribeAndWaitAsync("s", "/topic/rate");
        await using var second = await StompTestClient.ConnectTcpAsync(IPAddress.Loopback, server.TcpPort, attacker);
        await second.ConnectAsync();

        // Past it: refused over TCP (an ERROR) and WebSocket (429 with Retry-After), both naming the limit.
        await using var refusedTcp = await StompTestClient.ConnectTcpAsync(IPAddress.Loopback, server.TcpPort, attacker);
        var error = await refusedTcp.ReceiveAsync();
        var closed = await refusedTcp.WaitClosedAsync();
        var upgrade = await UpgradeAsync(server.WebSocketUri);

        // Another address gets in, and the established session from the refused address still has its round trip.
        await using var fromOther = await StompTestClient.ConnectTcpAsync(IPAddress.Loopback, server.TcpPort, other);
        var otherConnected = await fromOther.ConnectAsync();
        await fromOther.PublishAsync("/topic/rate", "still served");
        var delivered = await subscriber.ReceiveAsync();

        // A second later the bucket holds one connection again.
        time.Advance(TimeSpan.FromSeconds(1));
        await using var later = await StompTestClient.ConnectTcpAsync(IPAddress.Loopback, server.TcpPort, attacker);
        var laterConnected = await later.ConnectAsync();

        Assert.That(error.Command, Is.EqualTo(StompCommand.Error));
        Assert.That(error["message"], Does.StartWith("limit exceeded: max-connection-rate-per-address (more than 2 at once or 1/s from one address"));
        Assert.That(closed, Is.True);
        Assert.That(upgrade.Status, Is.EqualTo(HttpStatusCode.TooManyRequests));
        Assert.That(upgrade.Body, Does.StartWith("limit exceeded: max-connection-rate-per-address"));
        Assert.That(upgrade.RetryAfter, Is.EqualTo(TimeSpan.FromSeconds(1)));
        Assert.That(otherConnected.Command, Is.EqualTo(StompCommand.Connected), otherConnected.ToString());
        Assert.That(delivered.BodyText, Is.EqualTo("still served"));
        Assert.That(laterConnected.Command, Is.EqualTo(StompCommand.Connected), laterConnected.ToString());
        Assert.That(meter[$"broker.limits.exceeded{{limit={ConnectionLimiter.MaxConnectionRatePerAddressLimit}}}"], Is.EqualTo(2));
        Assert.That(meter[$"broker.connections.refused{{reason={ConnectionLimiter.MaxConnectionRatePerAddressLimit}}}"], Is.EqualTo(2));
        var line = await server.Logs.WaitForAsync(l => l.Contains("refused: limit exceeded: max-connection-rate-per-address", StringComparison.Ordinal), "the refusal's log line");
        Assert.That(line, Does.StartWith("Warning"));
    }

    [Test]
    public void Connection_rates_count_an_ipv6_address_by_its_64_and_the_table_stays_bounded()
    {
        var time = new FakeTimeProvider();
        var rate = new ConnectionRateLimiter(perSecond: 1, burst: 1, maxTracked: 3, time);

        Assert.That(rate.TryTake(IPAddress.Parse("2001:db8:1:2::1"), out _), Is.True);
        Assert.That(rate.TryTake(IPAddress.Parse("2001:db8:1:2:ffff::9"), out var retryAfter), Is.False, "same /64, same bucket");
        Assert.That(retryAfter, Is.EqualTo(TimeSpan.FromSeconds(1)));
        Assert.That(rate.TryTake(IPAddress.Parse("2001:db8:1:3::1"), out _), Is.True, "another /64");
        Assert.That(rate.TryTake(IPAddress.Parse("::ffff:192.0.2.7"), out _), Is.True);
        Assert.That(rate.TryTake(IPAddress.Parse("192.0.2.7"), out _), Is.False, "an IPv4-mapped address is its IPv4 address");

        for (var i = 0; i < 10; i++)
        {
            Assert.That(rate.TryTake(IPAddress.Parse($"198.51.100.{i}"), out _), Is.True);
        }

        Assert.That(rate.Count, Is.EqualTo(3), "the least recently seen addresses were forgotten");
        Assert.That(rate.TryTake(IPAddress.Parse("198.51.100.9"), out _), Is.False, "the most recent is still remembered");
    }

    [Test]
    public void The_default_limit_follows_the_open_file_limit()
    {
        Assert.That(ConnectionLimiter.DefaultMaxConnections(20_000), Is.EqualTo(19_500));
        Assert.That(ConnectionLimiter.DefaultMaxConnections(1024), Is.EqualTo(524));
        Assert.That(ConnectionLimiter.DefaultMaxConnections(600), Is.EqualTo(300));
        Assert.That(ConnectionLimiter.DefaultMaxConnections(null), Is.EqualTo(10_000), "unknown: a fixed default");
        Assert.That(ConnectionLimiter.DefaultMaxConnections(long.MaxValue), Is.Zero, "unlimited files: no limit");
    }

    [Test]
    public async Task The_executable_logs_the_limits_in_force()
    {
        var files = ConnectionLimiter.OpenFileLimit();
        await using var server = await ServerProcess.StartAsync();
        await server.WaitForOutputAsync(l => l.Contains("Connection limits:", StringComparison.Ordinal), 1, "the limits line");

        var line = server.Output.Split('\n').Single(l => l.Contains("Connection limits:", StringComparison.Ordinal));
        var expected = ConnectionLimiter.DefaultMaxConnections(files);
        Assert.That(line, Does.Contain($"max-connections {expected:N0}").And.Contain("max-connections-per-address none"));
    }

    [Test]
    public async Task The_executable_takes_its_limits_from_configuration()
    {
        await using var server = await ServerProcess.StartAsync(["--Broker:MaxConnections=1"]);
        await using var first = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await first.ConnectAsync();

        await using var second = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        var refused = await second.ReceiveAsync();

        Assert.That(refused["message"], Is.EqualTo("limit exceeded: max-connections (2 > 1)"));
        await server.WaitForOutputAsync(l => l.Contains("refused: limit exceeded: max-connections (2 > 1)", StringComparison.Ordinal), 1, "the refusal's log line");
    }

    // A WebSocket upgrade request by hand, so a refusal's status, Retry-After and body can all be read.
    private static async Task<(HttpStatusCode Status, string Body, TimeSpan? RetryAfter)> UpgradeAsync(Uri uri)
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, new UriBuilder(uri) { Scheme = uri.Scheme == "wss" ? "https" : "http" }.Uri);
        request.Headers.Connection.Add("Upgrade");
        request.Headers.Upgrade.Add(new System.Net.Http.Headers.ProductHeaderValue("websocket"));
        request.Headers.Add("Sec-WebSocket-Version", "13");
        request.Headers.Add("Sec-WebSocket-Key", Convert.ToBase64String(Guid.NewGuid().ToByteArray()));
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var body = response.StatusCode == HttpStatusCode.SwitchingProtocols ? "" : await response.Content.ReadAsStringAsync();
        return (response.StatusCode, body, response.Headers.RetryAfter?.Delta);
    }
}
