using Broker.Durability;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using NUnit.Framework;

namespace Broker.Tests.Durability;

[TestFixture]
[Parallelizable(ParallelScope.Self)]
public sealed class SessionStoreExtensionsTests
{
    [Test]
    public void Without_a_Store_key_configuration_chooses_SQLite_at_the_default_path()
    {
        using var provider = Build(new Dictionary<string, string?>());

        Assert.That(provider.GetRequiredService<ISessionStore>(), Is.TypeOf<SqliteSessionStore>());
        var options = provider.GetRequiredService<IOptions<SqliteSessionStoreOptions>>().Value;
        Assert.That(options.Path, Is.EqualTo("data/broker.db"));
        Assert.That(options.Ttl, Is.EqualTo(TimeSpan.FromHours(24)));
    }

    [Test]
    public void The_store_and_the_registry_are_one_singleton()
    {
        using var provider = Build(new Dictionary<string, string?> { ["Broker:Sessions:Store"] = "memory" });

        var store = provider.GetRequiredService<ISessionStore>();

        Assert.That(store, Is.TypeOf<InMemorySessionStore>());
        Assert.That(provider.GetRequiredService<IUserRegistry>(), Is.SameAs(store));
        Assert.That(provider.GetRequiredService<ISessionStore>(), Is.SameAs(store));
    }

    [Test]
    public void SQLite_path_and_TTL_are_read()
    {
        using var provider = Build(new Dictionary<string, string?>
        {
            ["Broker:Sessions:Store"] = "SQLite",
            ["Broker:Sessions:SqlitePath"] = "/tmp/x/sessions.db",
            ["Broker:Sessions:Ttl"] = "02:30:00",
        });

        var options = provider.GetRequiredService<IOptions<SqliteSessionStoreOptions>>().Value;
        Assert.That(options.Path, Is.EqualTo("/tmp/x/sessions.db"));
        Assert.That(options.Ttl, Is.EqualTo(TimeSpan.FromMinutes(150)));
        Assert.That(((SqliteSessionStore)provider.GetRequiredService<ISessionStore>()).FilePath, Is.EqualTo("/tmp/x/sessions.db"));
    }

    [Test]
    public void Redis_connection_and_prefix_are_read_from_a_section_as_well_as_from_the_root()
    {
        var settings = new Dictionary<string, string?>
        {
            ["Broker:Sessions:Store"] = "redis",
            ["Broker:Sessions:Redis"] = "redis.example:6380,password=secret",
            ["Broker:Sessions:RedisKeyPrefix"] = "app1:",
            ["Broker:Sessions:Ttl"] = "1.00:00:00",
        };
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();

        foreach (var given in new IConfiguration[] { configuration, configuration.GetSection("Broker:Sessions") })
        {
            var services = new ServiceCollection();
            services.AddStompBroker().AddSqliteSessionStore().AddSessionStoreFromConfiguration(given);
            using var provider = services.BuildServiceProvider();

            var store = provider.GetRequiredService<ISessionStore>();
            var options = provider.GetRequiredService<IOptions<RedisSessionStoreOptions>>().Value;
            Assert.That(store, Is.TypeOf<RedisSessionStore>(), "replaces the earlier SQLite registration");
            Assert.That(provider.GetRequiredService<IUserRegistry>(), Is.SameAs(store));
            Assert.That(options.Configuration, Is.EqualTo("redis.example:6380,password=secret"));
            Assert.That(((RedisSessionStore)store).KeyPrefix, Is.EqualTo("app1:"));
            Assert.That(options.Ttl, Is.EqualTo(TimeSpan.FromDays(1)));
        }
    }

    [TestCase("Store", "mongodb", "Broker:Sessions:Store")]
    [TestCase("Ttl", "soon", "Broker:Sessions:Ttl")]
    [TestCase("Ttl", "-00:01:00", "Broker:Sessions:Ttl")]
    public void A_value_that_is_not_understood_is_refused_naming_the_key(string key, string value, string named)
    {
        var settings = new Dictionary<string, string?> { [$"Broker:Sessions:{key}"] = value };

        Assert.That(() => Build(settings), Throws.InvalidOperationException.With.Message.Contains(named));
    }

    private static ServiceProvider Build(Dictionary<string, string?> settings)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var services = new ServiceCollection();
        services.AddStompBroker().AddSessionStoreFromConfiguration(configuration);
        return services.BuildServiceProvider();
    }
}
