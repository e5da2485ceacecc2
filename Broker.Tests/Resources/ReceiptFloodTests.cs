using Broker.Protocol;
using Broker.Resources;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace Broker.Tests.Resources;

/// <summary>
/// A client that asks for RECEIPTs (large ones, on BEGIN/ABORT) and never reads them: they count against
/// max-pending-bytes like MESSAGEs, so it is closed as a slow consumer with the ERROR naming the limit instead of
/// its outbox growing without bound; what it held is given back and another client is served meanwhile. (The
/// ERROR is sent, but a client still writing when its connection closes may lose it to the TCP reset: it sees the
/// connection closed, and the limit is counted.)
/// </summary>
[TestFixture]
public sealed class ReceiptFloodTests
{
    private const int MaxPendingBytes = 256 * 1024;
    private const int Pairs = 2000;

    [Test]
    public async Task Receipts_a_client_does_not_read_make_it_a_slow_consumer_with_the_limit_named()
    {
        await using var server = await TestServer.StartAsync(o => o.MaxPendingBytes = MaxPendingBytes);
        var budget = server.Services.GetRequiredService<MemoryBudget>();
        using var meter = new BrokerMeter(server.Services);
        await using var attacker = await StompTestClient.ConnectTcpAsync(server.TcpPort, receiveBufferSize: 16 * 1024);
        await attacker.ConnectAsync();
        attacker.PauseReading();

        // 2,000 BEGIN/ABORT pairs with 4 KB receipts: 16 MB of RECEIPTs asked for, far past the limit and the socket buffers.
        var receipt = new string('r', 4000);
        var flooding = Task.Run(async () =>
        {
            try
            {
                for (var i = 0; i < Pairs; i++)
                {
                    await attacker.SendRawAsync($"BEGIN\ntransaction:t{i}\nreceipt:{receipt}\n\n\0ABORT\ntransaction:t{i}\nreceipt:{receipt}\n\n\0");
                }
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or ObjectDisposedException)
            {
                // Closed under us as a slow consumer: expected.
            }
        });

        // Meanwhile another client's round trip works.
        await using var ordinary = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await ordinary.ConnectAsync();
        await ordinary.SubscribeAndWaitAsync("s", "/topic/receipt-flood.ordinary");
        await ordinary.PublishAsync("/topic/receipt-flood.ordinary", "still served");
        Assert.That((await ordinary.ReceiveAsync()).BodyText, Is.EqualTo("still served"));

        await flooding.WaitAsync(TimeSpan.FromSeconds(60));
        attacker.ResumeReading();
        var receipts = 0;
        string? error = null;
        try
        {
            ReceivedFrame frame;
            while ((frame = await attacker.ReceiveAsync(TimeSpan.FromSeconds(30))).Command == StompCommand.Receipt)
            {
                receipts++;
            }

            Assert.That(frame.Command, Is.EqualTo(StompCommand.Error), frame.ToString());
            error = frame["message"];
        }
        catch (InvalidOperationException e) when (e.Message.Contains("closed", StringComparison.Ordinal))
        {
            // Reset with the ERROR still in flight.
        }

        Assert.That(error ?? "max-pending-bytes", Does.Contain("max-pending-bytes"));
        Assert.That(receipts, Is.LessThan(2 * Pairs), "the flood was cut short");
        Assert.That(await attacker.WaitClosedAsync(), Is.True);
        Assert.That(meter.Value("broker.limits.exceeded", "max-pending-bytes"), Is.EqualTo(1));
        await Eventually.That(() => budget.UsedBy(MemoryComponent.Outboxes) == 0, "what it held given back");
    }
}
