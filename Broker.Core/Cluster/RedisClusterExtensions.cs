using Broker.Cluster;
using Broker.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;

namespace Broker;

/// <summary><c>services.AddStompBroker(...).AddRedisCluster(o => o.Redis = "host:6379")</c>: nodes sharing one Redis act as one broker.</summary>
public static class RedisClusterExtensions
{
    /// <summary>
    /// Replaces the in-process broker with the Redis cluster broker (the in-process one's behaviour, across
    /// every node on the same Redis and key prefix). It connects when the host starts and keeps retrying in
    /// the background while Redis is unreachable; meanwhile each node serves its own clients.
    /// </summary>
    public static IStompBrokerBuilder AddRedisCluster(this IStompBrokerBuilder builder, Action<RedisClusterOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = builder.Services.AddOptions<RedisClusterOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        builder.Services.TryAddSingleton<RedisClusterBroker>();
        builder.Services.RemoveAll<IMessageBroker>();
        builder.Services.AddSingleton<IMessageBroker>(sp => sp.GetRequiredService<RedisClusterBroker>());
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, RedisClusterHost>());

        return builder.AddClusterControl();
    }

    /// <summary>
    /// Session control across nodes: requests to the node that holds a session, over the cluster's Redis when the
    /// cluster is on, else over the Redis session store's (<see cref="RedisClusterControl.Create"/>); none without either.
    /// </summary>
    internal static IStompBrokerBuilder AddClusterControl(this IStompBrokerBuilder builder)
    {
        builder.Services.TryAddSingleton(sp => RedisClusterControl.Create(sp)!);
        builder.Services.TryAddSingleton(sp => (IClusterControl)sp.GetService<RedisClusterControl>()!);
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, ClusterControlHost>());
        return builder;
    }

    /// <summary>
    /// The cluster as configured: <c>Broker:Cluster:Kind</c> = <c>none</c> (default) or <c>redis</c>, with the
    /// options of <see cref="RedisClusterOptions"/> under <c>Broker:Cluster</c>; an empty <c>Broker:Cluster:Redis</c>
    /// takes <c>Broker:Sessions:Redis</c>. Without the cluster, <c>ControlTimeout</c> and <c>MaxPendingControlRequests</c>
    /// still set the control plane that runs over the Redis session store.
    /// </summary>
    /// <exception cref="InvalidOperationException"><c>Kind</c> is not understood.</exception>
    public static IStompBrokerBuilder AddClusterFromConfiguration(this IStompBrokerBuilder builder, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var section = configuration.GetSection(RedisClusterOptions.SectionName);
        switch (section["Kind"]?.Trim().ToLowerInvariant())
        {
            case null or "" or "none":
                // No cluster: ControlTimeout and MaxPendingControlRequests still apply to the control plane over the
                // Redis session store (the keys follow the store's prefix, so KeyPrefix is not read).
                builder.Services.AddOptions<RedisClusterOptions>().Bind(section);
                return builder;
            case "redis" when configuration["Broker:Relay:Kind"]?.Trim().ToLowerInvariant() is { Length: > 0 } relay && relay != "inprocess":
                throw new InvalidOperationException($"{RedisClusterOptions.SectionName}:Kind is 'redis' and Broker:Relay:Kind is '{relay}': the Redis cluster and a relay are alternatives; choose one.");
            case "redis":
                return builder.AddRedisCluster(o =>
                {
                    section.Bind(o);
                    if (string.IsNullOrWhiteSpace(o.Redis))
                    {
                        o.Redis = configuration["Broker:Sessions:Redis"];
                    }
                });
            case var other:
                throw new InvalidOperationException($"{RedisClusterOptions.SectionName}:Kind is '{other}'; expected 'none' or 'redis'.");
        }
    }
}

/// <summary>Starts the cluster's connection with the host, so the first client does not wait for it.</summary>
internal sealed class RedisClusterHost(RedisClusterBroker broker) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        broker.Start();
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>Starts the control plane with the host: this node listens for requests, which its sessions carry out.</summary>
internal sealed class ClusterControlHost(IServiceProvider provider, Sessions.StompSessionServices services) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        provider.GetService<RedisClusterControl>()?.Start(services.NodeId, services.ClusterSessions.HandleAsync);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
