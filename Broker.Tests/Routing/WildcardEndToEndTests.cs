using Broker.Protocol;
using NUnit.Framework;

namespace Broker.Tests.Routing;

/// <summary>The wildcard attack of issue 11, over real sockets: one hostile SUBSCRIBE and one long SEND.</summary>
[TestFixture]
public sealed class WildcardEndToEndTests
{
    [Test]
    public async Task A_hostile_wildcard_subscription_and_a_long_topic_leave_the_server_answering()
    {
        // A 120-word key is past the default max-destination-words (32): raised so that the matcher itself is tried.
        await using var server = await TestServer.StartAsync(o => o.MaxDestinationWords = 200);
        await using var attacker = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await attacker.ConnectAsync();
        await attacker.SubscribeAndWaitAsync("hostile", "/topic/#.#.#.#.#.#.#.z");
        await using var publisher = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await publisher.ConnectAsync();
        var words = Enumerable.Range(0, 120).Select(i => "w" + i).ToList();

        // No match (the key does not end in z): a backtracking matcher tries every way to spread 120 words
        // over seven '#'s and never sends this receipt.
        await publisher.PublishAsync("/topic/" + string.Join('.', words), "miss", ("receipt", "miss"));
        await publisher.ExpectReceiptAsync("miss");

        // A match still arrives, once.
        var hit = "/topic/" + string.Join('.', words.Take(119).Append("z"));
        await publisher.PublishAsync(hit, "hit", ("receipt", "hit"));
        await publisher.ExpectReceiptAsync("hit");
        var message = await attacker.ReceiveAsync();
        Assert.That(message.Command, Is.EqualTo(StompCommand.Message));
        Assert.That(message["destination"], Is.EqualTo(hit));
        Assert.That(message.BodyText, Is.EqualTo("hit"));
        // Delivered once: a second copy would be queued before the attacker's own receipt.
        await attacker.PublishAsync("/topic/elsewhere", "", ("receipt", "after"));
        await attacker.ExpectReceiptAsync("after");

        // Everyone else is still served.
        await using var bystander = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await bystander.ConnectAsync();
        await bystander.SubscribeAndWaitAsync("s", "/topic/bystander.#");
        await bystander.PublishAsync("/topic/bystander.ping", "ping");
        Assert.That((await bystander.ReceiveAsync()).BodyText, Is.EqualTo("ping"));
    }
}
