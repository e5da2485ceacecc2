using Broker.Tests.Routing;
using NUnit.Framework;

namespace Broker.Tests.Relay;

/// <summary>The RabbitMQ relay, against the run's shared rabbitmq-server, held to the <see cref="MessageBrokerSpecification"/>.</summary>
[TestFixture]
public sealed class RelayBrokerSpecification : MessageBrokerSpecification
{
    private RabbitMqServer _server = null!;

    [OneTimeSetUp]
    public async Task StartServer() => _server = await RabbitMqServer.GetSharedAsync();

    private protected override Task<SessionHarness> CreateHarnessAsync() => RelayTesting.StartAsync(_server, durable: true);

    private protected override Task<SessionHarness> CreateSingleConnectionHarnessAsync() => RelayTesting.StartAsync(_server, durable: true, relay: o => o.Connections = 1);
}
