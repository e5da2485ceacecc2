using Broker.Protocol;
using Broker.Tests.EndToEnd;
using NUnit.Framework;

namespace Broker.Tests.Browser;

/// <summary>
/// The demo page at <c>/</c> in Chromium: a durable session kept in localStorage, dropped, published to while
/// away, and resumed with <c>resumed:true</c>, <c>recovered:true</c> and the missed messages, once each, in order.
/// </summary>
[TestFixture]
public sealed class DemoPageTests : BrowserFixture
{
    private const string Key = "demo-test-key-0123456789abcdef";
    private const string TokenKey = "broker-demo-session-token";

    [Test]
    public async Task A_dropped_page_resumes_its_session_and_gets_the_messages_it_missed()
    {
        var data = NewDataDirectory();
        await using var server = await ServerProcess.StartAsync([$"--Broker:Api:Key={Key}", $"--Broker:Sessions:SqlitePath={Path.Combine(data, "broker.db")}"]);
        using var api = new AdminApiClient(server.HttpUri, Key);
        await using var publisher = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await publisher.ConnectAsync();
        var log = Page.Locator("#log li");

        await Page.GotoAsync(server.HttpUri.ToString());
        await Expect(Page.Locator("#status")).ToHaveTextAsync("connected");
        await Expect(Page.Locator("#resumed")).ToHaveTextAsync("false");
        var sessionId = await Page.Locator("#session-id").TextContentAsync();
        var token = await Page.EvaluateAsync<string?>($"() => localStorage.getItem('{TokenKey}')");
        await Page.FillAsync("#dest", "/topic/demo.resume");
        await Page.ClickAsync("#subscribe");
        await Expect(log.Filter(new() { HasText = "RECEIPT subscribed-" })).ToHaveCountAsync(1);
        await Publish(publisher, "live 1");
        await Expect(log.Filter(new() { HasText = "MESSAGE /topic/demo.resume: live 1" })).ToHaveCountAsync(1);

        await Page.ClickAsync("#drop");
        await Expect(Page.Locator("#status")).ToHaveTextAsync("dropped");
        // Published only once the server has let go of the connection (the session is away), so nothing is in flight to it.
        await api.WaitForSessionsAsync("", s => s.Any(x => x.GetProperty("id").GetString() == sessionId && !x.GetProperty("connected").GetBoolean()), "the page's session away");
        await Publish(publisher, "missed 1");
        await Publish(publisher, "missed 2");
        await Page.FillAsync("#pub-dest", "/topic/demo.resume");
        await Page.FillAsync("#pub-text", "missed 3");
        await Page.ClickAsync("#pub-send");
        await Expect(Page.Locator("#pub-status")).ToHaveTextAsync("published #1");
        await Expect(Page.Locator("#pub-text")).ToHaveValueAsync("missed 4");

        await Page.ClickAsync("#connect");
        await Expect(Page.Locator("#status")).ToHaveTextAsync("connected");
        await Expect(Page.Locator("#resumed")).ToHaveTextAsync("true");
        await Expect(Page.Locator("#recovered")).ToHaveTextAsync("true");
        await Expect(Page.Locator("#missed-count")).ToHaveTextAsync("3");
        await Expect(Page.Locator("#log li.missed")).ToHaveTextAsync(
            [new System.Text.RegularExpressions.Regex("missed while away: /topic/demo.resume: missed 1$"),
             new System.Text.RegularExpressions.Regex("missed while away: /topic/demo.resume: missed 2$"),
             new System.Text.RegularExpressions.Regex("missed while away: /topic/demo.resume: missed 3$")]);
        await Publish(publisher, "after 1");
        await Expect(log.Filter(new() { HasText = "MESSAGE /topic/demo.resume: after 1" })).ToHaveCountAsync(1);

        var tokenAfter = await Page.EvaluateAsync<string?>($"() => localStorage.getItem('{TokenKey}')");
        var sessions = await api.WaitForSessionsAsync("", s => s.Any(x => x.GetProperty("id").GetString() == sessionId && x.GetProperty("connected").GetBoolean()), "the page's session connected again");
        Assert.That(token, Is.Not.Null.And.Length.GreaterThan(40), "CONNECTED's session-token is kept in localStorage");
        Assert.That(tokenAfter, Is.EqualTo(token), "the resumed session keeps its token");
        Assert.That(await Page.Locator("#session-id").TextContentAsync(), Is.EqualTo(sessionId));
        Assert.That(await log.Filter(new() { HasText = "MESSAGE /topic/demo.resume: missed" }).CountAsync(), Is.Zero, "a missed message arrives once, as missed");
        Assert.That(await log.Filter(new() { HasText = "→ CONNECT with session-token" }).CountAsync(), Is.EqualTo(1));
        Assert.That(sessions.Single(x => x.GetProperty("id").GetString() == sessionId).GetProperty("subscriptions").EnumerateArray()
            .Select(x => x.GetProperty("destination").GetString()), Is.EqualTo(new[] { "/topic/demo.resume" }), "the subscription is back once, not twice");
        var screenshot = Path.Combine(TestContext.CurrentContext.WorkDirectory, "screenshots", "demo.png");
        await Page.ScreenshotAsync(new() { Path = screenshot, FullPage = true });
        TestContext.AddTestAttachment(screenshot, "the demo page after the resume");
        Assert.That(PageErrors, Is.Empty);
        Directory.Delete(data, recursive: true);
    }

    private static async Task Publish(StompTestClient publisher, string text)
    {
        var receipt = "r-" + text.Replace(' ', '-');
        await publisher.PublishAsync("/topic/demo.resume", text, ("receipt", receipt), ("content-type", "text/plain"));
        await publisher.ExpectReceiptAsync(receipt);
    }
}
