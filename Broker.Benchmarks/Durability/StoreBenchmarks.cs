using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using Broker.Durability;
using Broker.Routing;

namespace Broker.Benchmarks.Durability;

/// <summary>The stores BenchmarkDotNet compares (a public enum: BenchmarkDotNet generates code over it).</summary>
public enum StoreKind
{
    Sqlite,
    Redis,
}

/// <summary>
/// One <see cref="ISessionStore"/> call at a time, as the write-behind writer and a resuming CONNECT
/// make them: <c>SaveAsync</c> (upsert of an existing record) and <c>FindByTokenHashAsync</c> (hit), over
/// <see cref="Records"/> stored records of 20 subscriptions each. SQLite in a temp file (WAL,
/// synchronous=NORMAL, the store's defaults); Redis in a private redis-server on 127.0.0.1, started in
/// the global setup and killed in the cleanup.
/// </summary>
[MemoryDiagnoser]
public class StoreBenchmarks
{
    public const int Records = 1000;
    public const int SubscriptionsPerRecord = 20;

    private SessionRecord[] _records = [];
    private ISessionStore _store = null!;
    private Broker.Tests.Durability.RedisServer? _redis;
    private string? _tempDirectory;
    private int _next;

    [Params(StoreKind.Sqlite, StoreKind.Redis)]
    public StoreKind Store { get; set; }

    public static IConfig Config() => DefaultConfig.Instance.AddColumn(StatisticColumn.OperationsPerSecond);

    [GlobalSetup]
    public void Setup()
    {
        switch (Store)
        {
            case StoreKind.Sqlite:
                _tempDirectory = Directory.CreateTempSubdirectory("broker-bench-store-").FullName;
                _store = new SqliteSessionStore(new SqliteSessionStoreOptions { Path = Path.Combine(_tempDirectory, "sessions.db") });
                break;
            case StoreKind.Redis:
                _redis = Broker.Tests.Durability.RedisServer.StartAsync().GetAwaiter().GetResult();
                _store = new RedisSessionStore(new RedisSessionStoreOptions { Configuration = _redis.Configuration, KeyPrefix = "bench:" });
                break;
        }

        var now = DateTimeOffset.UtcNow;
        _records = new SessionRecord[Records];
        for (var i = 0; i < Records; i++)
        {
            var subscriptions = new SubscriptionRecord[SubscriptionsPerRecord];
            for (var k = 0; k < subscriptions.Length; k++)
            {
                subscriptions[k] = new SubscriptionRecord($"sub-{k}", $"/topic/app.user{i}.feed{k}", AckMode.Auto, 0, "e1f0c3a2", 1000 + k);
            }

            _records[i] = new SessionRecord
            {
                Id = Guid.NewGuid().ToString("N"),
                TokenHash = SHA256.HashData(Guid.NewGuid().ToByteArray()),
                Principal = $"user{i}",
                Node = "bench-node",
                Subscriptions = subscriptions,
                CreatedAt = now,
                LastSeenAt = now,
            };
            _store.SaveAsync(_records[i]).AsTask().GetAwaiter().GetResult();
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        (_store as IDisposable)?.Dispose();
        _redis?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        if (_tempDirectory is not null)
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(_tempDirectory, recursive: true);
        }
    }

    [Benchmark]
    public ValueTask Save() => _store.SaveAsync(_records[Next()]);

    [Benchmark]
    public async ValueTask<SessionRecord?> FindByTokenHash()
    {
        var record = await _store.FindByTokenHashAsync(_records[Next()].TokenHash);
        return record ?? throw new InvalidOperationException("a stored record was not found");
    }

    private int Next()
    {
        var i = _next + 1;
        _next = i == Records ? 0 : i;
        return _next;
    }
}
