using System.Text.RegularExpressions;
using Broker.Protocol;
using Broker.Tests.EndToEnd;
using Microsoft.Playwright;
using NUnit.Framework;

namespace Broker.Tests.Browser;

/// <summary>The /admin dashboard in Chromium, against the real executable with STOMP clients connected to it.</summary>
[TestFixture]
public sealed partial class AdminDashboardTests : BrowserFixture
{
    private const string Key = "dashboard-test-key-0123456789";

    [Test]
    public async Task The_dashboard_shows_counts_sessions_and_destinations_and_ends_a_users_sessions()
    {
        var data = NewDataDirectory();
        await using var server = await ServerProcess.StartAsync(
        [
            $"--Broker:Api:Key={Key}", "--Broker:Users:alice=pw-a", "--Broker:Users:bob=pw-b", "--Broker:Users:carol=pw-c", "--Broker:Users:feed=pw-f",
            $"--Broker:Sessions:SqlitePath={Path.Combine(data, "broker.db")}",
        ]);
        await using var aliceTcp = await ConnectAsync(StompTestClient.ConnectTcpAsync(server.TcpPort), "alice", "pw-a");
        await aliceTcp.SubscribeAndWaitAsync("news", "/topic/news.alice");
        var (aliceWs, _) = await StompTestClient.ConnectWebSocketAsync(server.WebSocketUri, "v12.stomp");
        await using var _ = aliceWs;
        await ConnectAsync(Task.FromResult(aliceWs), "alice", "pw-a");
        await aliceWs.SubscribeAndWaitAsync("orders", "/queue/orders", "client-individual");
        await using var bob = await ConnectAsync(StompTestClient.ConnectTcpAsync(server.TcpPort), "bob", "pw-b");
        await bob.SubscribeAndWaitAsync("prices", "/topic/prices.eu");
        var carol = await ConnectAsync(StompTestClient.ConnectTcpAsync(server.TcpPort), "carol", "pw-c");
        await carol.SubscribeAndWaitAsync("later", "/topic/prices.eu");
        await carol.DisposeAsync(); // dropped without DISCONNECT: away, resumable
        await using var feed = await ConnectAsync(StompTestClient.ConnectTcpAsync(server.TcpPort), "feed", "pw-f");
        for (var i = 0; i < 5; i++)
        {
            await feed.PublishAsync("/queue/backlog", $"job {i}");
        }

        using var traffic = new CancellationTokenSource(TimeSpan.FromSeconds(40));
        var publishing = PublishPricesAsync(feed, traffic.Token);

        await Page.GotoAsync(new Uri(server.HttpUri, "/admin").ToString());
        await Page.FillAsync("#key", Key);
        await Page.ClickAsync("#key-submit");

        var alice = Page.Locator("#sessions .user[data-user='alice']");
        await Expect(Page.Locator("#count-sessions")).ToHaveTextAsync("4");
        await Expect(Page.Locator("#count-away")).ToHaveTextAsync("1");
        await Expect(Page.Locator("#count-users")).ToHaveTextAsync("4");
        await Expect(alice.Locator("tbody tr")).ToHaveCountAsync(2);
        await Expect(alice.Locator(".state")).ToHaveTextAsync(["connected", "connected"]);
        await Expect(alice.Locator(".subs code")).ToContainTextAsync(["/topic/news.alice", "/queue/orders"], new() { UseInnerText = true });
        await Expect(Page.Locator("#sessions .user[data-user='carol'] .state")).ToHaveTextAsync("away");
        var prices = Page.Locator("#destinations tr[data-destination='/topic/prices.eu'] td");
        await Expect(prices.Nth(1)).ToHaveTextAsync("topic");
        await Expect(prices.Nth(2)).ToHaveTextAsync("1");
        var backlog = Page.Locator("#destinations tr[data-destination='/queue/backlog'] td");
        await Expect(backlog.Nth(3)).ToHaveTextAsync("5");
        await Expect(Page.Locator("#memory")).ToContainTextAsync("process working set");
        await Expect(Page.Locator("#limits")).ToContainTextAsync("max-frame-size");
        await Expect(Page.Locator("#rate-published")).ToHaveTextAsync(NonZero());


        // For the README's screenshot: some seconds of traffic on the chart (each sample is one interval's rate).
        await Page.WaitForFunctionAsync("() => document.querySelectorAll('#sessions .user').length === 4 && lastStats.rates.samples.length >= 8", null, new() { Timeout = 40_000 });
        var screenshot = Path.Combine(TestContext.CurrentContext.WorkDirectory, "screenshots", "admin.png");
        await Page.ScreenshotAsync(new PageScreenshotOptions { Path = screenshot, FullPage = true });
        TestContext.AddTestAttachment(screenshot, "the dashboard (README: Broker.Server/docs/admin.png)");
        await traffic.CancelAsync();
        await publishing;

        string? question = null;
        Page.Dialog += async (_, dialog) =>
        {
            question = dialog.Message;
            await dialog.AcceptAsync();
        };
        await alice.Locator("button[data-end-user='alice']").ClickAsync();
        var tcpError = await aliceTcp.ReceiveUntilAsync(StompCommand.Error);
        var wsError = await aliceWs.ReceiveUntilAsync(StompCommand.Error);

        Assert.That(question, Does.Contain("alice"));
        Assert.That(tcpError["message"], Is.EqualTo("session ended by an administrator"));
        Assert.That(wsError["message"], Is.EqualTo("session ended by an administrator"));
        Assert.That(await aliceTcp.WaitClosedAsync(), Is.True, "alice's TCP connection closed");
        Assert.That(await aliceWs.WaitClosedAsync(), Is.True, "alice's WebSocket closed");
        await Expect(Page.Locator("#notice")).ToContainTextAsync("Ended the sessions of alice: 2 session(s)");
        await Expect(alice).ToHaveCountAsync(0);
        await Expect(Page.Locator("#count-sessions")).ToHaveTextAsync("2");
        await Expect(Page.Locator("#sessions .user[data-user='bob'] .state")).ToHaveTextAsync("connected");
        Assert.That(PageErrors, Is.Empty);
        Directory.Delete(data, recursive: true);
    }

    // A few messages every 100 ms to bob's topic, in a wave, so the rate chart has something to draw; stops when cancelled.
    private static async Task PublishPricesAsync(StompTestClient feed, CancellationToken stop)
    {
        for (var i = 0; i < 400 && !stop.IsCancellationRequested; i++)
        {
            for (var j = 0; j < 1 + (int)(3 + (3 * Math.Sin(i / 15.0))); j++)
            {
                await feed.PublishAsync("/topic/prices.eu", $"price {i}.{j}");
            }

            try
            {
                await Task.Delay(100, stop);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private static async Task<StompTestClient> ConnectAsync(Task<StompTestClient> connecting, string login, string passcode)
    {
        var client = await connecting;
        var connected = await client.ConnectAsync(login: login, passcode: passcode);
        Assert.That(connected.Command, Is.EqualTo(StompCommand.Connected), connected.ToString());
        return client;
    }

    [GeneratedRegex("^[1-9]")]
    private static partial Regex NonZero();
}
