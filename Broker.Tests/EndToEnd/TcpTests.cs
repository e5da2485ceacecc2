using System.Net.Sockets;
using System.Text;
using Broker.Protocol;
using NUnit.Framework;

namespace Broker.Tests.EndToEnd;

[TestFixture]
public sealed class TcpTests
{
    [Test]
    public async Task A_one_mebibyte_body_round_trips_over_tcp()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await client.ConnectAsync();
        await client.SubscribeAndWaitAsync("s", "/queue/tcp-large");
        var body = Encoding.UTF8.GetBytes(new string('a', 1024 * 1024));

        await client.SendFrameAsync(StompCommand.Send, [("destination", "/queue/tcp-large")], body);

        Assert.That((await client.ReceiveAsync()).Body, Is.EqualTo(body));
    }

    [Test]
    public async Task An_oversized_frame_gets_its_error_before_the_close()
    {
        await using var server = await TestServer.StartAsync(o => o.MaxFrameSize = 4096);
        for (var i = 0; i < 5; i++)
        {
            await using var client = await StompTestClient.ConnectTcpAsync(server.TcpPort);
            await client.ConnectAsync();

            await client.SendRawAsync("SEND\ndestination:/topic/x\ncontent-length:100000\n\n" + new string('z', 100_000) + "\0");
            var error = await client.ReceiveAsync();

            Assert.That(error["message"], Does.Contain("max-frame-size"));
            Assert.That(await client.WaitClosedAsync(), Is.True);
        }
    }

    [Test]
    public async Task A_consumer_that_stops_reading_is_closed_and_others_carry_on()
    {
        await using var server = await TestServer.StartAsync(o => o.MaxPendingBytes = 256 * 1024);
        using var stalled = new TcpClient();
        stalled.ReceiveBufferSize = 4096;
        await stalled.ConnectAsync("127.0.0.1", server.TcpPort);
        var stream = stalled.GetStream();
        await stream.WriteAsync(Encoding.UTF8.GetBytes("CONNECT\naccept-version:1.2\n\n\0SUBSCRIBE\nid:s\ndestination:/topic/flood\nreceipt:r\n\n\0"));
        await using var healthy = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await healthy.ConnectAsync();
        await healthy.SubscribeAndWaitAsync("s", "/topic/healthy");
        await using var publisher = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await publisher.ConnectAsync();
        await Task.Delay(200); // let the stalled client's SUBSCRIBE land (it reads nothing, so no receipt can be awaited)

        // Publish until the stalled subscriber has been cut off: its socket reaches end-of-stream.
        var payload = new string('x', 16 * 1024);
        var closed = false;
        for (var i = 0; i < 2000 && !closed; i++)
        {
            await publisher.PublishAsync("/topic/flood", payload);
            if (i % 50 == 49)
            {
                await publisher.PublishAsync("/topic/healthy", $"still-{i}", ("receipt", $"r{i}"));
                await publisher.ExpectReceiptAsync($"r{i}");
                closed = await DrainedToEnd(stalled.Client);
            }
        }

        Assert.That(closed, Is.True, "the stalled consumer was disconnected");
        Assert.That((await healthy.ReceiveAsync()).BodyText, Does.StartWith("still-"));
        await publisher.PublishAsync("/topic/healthy", "after", ("receipt", "last"));
        await publisher.ExpectReceiptAsync("last");
    }

    // Reads whatever is buffered without blocking; true when the server has closed the socket.
    private static async Task<bool> DrainedToEnd(Socket socket)
    {
        var buffer = new byte[64 * 1024];
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));
        try
        {
            while (true)
            {
                var n = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
                if (n == 0)
                {
                    return true;
                }
            }
        }
        catch (OperationCanceledException)
        {
            return false;
        }
        catch (SocketException)
        {
            return true;
        }
    }
}
