using System.Net;
using System.Net.Sockets;
using System.Text;
using Broker.Protocol;
using Broker.Sessions;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace Broker.Tests.Hosting;

/// <summary>
/// Issue 11 item 6 on raw TCP: while a CONNECT waits for its authenticator, the session reads on (Kestrel would
/// otherwise buffer up to its pipe's pause threshold, 1 MiB or more, per connection). Behind a CONNECT not yet
/// answered a client may send at most <c>max-frame-size-before-connect</c>; past it, ERROR naming the limit, at once,
/// not when the authenticator is done. Less than that is kept and handled in order once CONNECTED.
/// </summary>
[TestFixture]
public sealed class TcpBeforeConnectTests
{
    private const int KiB = 1024;
    private const int Attackers = 8;

    [Test]
    public async Task Connections_pushing_1_MiB_behind_a_pending_CONNECT_get_an_ERROR_naming_the_limit_while_it_waits()
    {
        var authenticator = new HeldAuthenticator();

        // Login throttling off: it would check only two held logins of one address at once, and every attacker's
        // CONNECT is to be in the authenticator.
        await using var server = await TestServer.StartAsync(
            o => o.LoginThrottling.Enabled = false,
            services: s => s.AddSingleton<IStompAuthenticator>(authenticator));
        using var meter = new BrokerMeter(server.Services);
        await using var bystander = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        Assert.That((await bystander.ConnectAsync(login: HeldAuthenticator.Immediate)).Command, Is.EqualTo(StompCommand.Connected));

        var attackers = new List<StompTestClient>();
        var sends = new List<Task>();
        try
        {
            for (var i = 0; i < Attackers; i++)
            {
                var attacker = await StompTestClient.ConnectTcpAsync(server.TcpPort);
                attackers.Add(attacker);
                sends.Add(attacker.SendRawAsync(ConnectThenSend(1024 * KiB, "login:attacker\n")));
            }

            await Eventually.That(() => authenticator.Held == Attackers, "every attacker's CONNECT reached the authenticator");

            // Still held: each attacker has its ERROR and is closed, and everyone else is served meanwhile.
            foreach (var attacker in attackers)
            {
                var error = await attacker.ReceiveAsync();
                Assert.That(error.Command, Is.EqualTo(StompCommand.Error), error.ToString());
                Assert.That(error["message"], Does.Contain("max-frame-size-before-connect"));
                Assert.That(await attacker.WaitClosedAsync(), Is.True, "closed after its ERROR");
            }

            Assert.That(authenticator.Held, Is.EqualTo(Attackers), "no CONNECT was answered by the authenticator yet");
            await Eventually.That(() => authenticator.Canceled == Attackers, "the refused connections' authentications were canceled");
            Assert.That(meter["broker.limits.exceeded{limit=max-frame-size-before-connect}"], Is.EqualTo(Attackers));
            await RoundTripAsync(bystander, "while-held");
            authenticator.Release();
            await RoundTripAsync(bystander, "after-release");
            Assert.That(attackers.Select(a => a.TryTake()), Is.All.Null, "nothing (no CONNECTED) after the ERROR");
        }
        finally
        {
            authenticator.Release();
            foreach (var attacker in attackers)
            {
                await attacker.DisposeAsync();
            }
        }

        await Task.WhenAny(Task.WhenAll(sends), Task.Delay(StompTestClient.DefaultTimeout)); // the refused sends may fail; nothing to assert
    }

    [Test]
    public async Task Frames_pipelined_behind_a_CONNECT_the_authenticator_holds_are_handled_in_order_once_CONNECTED()
    {
        var authenticator = new HeldAuthenticator(acceptWhenReleased: true);
        await using var server = await TestServer.StartAsync(services: s => s.AddSingleton<IStompAuthenticator>(authenticator));
        await using var client = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        var body = new string('p', 32 * KiB);

        // CONNECT, SUBSCRIBE and a 32 KiB SEND to it in one write: under the limit, so it waits for CONNECTED.
        await client.SendRawAsync(
            "CONNECT\naccept-version:1.2\nhost:/\nlogin:held\n\n\0"
            + "SUBSCRIBE\nid:s\ndestination:/queue/pipelined\nreceipt:sub\n\n\0"
            + $"SEND\ndestination:/queue/pipelined\nreceipt:sent\ncontent-length:{body.Length}\n\n{body}\0");
        await Eventually.That(() => authenticator.Held == 1, "the CONNECT reached the authenticator");
        Assert.That(await client.TryReceiveAsync(TimeSpan.FromMilliseconds(200)), Is.Null, "nothing is answered while the CONNECT waits");

        authenticator.Release();

        Assert.That((await client.ReceiveAsync()).Command, Is.EqualTo(StompCommand.Connected));
        Assert.That((await client.ReceiveAsync())["receipt-id"], Is.EqualTo("sub"));
        var rest = new[] { await client.ReceiveAsync(), await client.ReceiveAsync() };
        Assert.That(rest.Select(f => f.Command), Is.EquivalentTo(new[] { StompCommand.Receipt, StompCommand.Message }));
        Assert.That(rest.Single(f => f.Command == StompCommand.Message).BodyText, Is.EqualTo(body));
    }

    [Test]
    public async Task A_CONNECT_refused_after_its_wait_gets_its_ERROR_and_nothing_behind_it_is_handled()
    {
        var authenticator = new HeldAuthenticator();
        await using var server = await TestServer.StartAsync(services: s => s.AddSingleton<IStompAuthenticator>(authenticator));
        await using var watcher = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        Assert.That((await watcher.ConnectAsync(login: HeldAuthenticator.Immediate)).Command, Is.EqualTo(StompCommand.Connected));
        await watcher.SubscribeAndWaitAsync("w", "/topic/behind-refused");
        await using var client = await StompTestClient.ConnectTcpAsync(server.TcpPort);

        await client.SendRawAsync("CONNECT\naccept-version:1.2\nhost:/\nlogin:refused\n\n\0SEND\ndestination:/topic/behind-refused\n\nleaked\0");
        await Eventually.That(() => authenticator.Held == 1, "the CONNECT reached the authenticator");
        authenticator.Release();

        var error = await client.ReceiveAsync();
        Assert.That(error.Command, Is.EqualTo(StompCommand.Error), error.ToString());
        Assert.That(await client.WaitClosedAsync(), Is.True);
        await watcher.PublishAsync("/topic/behind-refused", "marker");
        Assert.That((await watcher.ReceiveAsync()).BodyText, Is.EqualTo("marker"), "the SEND behind the refused CONNECT went nowhere");
    }

    [Test]
    public async Task Frames_behind_a_held_CONNECT_from_a_client_that_then_half_closes_are_still_handled()
    {
        var authenticator = new HeldAuthenticator(acceptWhenReleased: true);
        await using var server = await TestServer.StartAsync(services: s => s.AddSingleton<IStompAuthenticator>(authenticator));
        var (client, socket) = await RawClientAsync(server);
        await using var _ = client;

        // A script piped through `nc -N`: everything, then the end of its input.
        await client.SendRawAsync("CONNECT\naccept-version:1.2\nhost:/\nlogin:held\n\n\0SEND\ndestination:/queue/half-closed\nreceipt:r1\n\nbody\0");
        socket.Shutdown(SocketShutdown.Send);
        await Eventually.That(() => authenticator.Held == 1, "the CONNECT reached the authenticator");
        authenticator.Release();

        Assert.That((await client.ReceiveAsync()).Command, Is.EqualTo(StompCommand.Connected));
        var receipt = await client.ReceiveAsync();
        Assert.That(receipt.Command, Is.EqualTo(StompCommand.Receipt), receipt.ToString());
        Assert.That(receipt["receipt-id"], Is.EqualTo("r1"));
    }

    [Test]
    public async Task Too_much_behind_a_held_CONNECT_then_the_end_of_input_still_gets_the_ERROR()
    {
        var authenticator = new HeldAuthenticator();
        await using var server = await TestServer.StartAsync(services: s => s.AddSingleton<IStompAuthenticator>(authenticator));
        var (client, socket) = await RawClientAsync(server);
        await using var _ = client;

        await client.SendRawAsync(ConnectThenSend(256 * KiB, "login:held\n"));
        socket.Shutdown(SocketShutdown.Send);

        var error = await client.ReceiveAsync();
        Assert.That(error.Command, Is.EqualTo(StompCommand.Error), error.ToString());
        Assert.That(error["message"], Does.Contain("max-frame-size-before-connect"));
        Assert.That(await client.WaitClosedAsync(), Is.True);
        authenticator.Release();
    }

    [Test]
    public async Task A_connection_reset_while_its_CONNECT_waits_ends_only_once_the_authenticator_answers()
    {
        var authenticator = new HeldAuthenticator(acceptWhenReleased: true);
        await using var server = await TestServer.StartAsync(services: s => s.AddSingleton<IStompAuthenticator>(authenticator));
        var registry = server.Services.GetRequiredService<StompSessionRegistry>();
        await using var bystander = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        Assert.That((await bystander.ConnectAsync(login: HeldAuthenticator.Immediate)).Command, Is.EqualTo(StompCommand.Connected));
        var (client, socket) = await RawClientAsync(server);

        await client.SendRawAsync("CONNECT\naccept-version:1.2\nhost:/\nlogin:reset\n\n\0");
        await Eventually.That(() => authenticator.Held == 1, "the CONNECT reached the authenticator");
        socket.LingerState = new LingerOption(true, 0);
        await client.DisposeAsync(); // closing with linger 0: a reset

        // The session (and so its place under the connection limits) lasts until the authenticator answers: a
        // connect-CONNECT-reset loop cannot run more authentications at once than the limits allow.
        await RoundTripAsync(bystander, "during-wait");
        Assert.That(registry.Count, Is.EqualTo(2), "the reset connection's session waits for its CONNECT");
        authenticator.Release();
        await Eventually.That(() => registry.Count == 1, "the reset connection's session ended");
        await RoundTripAsync(bystander, "after-reset");
        Assert.That(registry.SessionsOf("reset"), Is.Empty, "no session of the reset connection is left for its user");
    }

    private static async Task<(StompTestClient Client, Socket Socket)> RawClientAsync(TestServer server)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(IPAddress.Loopback, server.TcpPort);
        return (StompTestClient.OverStream(new NetworkStream(socket, ownsSocket: true)), socket);
    }

    internal static string ConnectThenSend(int bodySize, string login) =>
        $"CONNECT\naccept-version:1.2\nhost:/\n{login}\n\0"
        + $"SEND\ndestination:/queue/before-connect\nreceipt:big\ncontent-length:{bodySize}\n\n" + new string('b', bodySize) + "\0";

    internal static async Task RoundTripAsync(StompTestClient client, string receipt)
    {
        await client.PublishAsync("/queue/before-connect-bystander", receipt, ("receipt", receipt));
        await client.ExpectReceiptAsync(receipt);
    }
}
