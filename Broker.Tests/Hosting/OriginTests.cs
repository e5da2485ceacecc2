using System.Net;
using System.Net.WebSockets;
using Broker.Hosting;
using Broker.Protocol;
using Broker.Tests.EndToEnd;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace Broker.Tests.Hosting;

/// <summary>Which web pages may open a STOMP WebSocket: the upgrade's answer for each kind of Origin.</summary>
[TestFixture]
public sealed class OriginTests
{
    [Test]
    public async Task By_default_no_origin_and_same_origin_are_accepted_and_another_origin_gets_403()
    {
        await using var server = await HostingTestServer.StartAsync();
        var self = $"http://127.0.0.1:{server.WebSocketUri.Port}";

        var none = await UpgradeAsync(server.WebSocketUri, origin: null);
        var same = await UpgradeAsync(server.WebSocketUri, self);
        var evil = await UpgradeAsync(server.WebSocketUri, "https://evil.example");
        var otherPort = await UpgradeAsync(server.WebSocketUri, $"http://127.0.0.1:{server.WebSocketUri.Port + 1}");
        var otherScheme = await UpgradeAsync(server.WebSocketUri, $"https://127.0.0.1:{server.WebSocketUri.Port}");
        var sandboxed = await UpgradeAsync(server.WebSocketUri, "null");

        Assert.That(none, Is.EqualTo(HttpStatusCode.SwitchingProtocols));
        Assert.That(same, Is.EqualTo(HttpStatusCode.SwitchingProtocols));
        Assert.That(evil, Is.EqualTo(HttpStatusCode.Forbidden));
        Assert.That(otherPort, Is.EqualTo(HttpStatusCode.Forbidden));
        Assert.That(otherScheme, Is.EqualTo(HttpStatusCode.Forbidden));
        Assert.That(sandboxed, Is.EqualTo(HttpStatusCode.Forbidden));
        var line = await server.Logs.WaitForAsync(l => l.Contains("origin https://evil.example", StringComparison.Ordinal), "the refusal's log line");
        Assert.That(line, Does.StartWith("Information").And.Contain("403"));
    }

    [Test]
    public async Task Listed_origins_and_patterns_are_accepted_and_the_rest_still_refused()
    {
        await using var server = await HostingTestServer.StartAsync(o => o.AllowedOrigins.AddRange(["https://app.example.org", "https://*.example.com", "http://localhost:*"]));

        var exact = await UpgradeAsync(server.WebSocketUri, "https://app.example.org");
        var exactWithDefaultPort = await UpgradeAsync(server.WebSocketUri, "https://app.example.org:443");
        var subdomain = await UpgradeAsync(server.WebSocketUri, "https://chat.eu.example.com");
        var anyPort = await UpgradeAsync(server.WebSocketUri, "http://localhost:5173");
        var bareDomain = await UpgradeAsync(server.WebSocketUri, "https://example.com");
        var wrongScheme = await UpgradeAsync(server.WebSocketUri, "http://chat.example.com");
        var lookalike = await UpgradeAsync(server.WebSocketUri, "https://evilexample.com");
        var otherHost = await UpgradeAsync(server.WebSocketUri, "https://app.example.org.evil.example");
        var same = await UpgradeAsync(server.WebSocketUri, $"http://127.0.0.1:{server.WebSocketUri.Port}");

        Assert.Multiple(() =>
        {
            Assert.That(exact, Is.EqualTo(HttpStatusCode.SwitchingProtocols));
            Assert.That(exactWithDefaultPort, Is.EqualTo(HttpStatusCode.SwitchingProtocols));
            Assert.That(subdomain, Is.EqualTo(HttpStatusCode.SwitchingProtocols));
            Assert.That(anyPort, Is.EqualTo(HttpStatusCode.SwitchingProtocols));
            Assert.That(same, Is.EqualTo(HttpStatusCode.SwitchingProtocols));
            Assert.That(bareDomain, Is.EqualTo(HttpStatusCode.Forbidden));
            Assert.That(wrongScheme, Is.EqualTo(HttpStatusCode.Forbidden));
            Assert.That(lookalike, Is.EqualTo(HttpStatusCode.Forbidden));
            Assert.That(otherHost, Is.EqualTo(HttpStatusCode.Forbidden));
        });
    }

    [Test]
    public async Task A_star_accepts_every_origin()
    {
        await using var server = await HostingTestServer.StartAsync(o => o.AllowedOrigins.Add("*"));

        Assert.That(await UpgradeAsync(server.WebSocketUri, "https://evil.example"), Is.EqualTo(HttpStatusCode.SwitchingProtocols));
        Assert.That(await UpgradeAsync(server.WebSocketUri, "null"), Is.EqualTo(HttpStatusCode.SwitchingProtocols));
    }

    [Test]
    public async Task A_refused_origin_opens_no_session_and_is_counted()
    {
        await using var server = await HostingTestServer.StartAsync();
        using var refusals = new BrokerMeter(server.Services);

        var evil = await UpgradeAsync(server.WebSocketUri, "https://evil.example");

        Assert.That(evil, Is.EqualTo(HttpStatusCode.Forbidden));
        Assert.That(refusals["broker.connections.refused{reason=origin}"], Is.EqualTo(1));
        Assert.That(server.Services.GetService<Broker.Sessions.StompSessionRegistry>()!.Count, Is.Zero);
    }

    [Test]
    public async Task The_executables_demo_page_connects_from_its_own_origin_and_a_foreign_page_does_not()
    {
        await using var server = await ServerProcess.StartAsync();
        var page = new Uri($"http://{server.WebSocketUri.Authority}/");
        using var http = new HttpClient();
        var html = await http.GetStringAsync(page);
        var pageOrigin = $"{page.Scheme}://{page.Authority}";

        var (client, _) = await StompTestClient.ConnectWebSocketAsync(server.WebSocketUri, o => o.SetRequestHeader("Origin", pageOrigin), "v12.stomp");
        await using var _1 = client;
        var connected = await client.ConnectAsync();
        var foreign = await UpgradeAsync(server.WebSocketUri, "https://evil.example");

        Assert.That(html, Does.Contain("new WebSocket(url, ['v12.stomp'])"));
        Assert.That(connected.Command, Is.EqualTo(StompCommand.Connected), connected.ToString());
        Assert.That(foreign, Is.EqualTo(HttpStatusCode.Forbidden));

        // The child process's log line arrives through its stdout after the 403: wait for it.
        await server.WaitForOutputAsync(l => l.Contains("origin https://evil.example", StringComparison.Ordinal), 1, "the refusal's log line");
    }

    [TestCase("https://app.example.com/path")]
    [TestCase("ftp://files.example.com")]
    [TestCase("https://*.example.*")]
    [TestCase("https://a*.example.com")]
    [TestCase("https://*.example.com:http")]
    [TestCase("example.com")]
    public void A_malformed_allowed_origin_stops_the_start_with_its_name(string entry)
    {
        var options = new StompBrokerOptions { AllowedOrigins = [entry] };

        var error = Assert.Throws<InvalidOperationException>(() => _ = new OriginPolicy(options));

        Assert.That(error!.Message, Does.Contain("Broker:AllowedOrigins").And.Contain(entry));
    }

    [Test]
    public void Same_origin_compares_scheme_host_and_port_with_default_ports_filled_in()
    {
        var policy = new OriginPolicy(new StompBrokerOptions());

        Assert.That(policy.IsAllowed(Request("http", "broker.example", "http://broker.example")), Is.True);
        Assert.That(policy.IsAllowed(Request("http", "broker.example:80", "http://broker.example")), Is.True);
        Assert.That(policy.IsAllowed(Request("https", "broker.example", "https://BROKER.example:443")), Is.True);
        Assert.That(policy.IsAllowed(Request("http", "broker.example", "https://broker.example")), Is.False);
        Assert.That(policy.IsAllowed(Request("http", "broker.example:8080", "http://broker.example")), Is.False);
        Assert.That(policy.IsAllowed(Request("http", "broker.example", "http://broker.example.evil")), Is.False);
        Assert.That(policy.IsAllowed(Request("http", "", "http://broker.example")), Is.False, "no Host, no same origin");
    }

    private static HttpRequest Request(string scheme, string host, string origin)
    {
        var context = new DefaultHttpContext();
        context.Request.Scheme = scheme;
        if (host.Length > 0)
        {
            context.Request.Host = new HostString(host);
        }

        context.Request.Headers.Origin = origin;
        return context.Request;
    }

    /// <summary>The status of a WebSocket upgrade with the given Origin (101 when accepted).</summary>
    private static async Task<HttpStatusCode> UpgradeAsync(Uri uri, string? origin)
    {
        using var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        socket.Options.AddSubProtocol("v12.stomp");
        if (origin is not null)
        {
            socket.Options.SetRequestHeader("Origin", origin);
        }

        try
        {
            await socket.ConnectAsync(uri, CancellationToken.None);
        }
        catch (WebSocketException)
        {
            return socket.HttpStatusCode;
        }

        var status = socket.HttpStatusCode;
        await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
        return status;
    }
}
