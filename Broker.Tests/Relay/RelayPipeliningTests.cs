using System.Globalization;
using Broker.Protocol;
using NUnit.Framework;
using static Broker.Tests.Relay.RelayTesting;

namespace Broker.Tests.Relay;

/// <summary>
/// SENDs without a receipt are pipelined through the relay: the session reads on while RabbitMQ's
/// confirmation is tracked. What a client observes must not change: one publisher's messages arrive in
/// order, a RECEIPT still confirms everything before it, and a SEND that RabbitMQ refuses afterwards ends
/// the session with an ERROR.
/// </summary>
[TestFixture]
public sealed class RelayPipeliningTests
{
    private RabbitMqServer _server = null!;

    [OneTimeSetUp]
    public async Task StartServer() => _server = await RabbitMqServer.GetSharedAsync();

    [TestCase(false)]
    [TestCase(true)]
    public async Task Pipelined_SENDs_of_one_publisher_arrive_in_order_and_a_RECEIPT_follows_them(bool queue)
    {
        const int count = 3000;
        var p = Unique();
        var destination = queue ? $"/queue/{p}-orders" : $"/topic/{p}.orders";

        // Few permits per channel, so the publisher also runs into back-pressure.
        await using var harness = await StartAsync(_server, relay: o => o.MaxUnconfirmedPerChannel = 16);
        var subscriber = await harness.OpenConnectedAsync();
        await subscriber.SubscribeAndWaitAsync("s", destination);
        var publishers = new[] { await harness.OpenConnectedAsync(), await harness.OpenConnectedAsync() };

        // Two publishers interleaved, none waiting: each one's messages must keep their order.
        for (var i = 0; i < count; i++)
        {
            foreach (var (publisher, name) in publishers.Select((c, n) => (c, n == 0 ? "a" : "b")))
            {
                await publisher.PublishAsync(destination, $"{name}{i.ToString(CultureInfo.InvariantCulture)}");
            }
        }

        await publishers[0].PublishConfirmedAsync(destination, "a-last");
        await publishers[1].PublishConfirmedAsync(destination, "b-last");

        var next = new Dictionary<char, int> { ['a'] = 0, ['b'] = 0 };
        var lasts = 0;
        while (lasts < 2)
        {
            var message = await subscriber.NextMessageAsync(TimeSpan.FromSeconds(30));
            Assert.That(message.Command, Is.EqualTo(StompCommand.Message), message.ToString());
            var body = message.BodyText;
            if (body.EndsWith("-last", StringComparison.Ordinal))
            {
                Assert.That(next[body[0]], Is.EqualTo(count), $"every message of {body[0]} before its last one");
                lasts++;
                continue;
            }

            Assert.That(int.Parse(body.AsSpan(1), CultureInfo.InvariantCulture), Is.EqualTo(next[body[0]]), $"publisher {body[0]} in order");
            next[body[0]]++;
        }
    }

    [Test]
    public async Task A_committed_transaction_follows_the_pipelined_SENDs_before_it()
    {
        var destination = $"/topic/{Unique()}.tx";
        await using var harness = await StartAsync(_server);
        var subscriber = await harness.OpenConnectedAsync();
        await subscriber.SubscribeAndWaitAsync("s", destination);
        var publisher = await harness.OpenConnectedAsync();
        for (var round = 0; round < 20; round++)
        {
            for (var i = 0; i < 50; i++)
            {
                await publisher.PublishAsync(destination, $"{round}.{i}");
            }

            // A transaction's messages are published when it commits, the awaited way: still after the SENDs above.
            await publisher.SendFrameAsync(StompCommand.Begin, ("transaction", $"tx{round}"));
            await publisher.PublishAsync(destination, $"{round}.tx", ("transaction", $"tx{round}"));
            await publisher.SendFrameAsync(StompCommand.Commit, ("transaction", $"tx{round}"));
        }

        for (var round = 0; round < 20; round++)
        {
            for (var i = 0; i < 50; i++)
            {
                Assert.That((await subscriber.NextMessageAsync(TimeSpan.FromSeconds(30))).BodyText, Is.EqualTo($"{round}.{i}"));
            }

            Assert.That((await subscriber.NextMessageAsync(TimeSpan.FromSeconds(30))).BodyText, Is.EqualTo($"{round}.tx"));
        }
    }

    [Test]
    public async Task A_SEND_without_receipt_that_RabbitMQ_refuses_later_ends_the_session_with_an_ERROR()
    {
        // A queue made by someone else that refuses publishes once it holds one message (RabbitMQ nacks them).
        var name = $"{Unique()}-full";
        var (connection, channel) = await OpenAmqpAsync(_server);
        await using (connection)
        {
            await channel.QueueDeclareAsync(name, durable: false, exclusive: false, autoDelete: false,
                new Dictionary<string, object?> { ["x-max-length"] = 1, ["x-overflow"] = "reject-publish" });
            try
            {
                await using var harness = await StartAsync(_server);
                var publisher = await harness.OpenConnectedAsync();
                await publisher.PublishConfirmedAsync($"/queue/{name}", "fits");

                // No receipt: the session does not wait for the confirmation, which RabbitMQ refuses.
                await publisher.PublishAsync($"/queue/{name}", "does not fit");
                var error = await publisher.ReceiveAsync(TimeSpan.FromSeconds(30));
                Assert.That(error.Command, Is.EqualTo(StompCommand.Error), error.ToString());
                Assert.That(error["message"], Does.Contain("limit exceeded").And.Contain($"/queue/{name}"), "a nack from a full queue names it");
                Assert.That(error["receipt-id"], Is.Null);
                Assert.That(await publisher.WaitClosedAsync(), Is.True);
            }
            finally
            {
                await channel.QueueDeleteAsync(name, ifUnused: false, ifEmpty: false);
            }
        }
    }

    [Test]
    public async Task A_RECEIPT_after_a_refused_pipelined_SEND_is_replaced_by_the_ERROR()
    {
        var name = $"{Unique()}-full";
        var (connection, channel) = await OpenAmqpAsync(_server);
        await using (connection)
        {
            await channel.QueueDeclareAsync(name, durable: false, exclusive: false, autoDelete: false,
                new Dictionary<string, object?> { ["x-max-length"] = 1, ["x-overflow"] = "reject-publish" });
            try
            {
                await using var harness = await StartAsync(_server);
                var publisher = await harness.OpenConnectedAsync();
                await publisher.PublishConfirmedAsync($"/queue/{name}", "fits");
                await publisher.PublishAsync($"/queue/{name}", "does not fit");
                await publisher.SendFrameAsync(StompCommand.Disconnect, ("receipt", "bye"));

                // The DISCONNECT's RECEIPT would say everything before it was done: it was not.
                var frame = await publisher.ReceiveAsync(TimeSpan.FromSeconds(30));
                Assert.That(frame.Command, Is.EqualTo(StompCommand.Error), frame.ToString());
                Assert.That(await publisher.WaitClosedAsync(), Is.True);
            }
            finally
            {
                await channel.QueueDeleteAsync(name, ifUnused: false, ifEmpty: false);
            }
        }
    }
}
