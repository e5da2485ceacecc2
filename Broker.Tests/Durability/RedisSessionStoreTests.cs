using System.Diagnostics;
using Broker.Durability;
using NUnit.Framework;
using StackExchange.Redis;

namespace Broker.Tests.Durability;

/// <summary>The Redis store against a real redis-server; each test has its own key prefix.</summary>
[TestFixture]
[Parallelizable(ParallelScope.Self)]
public sealed class RedisSessionStoreTests : SessionStoreSpecification
{
    private RedisServer _server = null!;
    private ConnectionMultiplexer _inspector = null!;
    private string _prefix = null!;

    private IDatabase Redis => _inspector.GetDatabase();

    [OneTimeSetUp]
    public async Task StartServer()
    {
        _server = await RedisServer.GetSharedAsync();
        // The inspector's calls are synchronous (KEYS/SCAN); the default 1 s limit has timed out on a
        // loaded machine, so it gets a generous one: it checks what is stored, not how fast.
        var inspector = ConfigurationOptions.Parse(_server.Configuration);
        inspector.SyncTimeout = 30_000;
        _inspector = await ConnectionMultiplexer.ConnectAsync(inspector);
    }

    [OneTimeTearDown]
    public void DisconnectInspector() => _inspector?.Dispose();

    protected override Task<(ISessionStore Store, IUserRegistry Registry)> CreateAsync(TimeSpan ttl, TimeProvider clock)
    {
        _prefix = $"test:{Guid.NewGuid():N}:";
        var store = new RedisSessionStore(new RedisSessionStoreOptions { Configuration = _server.Configuration, KeyPrefix = _prefix, Ttl = ttl }, clock);
        return Task.FromResult<(ISessionStore, IUserRegistry)>((store, store));
    }

    [Test]
    public async Task Session_and_token_keys_carry_the_session_TTL()
    {
        var record = NewRecord();

        await Store.SaveAsync(record);

        var sessionTtl = await Redis.KeyTimeToLiveAsync($"{_prefix}session:{record.Id}");
        var tokenTtl = await Redis.KeyTimeToLiveAsync($"{_prefix}token:{Convert.ToHexStringLower(record.TokenHash)}");
        Assert.That(sessionTtl, Is.Not.Null.And.GreaterThan(Ttl - TimeSpan.FromMinutes(1)).And.LessThanOrEqualTo(Ttl));
        Assert.That(tokenTtl, Is.Not.Null.And.GreaterThan(Ttl - TimeSpan.FromMinutes(1)).And.LessThanOrEqualTo(Ttl));
    }

    [Test]
    public async Task Touch_extends_the_TTL_of_both_keys()
    {
        var record = NewRecord();
        await Store.SaveAsync(record);
        var sessionKey = $"{_prefix}session:{record.Id}";
        var tokenKey = $"{_prefix}token:{Convert.ToHexStringLower(record.TokenHash)}";
        await Redis.KeyExpireAsync(sessionKey, TimeSpan.FromSeconds(30));
        await Redis.KeyExpireAsync(tokenKey, TimeSpan.FromSeconds(30));

        await Store.TouchAsync(record.Id, Clock.GetUtcNow());

        Assert.That(await Redis.KeyTimeToLiveAsync(sessionKey), Is.GreaterThan(Ttl - TimeSpan.FromMinutes(1)));
        Assert.That(await Redis.KeyTimeToLiveAsync(tokenKey), Is.GreaterThan(Ttl - TimeSpan.FromMinutes(1)));
    }

    [Test]
    public async Task Redis_itself_expires_an_abandoned_session_and_RemoveExpired_prunes_its_registry_entry()
    {
        var prefix = $"test:{Guid.NewGuid():N}:";
        using var store = new RedisSessionStore(new RedisSessionStoreOptions
        {
            Configuration = _server.Configuration,
            KeyPrefix = prefix,
            Ttl = TimeSpan.FromMilliseconds(300),
        });
        var record = NewRecord() with { Principal = "alice", LastSeenAt = DateTimeOffset.UtcNow };
        await store.SaveAsync(record);
        await store.RegisterAsync("alice", record.Id, "node-a");

        await Eventually.That(async () => !await Redis.KeyExistsAsync($"{prefix}session:{record.Id}"), "the session key expired", TimeSpan.FromSeconds(2));
        Assert.That(await Redis.KeyExistsAsync($"{prefix}token:{Convert.ToHexStringLower(record.TokenHash)}"), Is.False);
        Assert.That(await store.FindByTokenHashAsync(record.TokenHash), Is.Null);

        Assert.That(await store.RemoveExpiredAsync(DateTimeOffset.UtcNow), Is.Zero, "Redis removed the record, not us");
        Assert.That(await store.GetSessionsAsync("alice"), Is.Empty);
        Assert.That(await Redis.KeyExistsAsync($"{prefix}user:alice"), Is.False);
        Assert.That(await Redis.SetContainsAsync($"{prefix}users", "alice"), Is.False);
    }

    [Test]
    public async Task Every_key_starts_with_the_configured_prefix()
    {
        var record = NewRecord() with { Principal = "alice" };
        await Store.SaveAsync(record);
        await Registry.RegisterAsync("alice", record.Id, "node-a");

        var keys = _inspector.GetServer(_server.Configuration).Keys(pattern: _prefix + "*").Select(k => (string)k!).ToArray();

        Assert.That(keys, Is.EquivalentTo(new[]
        {
            $"{_prefix}session:{record.Id}",
            $"{_prefix}token:{Convert.ToHexStringLower(record.TokenHash)}",
            $"{_prefix}sessions",
            $"{_prefix}user:alice",
            $"{_prefix}users",
        }));
    }

    [Test]
    public async Task A_caller_that_blocks_after_an_await_does_not_stall_the_next_reply()
    {
        var record = NewRecord();
        await Store.SaveAsync(record); // the rest of this method runs where the client completed the save

        var stopwatch = Stopwatch.StartNew();
        var found = Store.FindByTokenHashAsync(record.TokenHash).AsTask().Result;

        Assert.That(found?.Id, Is.EqualTo(record.Id));
        Assert.That(stopwatch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(1)));
    }

    [Test]
    public async Task With_Redis_stopped_operations_fail_promptly_with_SessionStoreException()
    {
        await using var server = await RedisServer.StartAsync();
        using var store = new RedisSessionStore(new RedisSessionStoreOptions
        {
            Configuration = server.Configuration,
            KeyPrefix = $"test:{Guid.NewGuid():N}:",
            ConnectTimeout = TimeSpan.FromSeconds(2),
            OperationTimeout = TimeSpan.FromSeconds(2),
        });
        var record = NewRecord();
        await store.SaveAsync(record);

        server.Kill();

        var bound = TimeSpan.FromSeconds(10);
        await AssertFailsWithinAsync(() => store.SaveAsync(NewRecord()).AsTask(), bound);
        await AssertFailsWithinAsync(() => store.FindByTokenHashAsync(record.TokenHash).AsTask(), bound);
        await AssertFailsWithinAsync(() => store.TouchAsync(record.Id, DateTimeOffset.UtcNow).AsTask(), bound);
        await AssertFailsWithinAsync(() => store.RegisterAsync("alice", record.Id, "n").AsTask(), bound);
    }

    [Test]
    public async Task With_no_Redis_listening_the_first_operation_fails_promptly()
    {
        var port = await FreePortAsync();
        using var store = new RedisSessionStore(new RedisSessionStoreOptions
        {
            Configuration = $"127.0.0.1:{port}",
            ConnectTimeout = TimeSpan.FromSeconds(1),
            OperationTimeout = TimeSpan.FromSeconds(2),
        });

        await AssertFailsWithinAsync(() => store.FindByTokenHashAsync(NewTokenHash()).AsTask(), TimeSpan.FromSeconds(10));
    }

    private static async Task AssertFailsWithinAsync(Func<Task> operation, TimeSpan bound)
    {
        var stopwatch = Stopwatch.StartNew();
        Exception? caught = null;
        try
        {
            await operation().WaitAsync(bound + TimeSpan.FromSeconds(5));
        }
        catch (Exception ex)
        {
            caught = ex;
        }

        Assert.That(caught, Is.TypeOf<SessionStoreException>(), caught?.ToString());
        Assert.That(stopwatch.Elapsed, Is.LessThan(bound));
    }

    private static Task<int> FreePortAsync()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return Task.FromResult(((System.Net.IPEndPoint)listener.LocalEndpoint).Port);
    }
}
