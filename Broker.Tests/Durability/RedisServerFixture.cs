using NUnit.Framework;

namespace Broker.Tests.Durability;

/// <summary>Once per run, for the Durability tests: stops the shared redis-server if one was started.</summary>
[SetUpFixture]
public sealed class RedisServerFixture
{
    [OneTimeTearDown]
    public Task StopRedisServer() => RedisServer.StopSharedAsync();
}
