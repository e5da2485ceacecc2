using System.Globalization;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Broker.Durability;

/// <summary>
/// Chooses the durable session store: <c>.AddSqliteSessionStore(o => o.Path = "...")</c>,
/// <c>.AddRedisSessionStore(...)</c>, <c>.AddInMemorySessionStore()</c>, or from configuration. Each
/// registers one singleton as both <see cref="ISessionStore"/> and <see cref="IUserRegistry"/>,
/// replacing whatever was registered for them before.
/// </summary>
public static class SessionStoreExtensions
{
    /// <summary>Sessions in this process's memory: lost on restart, not shared between nodes.</summary>
    public static IStompBrokerBuilder AddInMemorySessionStore(this IStompBrokerBuilder builder, Action<SessionStoreOptions>? configure = null) =>
        builder.AddStore(configure, (options, time) => new InMemorySessionStore(options, time));

    /// <summary>Sessions in a SQLite file (default <c>data/broker.db</c>): one node.</summary>
    public static IStompBrokerBuilder AddSqliteSessionStore(this IStompBrokerBuilder builder, Action<SqliteSessionStoreOptions>? configure = null) =>
        builder.AddStore(configure, (options, time) => new SqliteSessionStore(options, time));

    /// <summary>
    /// Sessions in Redis (default <c>127.0.0.1:6379</c>): shared by every node, with the control plane over the same
    /// Redis (ending a session or taking one over reaches the node that holds its connection).
    /// </summary>
    public static IStompBrokerBuilder AddRedisSessionStore(this IStompBrokerBuilder builder, Action<RedisSessionStoreOptions>? configure = null) =>
        builder.AddStore(configure, (options, time) => new RedisSessionStore(options, time)).AddClusterControl();

    /// <summary>
    /// Chooses and configures the store from configuration. Given a section, reads its keys directly;
    /// given the configuration root, reads the section <c>Broker:Sessions</c>. Keys: <c>Store</c> =
    /// <c>sqlite</c> (default) | <c>redis</c> | <c>memory</c>; <c>Ttl</c> (a TimeSpan, e.g. <c>1.00:00:00</c>);
    /// <c>SqlitePath</c>; <c>Redis</c> (a StackExchange.Redis configuration string); <c>RedisKeyPrefix</c>.
    /// </summary>
    /// <exception cref="InvalidOperationException">A value is not understood (the message names the key).</exception>
    public static IStompBrokerBuilder AddSessionStoreFromConfiguration(this IStompBrokerBuilder builder, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configuration);
        var section = configuration as IConfigurationSection ?? configuration.GetSection("Broker:Sessions");
        var ttl = ReadTimeSpan(section, "Ttl");
        var store = section["Store"];
        switch (string.IsNullOrWhiteSpace(store) ? "sqlite" : store.Trim().ToLowerInvariant())
        {
            case "sqlite":
                var path = section["SqlitePath"];
                return builder.AddSqliteSessionStore(o =>
                {
                    o.Ttl = ttl ?? o.Ttl;
                    o.Path = string.IsNullOrWhiteSpace(path) ? o.Path : path;
                });
            case "redis":
                var redis = section["Redis"];
                var prefix = section["RedisKeyPrefix"];
                if (!string.IsNullOrWhiteSpace(redis) && !RedisConnection.TryParse(redis, out var problem))
                {
                    throw new InvalidOperationException($"{KeyOf(section, "Redis")} does not parse ({problem}); expected a StackExchange.Redis configuration string such as 'host:6379,password=...'.");
                }

                return builder.AddRedisSessionStore(o =>
                {
                    o.Ttl = ttl ?? o.Ttl;
                    o.Configuration = string.IsNullOrWhiteSpace(redis) ? o.Configuration : redis;
                    o.KeyPrefix = prefix ?? o.KeyPrefix;
                });
            case "memory":
                return builder.AddInMemorySessionStore(o => o.Ttl = ttl ?? o.Ttl);
            case "none":
                // Durable sessions off: no token is issued and nothing is stored.
                return builder;
            default:
                throw new InvalidOperationException($"{KeyOf(section, "Store")} is '{store}'; expected 'sqlite', 'redis', 'memory' or 'none'.");
        }
    }

    private static IStompBrokerBuilder AddStore<TOptions, TStore>(this IStompBrokerBuilder builder, Action<TOptions>? configure, Func<TOptions, TimeProvider, TStore> create)
        where TOptions : SessionStoreOptions
        where TStore : class, ISessionStore, IUserRegistry
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        var options = services.AddOptions<TOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        services.TryAddSingleton(sp => create(sp.GetRequiredService<IOptions<TOptions>>().Value, sp.GetService<TimeProvider>() ?? TimeProvider.System));
        services.RemoveAll<ISessionStore>();
        services.RemoveAll<IUserRegistry>();
        services.AddSingleton<ISessionStore>(sp => sp.GetRequiredService<TStore>());
        services.AddSingleton<IUserRegistry>(sp => sp.GetRequiredService<TStore>());
        return builder;
    }

    private static TimeSpan? ReadTimeSpan(IConfigurationSection section, string key)
    {
        var text = section[key];
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }

        if (!TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out var value) || value <= TimeSpan.Zero)
        {
            throw new InvalidOperationException($"{KeyOf(section, key)} is '{text}'; expected a positive TimeSpan such as '1.00:00:00' (1 day) or '00:30:00'.");
        }

        return value;
    }

    private static string KeyOf(IConfigurationSection section, string key) => ConfigurationPath.Combine(section.Path, key);
}
