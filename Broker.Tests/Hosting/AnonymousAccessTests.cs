using System.Net;
using Broker.Hosting;
using Broker.Protocol;
using Broker.Tests.EndToEnd;
using NUnit.Framework;

namespace Broker.Tests.Hosting;

/// <summary>
/// Who may connect without credentials, seen from real sockets: a client on loopback, and one that
/// reaches the server through a non-loopback address of this machine.
/// </summary>
[TestFixture]
public sealed class AnonymousAccessTests
{
    [Test]
    public async Task By_default_anonymous_clients_are_accepted_from_loopback_only()
    {
        var outside = MachineAddress.Require();
        await using var local = await HostingTestServer.StartAsync();
        await using var remote = await HostingTestServer.StartAsync(address: outside);

        await using var fromLoopback = await StompTestClient.ConnectTcpAsync(local.TcpPort);
        var loopbackTcp = await fromLoopback.ConnectAsync();
        var (wsLoopback, _) = await StompTestClient.ConnectWebSocketAsync(local.WebSocketUri, "v12.stomp");
        await using var _1 = wsLoopback;
        var loopbackWs = await wsLoopback.ConnectAsync();

        await using var fromOutside = await StompTestClient.ConnectTcpAsync(outside, remote.TcpPort);
        var outsideTcp = await fromOutside.ConnectAsync();
        var (wsOutside, _) = await StompTestClient.ConnectWebSocketAsync(remote.WebSocketUri, "v12.stomp");
        await using var _2 = wsOutside;
        var outsideWs = await wsOutside.ConnectAsync();
        // With no users configured, a login does not make a client less anonymous.
        await using var withLogin = await StompTestClient.ConnectTcpAsync(outside, remote.TcpPort);
        var outsideLogin = await withLogin.ConnectAsync(login: "someone", passcode: "anything");

        Assert.That(loopbackTcp.Command, Is.EqualTo(StompCommand.Connected), loopbackTcp.ToString());
        Assert.That(loopbackWs.Command, Is.EqualTo(StompCommand.Connected), loopbackWs.ToString());
        Assert.That(outsideTcp.Command, Is.EqualTo(StompCommand.Error));
        Assert.That(outsideTcp["message"], Does.Contain("anonymous clients are accepted from this machine only"));
        Assert.That(outsideWs.Command, Is.EqualTo(StompCommand.Error));
        Assert.That(outsideLogin.Command, Is.EqualTo(StompCommand.Error));
        Assert.That(await fromOutside.WaitClosedAsync(), Is.True, "the refused client is disconnected");
    }

    [Test]
    public async Task Once_a_user_is_configured_anonymous_clients_are_refused_even_from_loopback()
    {
        var outside = MachineAddress.Require();
        await using var local = await HostingTestServer.StartAsync(o => o.Users["alice"] = "s3cret");
        await using var remote = await HostingTestServer.StartAsync(o => o.Users["alice"] = "s3cret", outside);

        await using var anonymousLocal = await StompTestClient.ConnectTcpAsync(local.TcpPort);
        var refusedLocal = await anonymousLocal.ConnectAsync();
        await using var aliceLocal = await StompTestClient.ConnectTcpAsync(local.TcpPort);
        var acceptedLocal = await aliceLocal.ConnectAsync(login: "alice", passcode: "s3cret");
        await using var anonymousOutside = await StompTestClient.ConnectTcpAsync(outside, remote.TcpPort);
        var refusedOutside = await anonymousOutside.ConnectAsync();
        var (aliceOutside, _) = await StompTestClient.ConnectWebSocketAsync(remote.WebSocketUri, "v12.stomp");
        await using var _1 = aliceOutside;
        var acceptedOutside = await aliceOutside.ConnectAsync(login: "alice", passcode: "s3cret");

        Assert.That(refusedLocal.Command, Is.EqualTo(StompCommand.Error));
        Assert.That(refusedLocal["message"], Is.EqualTo("authentication required: send login and passcode"));
        Assert.That(refusedOutside.Command, Is.EqualTo(StompCommand.Error));
        Assert.That(acceptedLocal["user-name"], Is.EqualTo("alice"));
        Assert.That(acceptedOutside["user-name"], Is.EqualTo("alice"));
    }

    [Test]
    public async Task AllowAnonymous_true_accepts_anonymous_clients_from_other_addresses_and_with_users()
    {
        var outside = MachineAddress.Require();
        await using var remote = await HostingTestServer.StartAsync(o =>
        {
            o.Users["alice"] = "s3cret";
            o.AllowAnonymous = true;
        }, outside);

        await using var anonymous = await StompTestClient.ConnectTcpAsync(outside, remote.TcpPort);
        var connected = await anonymous.ConnectAsync();
        await using var wrong = await StompTestClient.ConnectTcpAsync(outside, remote.TcpPort);
        var refused = await wrong.ConnectAsync(login: "alice", passcode: "wrong");

        Assert.That(connected.Command, Is.EqualTo(StompCommand.Connected), connected.ToString());
        Assert.That(connected["user-name"], Is.Null);
        Assert.That(refused.Command, Is.EqualTo(StompCommand.Error), "a wrong passcode is still refused");
    }

    [Test]
    public async Task AllowAnonymous_false_refuses_anonymous_clients_on_loopback_without_users()
    {
        await using var server = await HostingTestServer.StartAsync(o => o.AllowAnonymous = false);
        await using var client = await StompTestClient.ConnectTcpAsync(server.TcpPort);

        var refused = await client.ConnectAsync();

        Assert.That(refused.Command, Is.EqualTo(StompCommand.Error));
        Assert.That(refused["message"], Is.EqualTo("authentication required: send login and passcode"));
    }

    [Test]
    public async Task The_startup_log_says_once_which_policy_holds()
    {
        await using var open = await HostingTestServer.StartAsync();
        await using var users = await HostingTestServer.StartAsync(o => o.Users["alice"] = "s3cret");
        await using var everywhere = await HostingTestServer.StartAsync(o => o.AllowAnonymous = true);

        static bool Policy(string line) => line.Contains("Anonymous clients are", StringComparison.Ordinal);

        Assert.That(open.Logs.Lines.Where(Policy), Has.Exactly(1).Contains("accepted from loopback only"));
        Assert.That(users.Logs.Lines.Where(Policy), Has.Exactly(1).Contains("refused: users are configured"));
        Assert.That(everywhere.Logs.Lines.Where(Policy), Has.Exactly(1).Contains("accepted from any address"));
    }

    [Test]
    public void The_policy_applies_to_any_authenticator_that_answers_anonymous()
    {
        var policy = new AnonymousAccessPolicy(new StompBrokerOptions());
        var anonymous = Broker.Sessions.StompAuthResult.Anonymous();
        var dave = Broker.Sessions.StompAuthResult.Authenticated("dave");
        var outside = new IPEndPoint(IPAddress.Parse("203.0.113.7"), 4000);

        Assert.That(policy.Apply(anonymous, new IPEndPoint(IPAddress.Loopback, 4000)).Succeeded, Is.True);
        Assert.That(policy.Apply(anonymous, new IPEndPoint(IPAddress.IPv6Loopback, 4000)).Succeeded, Is.True);
        Assert.That(policy.Apply(anonymous, new IPEndPoint(IPAddress.Parse("::ffff:127.0.0.1"), 4000)).Succeeded, Is.True);
        Assert.That(policy.Apply(anonymous, outside).Succeeded, Is.False);
        Assert.That(policy.Apply(anonymous, new IPEndPoint(IPAddress.Parse("::ffff:203.0.113.7"), 4000)).Succeeded, Is.False);
        Assert.That(policy.Apply(dave, outside).Principal, Is.EqualTo("dave"));
    }

    [Test]
    public async Task The_executable_accepts_anonymous_clients_on_loopback_and_refuses_them_on_its_other_address()
    {
        var outside = MachineAddress.Require();
        await using var server = await ServerProcess.StartAsync([$"--Broker:Server:ListenAddress={outside}"]);
        await using var client = await StompTestClient.ConnectTcpAsync(outside, server.TcpPort);

        var refused = await client.ConnectAsync();

        Assert.That(refused.Command, Is.EqualTo(StompCommand.Error));
        Assert.That(server.Output, Does.Contain("Anonymous clients are accepted from loopback only"));
    }

    [Test]
    public async Task The_executable_with_default_settings_logs_its_policy_and_takes_anonymous_loopback_clients()
    {
        await using var server = await ServerProcess.StartAsync();
        await using var client = await StompTestClient.ConnectTcpAsync(server.TcpPort);

        var connected = await client.ConnectAsync();

        Assert.That(connected.Command, Is.EqualTo(StompCommand.Connected));
        Assert.That(server.Output.Split('\n').Count(l => l.Contains("Anonymous clients are accepted from loopback only", StringComparison.Ordinal)), Is.EqualTo(1), server.Output);
    }

    [Test]
    public async Task Behind_a_proxy_with_ForwardedHeaders_the_forwarded_client_address_counts()
    {
        // The proxy is on loopback (trusted); the client it forwards is not.
        await using var server = await ServerProcess.StartAsync(["--Broker:Server:ForwardedHeaders=true"]);
        var (forwarded, _) = await StompTestClient.ConnectWebSocketAsync(server.WebSocketUri, o => o.SetRequestHeader("X-Forwarded-For", "203.0.113.7"), "v12.stomp");
        await using var _1 = forwarded;
        var (direct, _) = await StompTestClient.ConnectWebSocketAsync(server.WebSocketUri, "v12.stomp");
        await using var _2 = direct;

        var refused = await forwarded.ConnectAsync();
        var accepted = await direct.ConnectAsync();

        Assert.That(refused.Command, Is.EqualTo(StompCommand.Error));
        Assert.That(refused["message"], Does.Contain("from this machine only"));
        Assert.That(accepted.Command, Is.EqualTo(StompCommand.Connected));
    }
}
