using NUnit.Framework;

namespace Broker.Tests.Relay;

// The test project's policy for a missing rabbitmq-server.
internal sealed partial class RabbitMqServer
{
    static partial void RequireRabbitMqServer()
    {
        if (File.Exists(ServerScript) && File.Exists(CtlScript))
        {
            return;
        }

        const string reason = "rabbitmq-server is not installed (test.sh installs Debian's rabbitmq-server package)";
        if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
        {
            Assert.Fail($"RabbitMQ relay tests need a real server under CI: {reason}");
        }

        Assert.Ignore(reason);
    }
}
