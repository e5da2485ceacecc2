using NUnit.Framework;

namespace Broker.Tests.Durability;

// The test project's policy for a missing redis-server; the benchmarks link RedisServer.cs without it.
internal sealed partial class RedisServer
{
    static partial void RequireRedisServer()
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? string.Empty;
        if (path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries).Any(dir => File.Exists(Path.Combine(dir, "redis-server"))))
        {
            return;
        }

        const string reason = "redis-server is not on PATH (test.sh installs Debian's redis-server package)";
        if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
        {
            Assert.Fail($"Redis tests need a real server under CI: {reason}");
        }

        Assert.Ignore(reason);
    }
}
