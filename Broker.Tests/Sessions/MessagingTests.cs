using System.Text;
using Broker.Protocol;
using NUnit.Framework;

namespace Broker.Tests.Sessions;

/// <summary>
/// What a session does with frames of its own (subscription ids, unknown ACKs, bad frames, split frames). What a
/// broker promises for messages is the <see cref="Routing.MessageBrokerSpecification"/>, run against the in-process
/// broker by <see cref="Routing.InProcessBrokerSpecification"/>.
/// </summary>
[TestFixture]
public sealed class MessagingTests
{
    [Test]
    public async Task Subscription_ids_are_required_and_unique()
    {
        await using var harness = new SessionHarness();
        var missing = await harness.OpenConnectedAsync();
        await missing.SendFrameAsync(StompCommand.Subscribe, ("destination", "/topic/t"));
        var duplicate = await harness.OpenConnectedAsync();
        await duplicate.SubscribeAndWaitAsync("s", "/topic/t");
        await duplicate.SubscribeAsync("s", "/topic/u");

        Assert.That((await missing.ReceiveAsync())["message"], Does.Contain("'id'"));
        Assert.That((await duplicate.ReceiveAsync())["message"], Does.Contain("already in use"));
    }

    [Test]
    public async Task An_ACK_for_an_unknown_message_is_an_error()
    {
        await using var harness = new SessionHarness();
        var client = await harness.OpenConnectedAsync();
        await client.SendFrameAsync(StompCommand.Ack, ("id", "12345"), ("receipt", "bad-ack"));

        var error = await client.ReceiveAsync();

        Assert.That(error.Command, Is.EqualTo(StompCommand.Error));
        Assert.That(error["receipt-id"], Is.EqualTo("bad-ack"));
        Assert.That(await client.WaitClosedAsync(), Is.True);
    }

    [Test]
    public async Task A_bad_client_loses_nothing_for_the_others()
    {
        await using var harness = new SessionHarness();
        var good = await harness.OpenConnectedAsync();
        await good.SubscribeAndWaitAsync("s", "/topic/safe");
        var bad = await harness.OpenConnectedAsync();
        await bad.SendRawAsync("SEND\ndestination:/topic/safe\nbroken\\theader:x\n\nboom\0");
        Assert.That((await bad.ReceiveAsync()).Command, Is.EqualTo(StompCommand.Error));

        var publisher = await harness.OpenConnectedAsync();
        await publisher.PublishAsync("/topic/safe", "fine");

        Assert.That((await good.ReceiveAsync()).BodyText, Is.EqualTo("fine"));
    }

    [Test]
    public async Task Frames_split_at_every_byte_are_handled()
    {
        await using var harness = new SessionHarness();
        var client = harness.Open();
        var bytes = Encoding.UTF8.GetBytes("CONNECT\r\naccept-version:1.2\r\n\r\n\0\n\nSUBSCRIBE\nid:s\ndestination:/topic/split\nreceipt:r\n\n\0");
        foreach (var b in bytes)
        {
            await client.SendRawAsync([b]);
        }

        Assert.That((await client.ReceiveAsync()).Command, Is.EqualTo(StompCommand.Connected));
        await client.ExpectReceiptAsync("r");
    }
}
