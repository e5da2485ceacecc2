using NUnit.Framework;

// In the relay tests' namespace, so that their set-up fixture stops the shared rabbitmq-server after the run.
namespace Broker.Tests.Relay;

/// <summary>
/// <see cref="Cluster.ClusterSessionControlProcessTests"/> in the relay shape: both nodes relay to a real
/// rabbitmq-server and share only the Redis session store, over whose connection the control plane runs
/// (terminate and MaxPerUser reach the other node, a take-over leaves one live copy, the messenger reaches a user there).
/// </summary>
[TestFixture]
public sealed class RelaySessionControlProcessTests : Cluster.ClusterSessionControlProcessTests
{
    private RabbitMqServer _rabbit = null!;

    [OneTimeSetUp]
    public async Task StartRabbitMq() => _rabbit = await RabbitMqServer.GetSharedAsync();

    private protected override RabbitMqServer? Rabbit => _rabbit;
}
