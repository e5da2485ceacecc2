using System.Net.Sockets;
using System.Text;
using Broker.Protocol;
using NUnit.Framework;

namespace Broker.Tests.Sessions;

/// <summary>
/// Issue 11 item 6, over real sockets with the default configuration: before CONNECT a client can make the
/// server hold at most <c>max-frame-size-before-connect</c> (64 KiB), a CONNECT with a body is refused at its
/// first body bytes, and the limit is lifted once the client is CONNECTED. Everyone else keeps being served.
/// </summary>
[TestFixture]
public sealed class PreConnectLimitTests
{
    private const int KiB = 1024;
    private const int BeforeConnectLimit = 64 * KiB;
    private const string BodyRule = "CONNECT frames must not have a body";

    [Test]
    public async Task A_CONNECT_with_a_2_MiB_body_is_refused_at_its_first_body_bytes_and_closed()
    {
        await using var server = await TestServer.StartAsync();
        await using var bystander = await ConnectedAsync(server);
        await using var attacker = await StompTestClient.ConnectTcpAsync(server.TcpPort);

        // The first 16 KiB of a 2 MiB body: the server must answer without the other 2032 KiB.
        await attacker.SendRawAsync("CONNECT\naccept-version:1.2\nhost:/\n\n" + new string('b', 16 * KiB));
        var error = await attacker.ReceiveAsync();

        Assert.That(error.Command, Is.EqualTo(StompCommand.Error), error.ToString());
        Assert.That(error["message"], Does.Contain(BodyRule));
        Assert.That(await attacker.WaitClosedAsync(), Is.True, "the connection is closed");
        await RoundTripAsync(bystander, "after-body");
    }

    [Test]
    public async Task A_CONNECT_declaring_a_2_MiB_body_is_refused_at_its_blank_line_naming_the_limit()
    {
        await using var server = await TestServer.StartAsync();
        await using var bystander = await ConnectedAsync(server);
        await using var attacker = await StompTestClient.ConnectTcpAsync(server.TcpPort);

        await attacker.SendRawAsync("CONNECT\naccept-version:1.2\nhost:/\ncontent-length:2097152\n\n");
        var error = await attacker.ReceiveAsync();

        Assert.That(error.Command, Is.EqualTo(StompCommand.Error), error.ToString());
        Assert.That(error["message"], Does.Contain("max-frame-size-before-connect"));
        Assert.That(error.BodyText, Does.Contain("max-frame-size-before-connect"));
        Assert.That(await attacker.WaitClosedAsync(), Is.True);
        await RoundTripAsync(bystander, "after-declared-body");
    }

    [Test]
    public async Task Headers_of_100_KiB_before_CONNECT_are_refused_once_they_pass_64_KiB()
    {
        await using var server = await TestServer.StartAsync();
        await using var bystander = await ConnectedAsync(server);
        await using var attacker = await StompTestClient.ConnectTcpAsync(server.TcpPort);

        // 50 header lines of 2 KiB, never ending: each line and the header count are within their own
        // limits, and without the limit the server would wait for the blank line.
        var (error, _) = await TrickleAsync(attacker, HeaderLines("CONNECT\naccept-version:1.2\nhost:/\n", 50), 101 * KiB);

        Assert.That(error.Command, Is.EqualTo(StompCommand.Error), error.ToString());
        Assert.That(error["message"], Does.Contain("max-frame-size-before-connect"));
        Assert.That(await attacker.WaitClosedAsync(), Is.True);
        await RoundTripAsync(bystander, "after-headers");
    }

    [TestCase(8 * KiB, "max-header-line-length", TestName = "A 100 KiB header line before CONNECT is refused by max-header-line-length (default)")]
    [TestCase(1024 * KiB, "max-frame-size-before-connect", TestName = "A 100 KiB header line before CONNECT is refused by max-frame-size-before-connect when lines may be longer")]
    public async Task A_100_KiB_header_line_before_CONNECT_is_refused(int maxHeaderLineLength, string limit)
    {
        await using var server = await TestServer.StartAsync(o => o.MaxHeaderLineLength = maxHeaderLineLength);
        await using var bystander = await ConnectedAsync(server);
        await using var attacker = await StompTestClient.ConnectTcpAsync(server.TcpPort);

        var pieces = new[] { "CONNECT\naccept-version:1.2\nlogin:" }.Concat(Enumerable.Repeat(new string('u', 2 * KiB), 50));
        var (error, _) = await TrickleAsync(attacker, pieces, 100 * KiB + 64);

        Assert.That(error.Command, Is.EqualTo(StompCommand.Error), error.ToString());
        Assert.That(error["message"], Does.Contain(limit));
        Assert.That(await attacker.WaitClosedAsync(), Is.True);
        await RoundTripAsync(bystander, "after-line");
    }

    [Test]
    public async Task A_100_KiB_SEND_before_CONNECT_is_refused_by_the_before_connect_limit()
    {
        await using var server = await TestServer.StartAsync();
        await using var bystander = await ConnectedAsync(server);
        await using var attacker = await StompTestClient.ConnectTcpAsync(server.TcpPort);

        await attacker.SendRawAsync("SEND\ndestination:/queue/pre-connect\n\n" + new string('s', 100 * KiB) + "\0");
        var error = await attacker.ReceiveAsync();

        Assert.That(error["message"], Does.Contain("max-frame-size-before-connect"));
        Assert.That(await attacker.WaitClosedAsync(), Is.True);
        await RoundTripAsync(bystander, "after-send");
    }

    [Test]
    public async Task A_100_KiB_frame_before_CONNECT_over_WebSocket_is_refused_too()
    {
        await using var server = await TestServer.StartAsync();
        await using var bystander = await ConnectedAsync(server);
        await using var attacker = (await StompTestClient.ConnectWebSocketAsync(server.WebSocketUri, "v12.stomp")).Client;

        await attacker.SendRawAsync("SEND\ndestination:/queue/pre-connect\n\n" + new string('s', 100 * KiB) + "\0");
        var error = await attacker.ReceiveAsync();

        Assert.That(error["message"], Does.Contain("max-frame-size-before-connect"));
        Assert.That(await attacker.WaitClosedAsync(), Is.True);
        await RoundTripAsync(bystander, "after-websocket");
    }

    [Test]
    public async Task After_CONNECT_a_1_MiB_SEND_is_accepted()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = await ConnectedAsync(server);
        await client.SubscribeAndWaitAsync("big", "/queue/pre-connect-big");
        var body = Encoding.UTF8.GetBytes(new string('m', 1024 * KiB));

        await client.SendFrameAsync(StompCommand.Send, [("destination", "/queue/pre-connect-big"), ("receipt", "big")], body);

        var frames = new[] { await client.ReceiveAsync(), await client.ReceiveAsync() };
        Assert.That(frames.Select(f => f.Command), Is.EquivalentTo(new[] { StompCommand.Receipt, StompCommand.Message }));
        Assert.That(frames.Single(f => f.Command == StompCommand.Message).Body, Is.EqualTo(body));
    }

    [Test]
    public async Task Two_hundred_connections_trickling_2_MiB_CONNECTs_are_each_refused_within_64_KiB()
    {
        const int connections = 200;
        // 200 at once from 127.0.0.1 is past the connection rate's burst; that limit is ConnectionLimitTests' subject.
        await using var server = await TestServer.StartAsync(o => o.MaxConnectionRatePerAddress = 0);
        await using var bystander = await ConnectedAsync(server);

        // Half send a 2 MiB body after CONNECT's blank line, half 2 MiB of header lines; 1 KiB or 2 KiB at a time.
        async Task<(ReceivedFrame Error, long Sent, bool Closed, bool WithBody)> AttackAsync(int i)
        {
            await using var attacker = await StompTestClient.ConnectTcpAsync(server.TcpPort);
            var withBody = i % 2 == 0;
            var pieces = withBody
                ? new[] { "CONNECT\naccept-version:1.2\nhost:/\n\n" }.Concat(Enumerable.Repeat(new string('b', KiB), 2048))
                : HeaderLines("CONNECT\naccept-version:1.2\nhost:/\n", 1024);
            var (error, sent) = await TrickleAsync(attacker, pieces, BeforeConnectLimit + 4 * KiB);
            return (error, sent, await attacker.WaitClosedAsync(), withBody);
        }

        var attack = Task.WhenAll(Enumerable.Range(0, connections).Select(AttackAsync));
        for (var i = 0; i < 5; i++)
        {
            await RoundTripAsync(bystander, $"during-{i}");
        }

        var results = await attack;

        Assert.Multiple(() =>
        {
            foreach (var (error, sent, closed, withBody) in results)
            {
                Assert.That(error.Command, Is.EqualTo(StompCommand.Error), error.ToString());
                Assert.That(error["message"], Does.Contain(withBody ? BodyRule : "max-frame-size-before-connect"));
                Assert.That(sent, Is.LessThanOrEqualTo(BeforeConnectLimit + 4 * KiB));
                Assert.That(closed, Is.True, "closed after its ERROR");
            }
        });
        await RoundTripAsync(bystander, "after-all");
    }

    private static async Task<StompTestClient> ConnectedAsync(TestServer server)
    {
        var client = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        Assert.That((await client.ConnectAsync()).Command, Is.EqualTo(StompCommand.Connected));
        return client;
    }

    private static async Task RoundTripAsync(StompTestClient client, string receipt)
    {
        await client.PublishAsync("/queue/pre-connect-bystander", receipt, ("receipt", receipt));
        await client.ExpectReceiptAsync(receipt);
    }

    private static IEnumerable<string> HeaderLines(string head, int count) =>
        new[] { head }.Concat(Enumerable.Range(0, count).Select(i => $"h{i}:{new string('v', 2 * KiB - 8)}\n"));

    // Sends the pieces one write at a time until the server answers, closes, or maxBytes would be
    // passed; then waits for the answer. Returns it with the bytes sent.
    private static async Task<(ReceivedFrame Answer, long Sent)> TrickleAsync(StompTestClient client, IEnumerable<string> pieces, long maxBytes)
    {
        ReceivedFrame? answer = null;
        var sent = 0L;
        try
        {
            foreach (var piece in pieces.Select(Encoding.UTF8.GetBytes))
            {
                if (sent + piece.Length > maxBytes || (answer = client.TryTake()) is not null || client.Closed.IsCompleted)
                {
                    break;
                }

                await client.SendRawAsync(piece);
                sent += piece.Length;
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException)
        {
            // The server closed the connection while we were still sending.
        }

        return (answer ?? await client.ReceiveAsync(), sent);
    }
}
