using Broker.Durability;
using Microsoft.Data.Sqlite;
using NUnit.Framework;

namespace Broker.Tests.Durability;

/// <summary>The SQLite store on real files, one per test, in a temporary directory.</summary>
[TestFixture]
[Parallelizable(ParallelScope.Self)]
public sealed class SqliteSessionStoreTests : SessionStoreSpecification
{
    private string _directory = null!;

    [OneTimeSetUp]
    public void CreateDirectory() =>
        _directory = Directory.CreateTempSubdirectory("broker-sqlite-tests-").FullName;

    [OneTimeTearDown]
    public void DeleteDirectory()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }

    protected override Task<(ISessionStore Store, IUserRegistry Registry)> CreateAsync(TimeSpan ttl, TimeProvider clock)
    {
        var store = new SqliteSessionStore(new SqliteSessionStoreOptions { Path = NewPath(), Ttl = ttl }, clock);
        return Task.FromResult<(ISessionStore, IUserRegistry)>((store, store));
    }

    [Test]
    public async Task A_second_store_on_the_same_file_sees_the_data_as_after_a_restart()
    {
        var path = NewPath();
        var record = NewRecord() with
        {
            Principal = "alice",
            Subscriptions = [new SubscriptionRecord("s", "/topic/x", Broker.Routing.AckMode.Client, 5, "e", 9)],
        };
        using (var first = new SqliteSessionStore(new SqliteSessionStoreOptions { Path = path }, Clock))
        {
            await first.SaveAsync(record);
            await first.RegisterAsync("alice", record.Id, "node-a");
        }

        SqliteConnection.ClearAllPools(); // nothing of the first store survives but the file
        using var second = new SqliteSessionStore(new SqliteSessionStoreOptions { Path = path }, Clock);
        var found = await second.FindByTokenHashAsync(record.TokenHash);

        Assert.That(found, Is.Not.Null);
        AssertSameRecord(found!, record);
        Assert.That(await second.GetSessionsAsync("alice"), Is.EqualTo(new[] { new UserSession(record.Id, "node-a") }));
    }

    [Test]
    public async Task The_schema_is_created_in_WAL_mode_on_first_use_creating_the_directory()
    {
        var path = Path.Combine(_directory, Guid.NewGuid().ToString("N"), "nested", "broker.db");
        using var store = new SqliteSessionStore(new SqliteSessionStoreOptions { Path = path });

        await store.GetSessionsAsync("nobody");

        Assert.That(File.Exists(path), Is.True);
        await using var connection = new SqliteConnection($"Data Source={path};Pooling=False");
        await connection.OpenAsync();
        Assert.That(await ScalarAsync(connection, "PRAGMA journal_mode"), Is.EqualTo("wal"));
        Assert.That(await ScalarAsync(connection, "PRAGMA user_version"), Is.EqualTo(SqliteSchema.CurrentVersion));
        Assert.That(await ScalarAsync(connection, "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name)"),
            Is.EqualTo("sessions,user_sessions"));
        Assert.That(await ScalarAsync(connection, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'ix_sessions_last_seen_at'"), Is.EqualTo(1));
    }

    [Test]
    public async Task An_empty_existing_file_gets_the_schema_and_reopening_keeps_version_and_data()
    {
        var path = NewPath();
        await File.WriteAllBytesAsync(path, []);
        var record = NewRecord();
        using (var first = new SqliteSessionStore(new SqliteSessionStoreOptions { Path = path }, Clock))
        {
            await first.SaveAsync(record);
        }

        using var second = new SqliteSessionStore(new SqliteSessionStoreOptions { Path = path }, Clock);
        await second.TouchAsync(record.Id, Clock.GetUtcNow());

        Assert.That((await second.FindByTokenHashAsync(record.TokenHash))?.Id, Is.EqualTo(record.Id));
        await using var connection = new SqliteConnection($"Data Source={path};Pooling=False");
        await connection.OpenAsync();
        Assert.That(await ScalarAsync(connection, "PRAGMA user_version"), Is.EqualTo(SqliteSchema.CurrentVersion));
    }

    [Test]
    public async Task A_file_from_a_newer_broker_is_refused_with_a_clear_error()
    {
        var path = NewPath();
        await using (var connection = new SqliteConnection($"Data Source={path};Pooling=False"))
        {
            await connection.OpenAsync();
            await ScalarAsync(connection, $"PRAGMA user_version = {SqliteSchema.CurrentVersion + 1}");
        }

        using var store = new SqliteSessionStore(new SqliteSessionStoreOptions { Path = path });

        Assert.That(async () => await store.FindByTokenHashAsync(NewTokenHash()),
            Throws.TypeOf<SessionStoreException>().With.Message.Contains("newer"));
    }

    [Test]
    public async Task An_unusable_path_fails_with_a_clear_exception_naming_the_file()
    {
        // A regular file where the directory should be: unwritable whoever runs the test (even root).
        var blocker = NewPath();
        await File.WriteAllTextAsync(blocker, "not a directory");
        var path = Path.Combine(blocker, "broker.db");
        using var store = new SqliteSessionStore(new SqliteSessionStoreOptions { Path = path });

        var ex = Assert.ThrowsAsync<SessionStoreException>(async () => await store.SaveAsync(NewRecord()));

        Assert.That(ex!.Message, Does.Contain(path));
    }

    [Test]
    public async Task Two_stores_on_one_file_write_concurrently_without_busy_errors()
    {
        var path = NewPath();
        using var a = new SqliteSessionStore(new SqliteSessionStoreOptions { Path = path }, Clock);
        using var b = new SqliteSessionStore(new SqliteSessionStoreOptions { Path = path }, Clock);
        var records = Enumerable.Range(0, 40).Select(_ => NewRecord()).ToArray();

        await Task.WhenAll(records.Select((r, i) => Task.Run(async () => await (i % 2 == 0 ? a : b).SaveAsync(r))));

        foreach (var record in records)
        {
            Assert.That((await a.FindByTokenHashAsync(record.TokenHash))?.Id, Is.EqualTo(record.Id));
        }
    }

    private string NewPath() => Path.Combine(_directory, $"{Guid.NewGuid():N}.db");

    private static async Task<object?> ScalarAsync(SqliteConnection connection, string sql)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        var value = await command.ExecuteScalarAsync();
        return value is long l ? (int)l : value;
    }
}
