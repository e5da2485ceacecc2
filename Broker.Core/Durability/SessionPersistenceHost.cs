using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Broker.Durability;

/// <summary>Flushes durable-session writes when the host stops (only when a session store is registered).</summary>
internal sealed class SessionPersistenceHost(IServiceProvider services) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        // Create the writer at start-up so a store problem shows in the log before the first client.
        _ = Persistence;
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Persistence?.StopAsync(cancellationToken) ?? Task.CompletedTask;

    private SessionPersistence? Persistence => services.GetService<ISessionStore>() is null ? null : services.GetRequiredService<SessionPersistence>();
}
