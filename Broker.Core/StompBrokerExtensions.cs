using Broker.Application;
using Broker.Durability;
using Broker.Hosting;
using Broker.Routing;
using Broker.Security;
using Broker.Sessions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Broker;

/// <summary>The embedding API: <c>services.AddStompBroker(...)</c>, <c>app.MapStomp("/ws")</c>, <c>listen.UseStomp()</c>.</summary>
public static class StompBrokerExtensions
{
    /// <summary>What Kestrel's socket transport may read from a connection ahead of the broker (see AddStompBroker).</summary>
    private const long TransportReadAhead = 64 * 1024;

    /// <summary>Adds the broker: options, the in-process broker (unless another <see cref="IMessageBroker"/> is registered), authentication and sessions.</summary>
    public static IStompBrokerBuilder AddStompBroker(this IServiceCollection services, Action<StompBrokerOptions>? configure = null)
    {
        var options = services.AddOptions<StompBrokerOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<StompBrokerOptions>, StompBrokerOptionsValidator>());
        if (configure is not null)
        {
            options.Configure(configure);
        }

        // Kestrel's socket transport reads ahead of the application up to MaxReadBufferSize (1 MiB) per connection.
        // Before CONNECT the broker reads at most max-frame-size-before-connect, so the rest would be read from a
        // client that is about to be refused (a large CONNECT body) only to be dropped: each refused connection cost
        // the server a megabyte of receives and pool blocks. Frames larger than this still arrive (the read loop keeps
        // a partial frame; the WebSocket pump fills its own pipe). A host's own UseSockets(...) setting, applied
        // later, wins.
        services.Configure<Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets.SocketTransportOptions>(o =>
        {
            if (o.MaxReadBufferSize is null or > TransportReadAhead)
            {
                o.MaxReadBufferSize = TransportReadAhead;
            }
        });
        services.AddMetrics();
        services.TryAddSingleton<BrokerMetrics>();
        services.TryAddSingleton(sp =>
        {
            var registry = new StompSessionRegistry();
            sp.GetRequiredService<BrokerMetrics>().Observe("sessions.connected", "registry", () => registry.Count);
            return registry;
        });
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<KeepAliveMonitor>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, KeepAliveMonitor>(sp => sp.GetRequiredService<KeepAliveMonitor>()));
        services.TryAddSingleton<Resources.BrokerActivity>();
        services.TryAddSingleton<Resources.IHeapProbe>(Resources.GcHeapProbe.Instance);
        services.TryAddSingleton<Resources.IdleCompaction>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, Resources.IdleCompaction>(sp => sp.GetRequiredService<Resources.IdleCompaction>()));
        services.TryAddSingleton<IStompAuthenticator, ConfiguredUsersAuthenticator>();
        services.AddStompSecurity();
        services.TryAddSingleton<Resources.MemoryBudget>();
        services.TryAddSingleton<Resources.IProcessMemoryProbe, Resources.ProcessMemoryProbe>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, Resources.ProcessMemoryMonitor>());
        services.TryAddSingleton<IMessageBroker>(sp => new InProcessBroker(
            sp.GetRequiredService<IOptions<StompBrokerOptions>>().Value,
            sp.GetRequiredService<BrokerMetrics>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<Microsoft.Extensions.Logging.ILoggerFactory>().CreateLogger("Broker.Routing.InProcessBroker"),
            // A /user/ queue outlives its dropped session only as long as the session could resume.
            sp.GetService<ISessionStore>() is null ? null : sp.GetRequiredService<IOptions<DurableSessionOptions>>().Value.Ttl,
            sp.GetRequiredService<Resources.MemoryBudget>()));
        services.AddOptions<DurableSessionOptions>();
        services.TryAddSingleton<SessionPersistence>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, SessionPersistenceHost>());
        services.AddStompApplication();
        services.TryAddSingleton(sp => new StompSessionServices(
            sp.GetRequiredService<IOptions<StompBrokerOptions>>(),
            sp.GetRequiredService<IMessageBroker>(),
            Security.ThrottlingAuthenticator.Wrap(sp, sp.GetRequiredService<IStompAuthenticator>()),
            sp.GetRequiredService<BrokerMetrics>(),
            sp.GetRequiredService<StompSessionRegistry>(),
            sp.GetRequiredService<Microsoft.Extensions.Logging.ILoggerFactory>(),
            sp.GetRequiredService<KeepAliveMonitor>(),
            sp.GetRequiredService<Resources.MemoryBudget>(),
            sp.GetRequiredService<Application.StompApplication>(),
            // Durable sessions are on when a session store is registered (AddSqliteSessionStore, AddRedisSessionStore, ...).
            sp.GetService<ISessionStore>() is null ? null : sp.GetRequiredService<SessionPersistence>())
        {
            Authorization = sp.GetRequiredService<Security.DestinationAuthorization>(),
            Cluster = sp.GetService<Cluster.IClusterControl>() ?? Cluster.LocalClusterControl.Instance,
            Activity = sp.GetRequiredService<Resources.BrokerActivity>(),
        });
        services.TryAddSingleton(sp => new OriginPolicy(sp.GetRequiredService<IOptions<StompBrokerOptions>>().Value));
        services.TryAddSingleton<ConnectionLimiter>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, SecurityStartupLog>());
        services.TryAddSingleton<StompWebSocketEndpoint>();
        services.TryAddSingleton<StompTcpConnectionHandler>();
        return new StompBrokerBuilder(services);
    }

    /// <summary>Serves STOMP over WebSocket at <paramref name="pattern"/> (the WebSocket middleware is included).</summary>
    public static IEndpointConventionBuilder MapStomp(this IEndpointRouteBuilder endpoints, string pattern = "/ws")
    {
        var endpoint = endpoints.ServiceProvider.GetRequiredService<StompWebSocketEndpoint>();
        var app = endpoints.CreateApplicationBuilder();
        // STOMP has its own heart-beats; WebSocket pings would only add traffic.
        app.UseWebSockets(new WebSocketOptions { KeepAliveInterval = TimeSpan.Zero });
        app.Run(endpoint.HandleAsync);
        return endpoints.Map(pattern, app.Build()).WithDisplayName("STOMP over WebSocket");
    }

    /// <summary>Serves raw STOMP over TCP on this Kestrel endpoint.</summary>
    public static ListenOptions UseStomp(this ListenOptions listenOptions)
    {
        // Kestrel pauses a connection's input at MaxRequestBufferSize (1 MiB by default); a whole
        // frame must fit before the reader can consume it, so the limit must exceed the frame limit.
        var frameLimit = listenOptions.ApplicationServices.GetService<IOptions<StompBrokerOptions>>()?.Value.MaxFrameSize ?? 4 * 1024 * 1024;
        var limits = listenOptions.KestrelServerOptions.Limits;
        if (limits.MaxRequestBufferSize is { } current && current < frameLimit + 64 * 1024)
        {
            limits.MaxRequestBufferSize = frameLimit + 64 * 1024;
        }

        listenOptions.UseConnectionHandler<StompTcpConnectionHandler>();
        return listenOptions;
    }
}

/// <summary>Returned by <see cref="StompBrokerExtensions.AddStompBroker"/>; extensions (stores, relays) hang off it.</summary>
public interface IStompBrokerBuilder
{
    IServiceCollection Services { get; }
}

internal sealed class StompBrokerBuilder(IServiceCollection services) : IStompBrokerBuilder
{
    public IServiceCollection Services { get; } = services;
}
