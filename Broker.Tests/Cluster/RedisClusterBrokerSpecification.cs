using Broker.Cluster;
using Broker.Durability;
using Broker.Tests.Durability;
using Broker.Tests.Routing;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace Broker.Tests.Cluster;

/// <summary>The Redis cluster broker (one node, on the run's shared redis-server) held to the <see cref="MessageBrokerSpecification"/>.</summary>
[TestFixture]
public sealed class RedisClusterBrokerSpecification : MessageBrokerSpecification
{
    private RedisServer _redis = null!;

    [OneTimeSetUp]
    public async Task StartRedis() => _redis = await RedisServer.GetSharedAsync();

    private protected override async Task<SessionHarness> CreateHarnessAsync()
    {
        var harness = new SessionHarness(broker: b => b.AddInMemorySessionStore().AddRedisCluster(o =>
        {
            o.Redis = _redis.Configuration;
            o.KeyPrefix = "spec" + Guid.NewGuid().ToString("N")[..10] + ":";
        }));
        if (!await harness.Services.GetRequiredService<RedisClusterBroker>().WaitConnectedAsync(TimeSpan.FromSeconds(20)))
        {
            await harness.DisposeAsync();
            throw new TimeoutException("the cluster broker did not connect to Redis");
        }

        return harness;
    }
}
