using Broker.Durability;
using Broker.Protocol;
using Broker.Relay.RabbitMq;
using Microsoft.Extensions.DependencyInjection;
using RabbitMQ.Client;

namespace Broker.Tests.Relay;

/// <summary>Sessions over in-memory pipes with the RabbitMQ relay as their broker, against the shared real node.</summary>
internal static class RelayTesting
{
    /// <summary>How long the relay tests wait for RabbitMQ to get somewhere (a queue deleted or expired, a consumer attached).</summary>
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    /// <summary>A harness whose broker is a relay connected to <paramref name="server"/> (all its connections up).</summary>
    public static async Task<SessionHarness> StartAsync(RabbitMqServer server, bool durable = false, Action<RabbitMqRelayOptions>? relay = null,
        Action<IServiceCollection>? services = null, bool waitConnected = true, Action<StompBrokerOptions>? configure = null)
    {
        var harness = new SessionHarness(configure, broker: b =>
        {
            services?.Invoke(b.Services);
            if (durable)
            {
                b.AddInMemorySessionStore();
            }

            b.AddRabbitMqRelay(o =>
            {
                o.Uri = server.Uri;
                relay?.Invoke(o);
            });
        });
        if (waitConnected && !await Relay(harness).WaitConnectedAsync(TimeSpan.FromSeconds(20)))
        {
            await harness.DisposeAsync();
            throw new TimeoutException("the relay did not connect to RabbitMQ");
        }

        return harness;
    }

    public static RabbitMqRelay Relay(SessionHarness harness) => harness.Services.GetRequiredService<RabbitMqRelay>();

    /// <summary>A name no other test uses: topic keys and queue names start with it.</summary>
    public static string Unique() => "t" + Guid.NewGuid().ToString("N")[..12];

    /// <summary>The next MESSAGE, skipping RECEIPTs (a relayed MESSAGE may arrive after the RECEIPT of its SEND).</summary>
    public static async Task<ReceivedFrame> NextMessageAsync(this StompTestClient client, TimeSpan? timeout = null)
    {
        while (true)
        {
            var frame = await client.ReceiveAsync(timeout);
            if (frame.Command != StompCommand.Receipt)
            {
                return frame;
            }
        }
    }

    /// <summary>Publishes and waits for the RECEIPT: the message is in RabbitMQ when this returns.</summary>
    public static async Task PublishConfirmedAsync(this StompTestClient client, string destination, string body, params (string Name, string Value)[] headers)
    {
        var receipt = "p-" + Guid.NewGuid().ToString("N")[..8];
        await client.PublishAsync(destination, body, [.. headers, ("receipt", receipt)]);
        await client.ExpectReceiptAsync(receipt);
    }

    /// <summary>A plain AMQP channel on the node, to look at queues behind the relay's back.</summary>
    public static async Task<(IConnection Connection, IChannel Channel)> OpenAmqpAsync(RabbitMqServer server)
    {
        var connection = await new ConnectionFactory { Uri = new Uri(server.Uri) }.CreateConnectionAsync();
        return (connection, await connection.CreateChannelAsync());
    }

    /// <summary>Whether the queue exists (a passive declare on a channel of its own: a 404 closes it).</summary>
    public static async Task<bool> QueueExistsAsync(RabbitMqServer server, string name)
    {
        var (connection, channel) = await OpenAmqpAsync(server);
        await using (connection)
        {
            try
            {
                await channel.QueueDeclarePassiveAsync(name);
                return true;
            }
            catch (RabbitMQ.Client.Exceptions.OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == 404)
            {
                return false;
            }
        }
    }

    /// <summary>
    /// Waits until every relay connection of a Broker.Server process (<c>Broker:Relay:RabbitMq:Connections</c>,
    /// 2 by default) has logged that it connected to RabbitMQ <paramref name="times"/> times (a reconnect logs again).
    /// </summary>
    public static Task WaitRelayConnectedAsync(this EndToEnd.ServerProcess node, int times, int connections = 2) =>
        node.WaitForOutputAsync(line => line.Contains("RabbitMQ relay connection", StringComparison.Ordinal) && line.Contains(" connected to ", StringComparison.Ordinal),
            connections * times, $"the relay's {connections} connection(s) to RabbitMQ connected {times} time(s)", TimeSpan.FromSeconds(60));
}
