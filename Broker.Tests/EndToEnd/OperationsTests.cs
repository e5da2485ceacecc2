using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using NUnit.Framework;

namespace Broker.Tests.EndToEnd;

/// <summary>What an operator sees of the executable: one-line start-up errors, readiness, Prometheus metrics.</summary>
[TestFixture]
public sealed class OperationsTests
{
    private static readonly TimeSpan ExitTimeout = TimeSpan.FromSeconds(60);

    [TestCase("--Broker:MaxFrameSize=-1", "Broker:MaxFrameSize is '-1'; expected a positive value")]
    [TestCase("--Broker:MaxQueueLength=-5", "Broker:MaxQueueLength is '-5'; expected zero or more")]
    [TestCase("--Broker:SendTimeout=ten seconds", "'ten seconds' at 'Broker:SendTimeout' to type 'System.TimeSpan'")]
    [TestCase("--Broker:Sessions:Store=mongo", "Broker:Sessions:Store is 'mongo'; expected 'sqlite', 'redis', 'memory' or 'none'")]
    [TestCase("--Broker:Relay:Kind=kafka", "Broker:Relay:Kind is 'kafka'; expected 'inprocess' or 'rabbitmq'")]
    [TestCase("--Broker:Server:ListenAddress=everywhere", "Broker:Server:ListenAddress is 'everywhere'; expected an IP address")]
    public async Task An_invalid_setting_stops_the_start_with_one_line_naming_it(string argument, string expected)
    {
        var (exitCode, output, error) = await ServerProcess.RunToExitAsync(["--Broker:Sessions:Store=none", argument], ExitTimeout);

        Assert.That(exitCode, Is.EqualTo(1), output + error);
        Assert.That(error.Trim(), Does.StartWith("broker: cannot start: ").And.Contain(expected));
        Assert.That(error.Trim().Split('\n'), Has.Length.EqualTo(1), "one line, no stack trace");
        Assert.That(output + error, Does.Not.Contain("   at "), "no stack trace");
    }

    [Test]
    public async Task A_redis_string_or_amqp_uri_that_does_not_parse_is_refused_at_start()
    {
        var redis = await ServerProcess.RunToExitAsync(["--Broker:Sessions:Store=redis", "--Broker:Sessions:Redis=127.0.0.1:6379,nosuchoption=1"], ExitTimeout);
        var amqp = await ServerProcess.RunToExitAsync(["--Broker:Sessions:Store=none", "--Broker:Relay:Kind=rabbitmq", "--Broker:Relay:RabbitMq:Uri=http:/nowhere"], ExitTimeout);

        Assert.That(redis.ExitCode, Is.EqualTo(1), redis.Output + redis.Error);
        Assert.That(redis.Error, Does.Contain("Broker:Sessions:Redis does not parse"));
        Assert.That(amqp.ExitCode, Is.EqualTo(1), amqp.Output + amqp.Error);
        Assert.That(amqp.Error, Does.Contain("Broker:Relay:RabbitMq:Uri is not an AMQP URI"));
    }

    [Test]
    public async Task A_taken_port_is_named_with_the_setting_that_changes_it()
    {
        using var squatter = new TcpListener(IPAddress.Loopback, 0);
        squatter.Start();
        var port = ((IPEndPoint)squatter.LocalEndpoint).Port;

        var (exitCode, output, error) = await ServerProcess.RunToExitAsync(["--Broker:Sessions:Store=none", $"--Broker:Server:TcpPort={port}"], ExitTimeout);

        Assert.That(exitCode, Is.EqualTo(1), output + error);
        Assert.That(error.Trim(), Is.EqualTo($"broker: cannot start: Broker:Server:TcpPort is {port}, but port {port} on 127.0.0.1 is taken by another process; stop it, or choose a free port with --Broker:Server:TcpPort=<port> (0 picks one)"));
        Assert.That(output, Does.Not.Contain("   at "));
    }

    [Test]
    public async Task Readiness_follows_the_session_store_and_liveness_does_not()
    {
        var closedPort = FreePort();
        await using var down = await ServerProcess.StartAsync(["--Broker:Sessions:Store=redis", $"--Broker:Sessions:Redis=127.0.0.1:{closedPort},connectTimeout=500"]);
        var dataDir = Directory.CreateTempSubdirectory("broker-ops-");
        try
        {
            await using var up = await ServerProcess.StartAsync(["--Broker:Sessions:Store=sqlite", $"--Broker:Sessions:SqlitePath={Path.Combine(dataDir.FullName, "b.db")}"]);
            using var http = new HttpClient();

            var (downReady, downReadyBody) = await GetAsync(http, new Uri(down.HttpUri, "health/ready"));
            var (downLive, _) = await GetAsync(http, new Uri(down.HttpUri, "health/live"));
            var (upReady, upReadyBody) = await GetAsync(http, new Uri(up.HttpUri, "health/ready"));

            Assert.That(downReady, Is.EqualTo(HttpStatusCode.ServiceUnavailable), downReadyBody);
            Assert.That(Status(downReadyBody, "stomp-session-store"), Is.EqualTo("Unhealthy"), downReadyBody);
            Assert.That(downLive, Is.EqualTo(HttpStatusCode.OK));
            Assert.That(upReady, Is.EqualTo(HttpStatusCode.OK), upReadyBody);
            Assert.That(Status(upReadyBody, "stomp-session-store"), Is.EqualTo("Healthy"), upReadyBody);
        }
        finally
        {
            dataDir.Delete(recursive: true);
        }
    }

    [Test]
    public async Task Readiness_says_unhealthy_while_the_relay_cannot_reach_rabbitmq()
    {
        await using var server = await ServerProcess.StartAsync(["--Broker:Sessions:Store=none", "--Broker:Relay:Kind=rabbitmq", $"--Broker:Relay:RabbitMq:Uri=amqp://guest:guest@127.0.0.1:{FreePort()}/"]);
        using var http = new HttpClient();

        var (status, body) = await GetAsync(http, new Uri(server.HttpUri, "health/ready"));

        Assert.That(status, Is.EqualTo(HttpStatusCode.ServiceUnavailable), body);
        Assert.That(Status(body, "stomp-broker"), Is.EqualTo("Unhealthy"), body);
        Assert.That(body, Does.Contain("0 of 2 connections to RabbitMQ"));
    }

    [Test]
    public async Task Readiness_says_unhealthy_while_the_cluster_cannot_reach_redis()
    {
        await using var server = await ServerProcess.StartAsync(["--Broker:Sessions:Store=none", "--Broker:Cluster:Kind=redis", $"--Broker:Cluster:Redis=127.0.0.1:{FreePort()},connectTimeout=500"]);
        using var http = new HttpClient();

        var (status, body) = await GetAsync(http, new Uri(server.HttpUri, "health/ready"));

        Assert.That(status, Is.EqualTo(HttpStatusCode.ServiceUnavailable), body);
        Assert.That(Status(body, "stomp-broker"), Is.EqualTo("Unhealthy"), body);
        Assert.That(body, Does.Contain("Redis cluster at"));
    }

    [Test]
    public async Task Metrics_are_served_for_prometheus()
    {
        await using var server = await ServerProcess.StartAsync(["--Broker:Sessions:Store=none"]);
        await using var subscriber = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await subscriber.ConnectAsync();
        await subscriber.SubscribeAndWaitAsync("s", "/topic/metrics");
        await using var publisher = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await publisher.ConnectAsync();
        for (var i = 0; i < 3; i++)
        {
            await publisher.PublishAsync("/topic/metrics", "m" + i);
            await subscriber.ReceiveAsync();
        }

        using var http = new HttpClient();
        var (status, text) = await GetAsync(http, new Uri(server.HttpUri, "metrics"));
        var lines = text.Split('\n');

        Assert.That(status, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(Value(lines, "broker_messages_published_total", "destination_kind=\"topic\""), Is.EqualTo(3), text);
        Assert.That(Value(lines, "broker_messages_delivered_total", null), Is.EqualTo(3), text);
        Assert.That(Value(lines, "broker_destinations_active", "destination_kind=\"topic\""), Is.GreaterThanOrEqualTo(1), text);
        Assert.That(text, Does.Contain("broker_connections_active"));
    }

    private static double Value(string[] lines, string name, string? tag)
    {
        var line = lines.FirstOrDefault(l => l.StartsWith(name + "{", StringComparison.Ordinal) && (tag is null || l.Contains(tag, StringComparison.Ordinal)));
        return line is null ? double.NaN : double.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }

    private static string? Status(string json, string check) =>
        JsonDocument.Parse(json).RootElement.GetProperty("checks").GetProperty(check).GetProperty("status").GetString();

    private static async Task<(HttpStatusCode Status, string Body)> GetAsync(HttpClient http, Uri uri)
    {
        using var response = await http.GetAsync(uri);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
