using Broker.Durability;
using Broker.Protocol;
using NUnit.Framework;
using static Broker.Tests.Relay.RelayTesting;

namespace Broker.Tests.Routing;

/// <summary>
/// The in-process broker held to the <see cref="MessageBrokerSpecification"/>, and to what only it promises:
/// a session's frames are handled in order on one broker, so a SEND's MESSAGE to a subscriber on the same
/// session is queued before the SEND's RECEIPT; repeated headers travel; a NACK passes the message to the next
/// consumer in the round.
/// </summary>
[TestFixture]
public sealed class InProcessBrokerSpecification : MessageBrokerSpecification
{
    private protected override bool NackPassesToTheNextConsumer => true;

    private protected override Task<SessionHarness> CreateHarnessAsync() => Task.FromResult(new SessionHarness(broker: b => b.AddInMemorySessionStore()));

    [TestCase("a.b.c", "a.b.c")]
    [TestCase("a.*.c", "a.b.c")]
    [TestCase("a.#", "a.b.c")]
    public async Task A_matching_MESSAGE_comes_before_the_RECEIPT_of_its_SEND(string pattern, string key)
    {
        var p = Unique();
        var harness = await StartAsync();
        var client = await harness.OpenConnectedAsync();
        await client.SubscribeAndWaitAsync("w", $"/topic/{p}.{pattern}");

        await client.PublishAsync($"/topic/{p}.{key}", "x", ("receipt", "sent"));
        var first = await client.ReceiveAsync();

        Assert.That((first.Command, first["destination"]), Is.EqualTo((StompCommand.Message, $"/topic/{p}.{key}")));
        await client.ExpectReceiptAsync("sent");
    }

    [Test]
    public async Task Repeated_headers_travel_in_order()
    {
        var destination = $"/topic/{Unique()}";
        var harness = await StartAsync();
        var client = await harness.OpenConnectedAsync();
        await client.SubscribeAndWaitAsync("s", destination);

        await client.PublishAsync(destination, "x", ("x-trace", "first"), ("x-trace", "second"), ("x-trace", "third"));
        var message = await client.ReceiveAsync();

        Assert.That(message.HeaderList.Where(h => h.Key == "x-trace").Select(h => h.Value), Is.EqualTo(new[] { "first", "second", "third" }));
    }
}
