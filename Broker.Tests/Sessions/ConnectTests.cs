using Broker.Protocol;
using NUnit.Framework;

namespace Broker.Tests.Sessions;

[TestFixture]
public sealed class ConnectTests
{
    [TestCase(null, "1.0")]
    [TestCase("1.0", "1.0")]
    [TestCase("1.1", "1.1")]
    [TestCase("1.0,1.1", "1.1")]
    [TestCase("1.1,1.2", "1.2")]
    [TestCase("1.2,2.0", "1.2")]
    public async Task Negotiates_the_highest_common_version(string? acceptVersion, string expected)
    {
        await using var harness = new SessionHarness();
        var client = harness.Open();
        var headers = new List<(string, string)> { ("login", "guest"), ("passcode", "guest") };
        if (acceptVersion is not null)
        {
            headers.Add(("accept-version", acceptVersion));
        }

        await client.SendFrameAsync(StompCommand.Connect, headers);
        var connected = await client.ReceiveAsync();

        Assert.That(connected.Command, Is.EqualTo(StompCommand.Connected));
        Assert.That(connected["version"], Is.EqualTo(expected));
        Assert.That(connected["session"], Is.Not.Empty);
        Assert.That(connected["server"], Does.StartWith("Broker/"));
    }

    [Test]
    public async Task No_version_in_common_gets_an_error_listing_ours_then_close()
    {
        await using var harness = new SessionHarness();
        var client = harness.Open();
        await client.SendFrameAsync(StompCommand.Connect, ("accept-version", "2.0,3.1"), ("host", "x"));

        var error = await client.ReceiveAsync();

        Assert.That(error.Command, Is.EqualTo(StompCommand.Error));
        Assert.That(error["version"], Is.EqualTo("1.0,1.1,1.2"));
        Assert.That(await client.WaitClosedAsync(), Is.True);
    }

    [Test]
    public async Task STOMP_command_connects_and_a_missing_host_is_tolerated()
    {
        await using var harness = new SessionHarness();
        var client = harness.Open();
        await client.SendFrameAsync(StompCommand.Stomp, ("accept-version", "1.2"));

        Assert.That((await client.ReceiveAsync()).Command, Is.EqualTo(StompCommand.Connected));
    }

    [Test]
    public async Task Connect_headers_are_not_unescaped_so_a_passcode_may_hold_colons_and_backslashes()
    {
        await using var harness = new SessionHarness(o => o.Users["alice"] = @"pa:ss\word");
        var client = harness.Open();
        await client.SendRawAsync("CONNECT\naccept-version:1.2\nlogin:alice\npasscode:pa:ss\\word\n\n\0");

        var connected = await client.ReceiveAsync();

        Assert.That(connected.Command, Is.EqualTo(StompCommand.Connected), connected.ToString());
        Assert.That(connected["user-name"], Is.EqualTo("alice"));
    }

    [Test]
    public async Task A_frame_before_CONNECT_is_an_error()
    {
        await using var harness = new SessionHarness();
        var client = harness.Open();
        await client.SendFrameAsync(StompCommand.Send, [("destination", "/topic/a")], "x"u8.ToArray());

        var error = await client.ReceiveAsync();

        Assert.That(error.Command, Is.EqualTo(StompCommand.Error));
        Assert.That(error["message"], Does.Contain("expected CONNECT"));
        Assert.That(await client.WaitClosedAsync(), Is.True);
    }

    [Test]
    public async Task A_wrong_passcode_gets_an_error_and_close()
    {
        await using var harness = new SessionHarness();
        var client = harness.Open();

        var error = await client.ConnectAsync(login: "guest", passcode: "wrong");

        Assert.That(error.Command, Is.EqualTo(StompCommand.Error));
        Assert.That(error["message"], Does.Contain("authentication failed"));
        Assert.That(await client.WaitClosedAsync(), Is.True);
    }

    [Test]
    public async Task Anonymous_clients_are_refused_when_anonymous_access_is_off()
    {
        await using var harness = new SessionHarness(o => o.AllowAnonymous = false);
        var anonymous = harness.Open();
        var refused = await anonymous.ConnectAsync();
        var known = harness.Open();
        var accepted = await known.ConnectAsync(login: "guest", passcode: "guest");

        Assert.That(refused.Command, Is.EqualTo(StompCommand.Error));
        Assert.That(refused["message"], Does.Contain("authentication required"));
        Assert.That(accepted.Command, Is.EqualTo(StompCommand.Connected));
    }

    [Test]
    public async Task A_second_CONNECT_is_an_error()
    {
        await using var harness = new SessionHarness();
        var client = await harness.OpenConnectedAsync();
        await client.SendFrameAsync(StompCommand.Connect, ("accept-version", "1.2"));

        var error = await client.ReceiveAsync();

        Assert.That(error.Command, Is.EqualTo(StompCommand.Error));
        Assert.That(error["message"], Does.Contain("already connected"));
    }

    [Test]
    public async Task Invalid_heart_beat_header_is_an_error()
    {
        await using var harness = new SessionHarness();
        var client = harness.Open();

        var error = await client.ConnectAsync(heartbeat: "ten,20");

        Assert.That(error.Command, Is.EqualTo(StompCommand.Error));
        Assert.That(error["message"], Does.Contain("heart-beat"));
    }
}
