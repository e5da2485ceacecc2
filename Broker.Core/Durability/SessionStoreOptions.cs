namespace Broker.Durability;

/// <summary>Options every session store shares.</summary>
public class SessionStoreOptions
{
    /// <summary>
    /// How long a session outlives its last activity: a record last seen longer ago than this is
    /// never found by its token, and Redis deletes its keys by itself. Default 24 hours.
    /// </summary>
    public TimeSpan Ttl { get; set; } = TimeSpan.FromHours(24);

    internal void Validate()
    {
        if (Ttl <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(Ttl), Ttl, "The session TTL must be positive.");
        }
    }
}

/// <summary>Options of <see cref="SqliteSessionStore"/>.</summary>
public sealed class SqliteSessionStoreOptions : SessionStoreOptions
{
    /// <summary>The database file; a relative path is taken from the current directory. Its directory is created when missing.</summary>
    public string Path { get; set; } = "data/broker.db";

    /// <summary>How long an operation waits for another writer (SQLite's busy timeout). Default 5 seconds.</summary>
    public TimeSpan BusyTimeout { get; set; } = TimeSpan.FromSeconds(5);
}

/// <summary>Options of <see cref="RedisSessionStore"/>.</summary>
public sealed class RedisSessionStoreOptions : SessionStoreOptions
{
    /// <summary>A StackExchange.Redis configuration string. Default <c>127.0.0.1:6379</c>.</summary>
    public string Configuration { get; set; } = "127.0.0.1:6379";

    /// <summary>Prefix of every key the store writes. Default <c>broker:</c>.</summary>
    public string KeyPrefix { get; set; } = "broker:";

    /// <summary>Longest wait for a connection to Redis. Default 5 seconds.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Longest wait for any one operation before it fails with <see cref="SessionStoreException"/>. Default 5 seconds.</summary>
    public TimeSpan OperationTimeout { get; set; } = TimeSpan.FromSeconds(5);
}
