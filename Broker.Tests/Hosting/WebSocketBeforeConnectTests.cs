using System.Text;
using Broker.Protocol;
using Broker.Sessions;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace Broker.Tests.Hosting;

/// <summary>
/// Issue 11 item 6 on the WebSocket transport: before its CONNECT is accepted a connection makes the server read
/// (and so hold) at most about <c>max-frame-size-before-connect</c>, however much the client pushes behind it, and
/// once CONNECTED the pipelined rest is read as usual.
/// </summary>
[TestFixture]
public sealed class WebSocketBeforeConnectTests
{
    private const int KiB = 1024;
    private const int Attackers = 8;

    // max-frame-size-before-connect (64 KiB, the default) and one 4 KiB read.
    private const long HeldPerConnection = 64 * KiB + 4 * KiB;

    // The bystander's own CONNECT frame, also read before it is CONNECTED.
    private const long BystanderConnect = 1 * KiB;

    [Test]
    public async Task Connections_pushing_1_MiB_behind_a_pending_CONNECT_are_read_no_further_than_the_before_connect_limit()
    {
        var authenticator = new HeldAuthenticator();

        // Login throttling off: it would let only FreeAttempts (2) of these held logins from one address be checked at
        // once (the rest wait their turn, as they should), and this test needs all of them held in the authenticator.
        await using var server = await TestServer.StartAsync(
            o => o.LoginThrottling.Enabled = false,
            services: s => s.AddSingleton<IStompAuthenticator>(authenticator));
        using var meter = new BrokerMeter(server.Services);
        var (bystander, _) = await StompTestClient.ConnectWebSocketAsync(server.WebSocketUri, "v12.stomp");
        await using var _1 = bystander;
        Assert.That((await bystander.ConnectAsync(login: "bystander")).Command, Is.EqualTo(StompCommand.Connected));

        // Each attacker: a CONNECT whose authentication the server holds, then a 1 MiB SEND in the same message.
        var attackers = new List<StompTestClient>();
        var sends = new List<Task>();
        try
        {
            for (var i = 0; i < Attackers; i++)
            {
                var (attacker, _) = await StompTestClient.ConnectWebSocketAsync(server.WebSocketUri, "v12.stomp");
                attackers.Add(attacker);
                sends.Add(attacker.SendRawAsync(TcpBeforeConnectTests.ConnectThenSend(1024 * KiB, "login:attacker\n")));
            }

            await Eventually.That(() => authenticator.Held == Attackers, "every attacker's CONNECT reached the authenticator");

            // While they wait, the server serves everyone else; then it refuses them all.
            await TcpBeforeConnectTests.RoundTripAsync(bystander, "while-held");
            authenticator.Release();
            foreach (var attacker in attackers)
            {
                Assert.That(await attacker.WaitClosedAsync(), Is.True, "a refused attacker is closed");
            }

            // Without the before-connect bound the server read each attacker's whole 1 MiB while it waited.
            var read = meter["broker.io.read_before_connect"];
            Assert.That(read, Is.GreaterThan(0), "the counter counts what was read before CONNECT");
            Assert.That(read, Is.LessThanOrEqualTo((Attackers * HeldPerConnection) + BystanderConnect), $"bytes read before CONNECT from {Attackers} connections and the bystander");
            await TcpBeforeConnectTests.RoundTripAsync(bystander, "after-refusal");
        }
        finally
        {
            foreach (var attacker in attackers)
            {
                await attacker.DisposeAsync();
            }
        }

        await Task.WhenAny(Task.WhenAll(sends), Task.Delay(StompTestClient.DefaultTimeout)); // the refused sends fail; nothing to assert
    }

    [Test]
    public async Task A_1_MiB_SEND_pipelined_behind_CONNECT_is_read_once_the_client_is_CONNECTED()
    {
        await using var server = await TestServer.StartAsync();
        var (client, _) = await StompTestClient.ConnectWebSocketAsync(server.WebSocketUri, "v12.stomp");
        await using var _1 = client;

        await client.SendRawAsync(TcpBeforeConnectTests.ConnectThenSend(1024 * KiB, ""));

        Assert.That((await client.ReceiveAsync()).Command, Is.EqualTo(StompCommand.Connected));
        var receipt = await client.ReceiveAsync();
        Assert.That(receipt.Command, Is.EqualTo(StompCommand.Receipt), receipt.ToString());
        Assert.That(receipt["receipt-id"], Is.EqualTo("big"));
    }
}
