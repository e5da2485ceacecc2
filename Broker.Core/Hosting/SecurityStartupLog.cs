using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Broker.Hosting;

/// <summary>Says at start, once, which anonymous-access, origin and connection-limit policies hold.</summary>
internal sealed partial class SecurityStartupLog(
    Sessions.StompSessionServices services,
    OriginPolicy origins,
    ConnectionLimiter limiter,
    ILogger<SecurityStartupLog> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        Policy(logger, services.AnonymousAccess.Describe());
        Policy(logger, origins.Describe());
        Policy(logger, limiter.Describe());
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(100, LogLevel.Information, "{Policy}")]
    private static partial void Policy(ILogger logger, string policy);
}
