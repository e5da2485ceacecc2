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

    private static string ConnectThenSend(int bodySize, string login) =>
        $"CONNECT\naccept-version:1.2\nhost:/\n{login}\n\0"
        + $"SEND\ndestination:/queue/before-connect\nreceipt:big\ncontent-length:{bodySize}\n\n" + new string('b', bodySize) + "\0";

    private static async Task RoundTripAsync(StompTestClient client, string receipt)
    {
        await client.PublishAsync("/queue/before-connect-bystander", receipt, ("receipt", receipt));
        await client.ExpectReceiptAsync(receipt);
    }
}
