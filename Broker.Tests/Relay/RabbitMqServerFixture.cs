using NUnit.Framework;

namespace Broker.Tests.Relay;

/// <summary>Once per run, for the relay tests: stops the shared rabbitmq-server if one was started.</summary>
[SetUpFixture]
public sealed class RabbitMqServerFixture
{
    [OneTimeTearDown]
    public Task StopRabbitMqServer() => RabbitMqServer.StopSharedAsync();
}
