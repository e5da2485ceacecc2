using Microsoft.Data.Sqlite;

namespace Broker.Durability;

/// <summary>
/// Session records and the user registry in a SQLite file (one node, the default). WAL mode,
/// <c>synchronous=NORMAL</c>; the schema is created and migrated on first use. Each operation takes a
/// connection from Microsoft.Data.Sqlite's pool, so the store is thread-safe and several instances
/// (or processes) may share the file. Failures are thrown as <see cref="SessionStoreException"/>.
/// </summary>
public sealed class SqliteSessionStore : ISessionStore, IUserRegistry, IDisposable
{
    private readonly string _connectionString;
    private readonly TimeSpan _ttl;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _initGate = new(1, 1);
    private volatile bool _initialized;

    public SqliteSessionStore(SqliteSessionStoreOptions? options = null, TimeProvider? timeProvider = null)
    {
        options ??= new SqliteSessionStoreOptions();
        options.Validate();
        ArgumentException.ThrowIfNullOrWhiteSpace(options.Path, nameof(options));
        FilePath = System.IO.Path.GetFullPath(options.Path);
        _ttl = options.Ttl;
        _time = timeProvider ?? TimeProvider.System;
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = FilePath,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Cache = SqliteCacheMode.Private,
            Pooling = true,
            DefaultTimeout = Math.Max(1, (int)Math.Ceiling(options.BusyTimeout.TotalSeconds)),
        }.ToString();
        BusyTimeoutMilliseconds = (int)Math.Clamp(options.BusyTimeout.TotalMilliseconds, 0, int.MaxValue);
    }

    /// <summary>The full path of the database file.</summary>
    public string FilePath { get; }

    private int BusyTimeoutMilliseconds { get; }

    public async ValueTask SaveAsync(SessionRecord record, CancellationToken cancellationToken = default)
    {
        SessionRecordChecks.Validate(record);
        var subscriptions = SessionStoreJson.SerializeSubscriptions(record.Subscriptions);
        var metadata = SessionStoreJson.SerializeMetadata(record.Metadata);
        await ExecuteAsync(
            "save session",
            async (connection, ct) =>
            {
                await using var command = connection.CreateCommand();
                command.CommandText = """
                    INSERT INTO sessions (id, token_hash, principal, node, subscriptions, metadata, created_at, last_seen_at)
                    VALUES ($id, $token_hash, $principal, $node, $subscriptions, $metadata, $created_at, $last_seen_at)
                    ON CONFLICT (id) DO UPDATE SET
                        token_hash = excluded.token_hash, principal = excluded.principal, node = excluded.node,
                        subscriptions = excluded.subscriptions, metadata = excluded.metadata,
                        created_at = excluded.created_at, last_seen_at = excluded.last_seen_at
                    """;
                command.Parameters.AddWithValue("$id", record.Id);
                command.Parameters.AddWithValue("$token_hash", record.TokenHash);
                command.Parameters.AddWithValue("$principal", (object?)record.Principal ?? DBNull.Value);
                command.Parameters.AddWithValue("$node", (object?)record.Node ?? DBNull.Value);
                command.Parameters.AddWithValue("$subscriptions", subscriptions);
                command.Parameters.AddWithValue("$metadata", metadata);
                command.Parameters.AddWithValue("$created_at", record.CreatedAt.ToUnixTimeMilliseconds());
                command.Parameters.AddWithValue("$last_seen_at", record.LastSeenAt.ToUnixTimeMilliseconds());
                await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
                return 0;
            },
            cancellationToken).ConfigureAwait(false);
    }

    public ValueTask<SessionRecord?> FindByTokenHashAsync(ReadOnlyMemory<byte> tokenHash, CancellationToken cancellationToken = default)
    {
        var hash = tokenHash.ToArray();
        var oldest = (_time.GetUtcNow() - _ttl).ToUnixTimeMilliseconds();
        return ExecuteAsync<SessionRecord?>(
            "find session",
            async (connection, ct) =>
            {
                await using var command = connection.CreateCommand();
                command.CommandText = """
                    SELECT id, token_hash, principal, node, subscriptions, metadata, created_at, last_seen_at
                    FROM sessions WHERE token_hash = $token_hash AND last_seen_at >= $oldest
                    """;
                command.Parameters.AddWithValue("$token_hash", hash);
                command.Parameters.AddWithValue("$oldest", oldest);
                await using var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
                if (!await reader.ReadAsync(ct).ConfigureAwait(false))
                {
                    return null;
                }

                return new SessionRecord
                {
                    Id = reader.GetString(0),
                    TokenHash = (byte[])reader.GetValue(1),
                    Principal = reader.IsDBNull(2) ? null : reader.GetString(2),
                    Node = reader.IsDBNull(3) ? null : reader.GetString(3),
                    Subscriptions = SessionStoreJson.DeserializeSubscriptions(reader.GetString(4)),
                    Metadata = SessionStoreJson.DeserializeMetadata(reader.GetString(5)),
                    CreatedAt = DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(6)),
                    LastSeenAt = DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(7)),
                };
            },
            cancellationToken);
    }

    public ValueTask<bool> RemoveAsync(string sessionId, CancellationToken cancellationToken = default) =>
        ExecuteAsync(
            "remove session",
            async (connection, ct) =>
            {
                await using var command = connection.CreateCommand();
                command.CommandText = "DELETE FROM sessions WHERE id = $id";
                command.Parameters.AddWithValue("$id", sessionId);
                return await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false) > 0;
            },
            cancellationToken);

    public async ValueTask TouchAsync(string sessionId, DateTimeOffset lastSeen, CancellationToken cancellationToken = default) =>
        await ExecuteAsync(
            "touch session",
            async (connection, ct) =>
            {
                await using var command = connection.CreateCommand();
                command.CommandText = "UPDATE sessions SET last_seen_at = $last_seen_at WHERE id = $id";
                command.Parameters.AddWithValue("$id", sessionId);
                command.Parameters.AddWithValue("$last_seen_at", lastSeen.ToUnixTimeMilliseconds());
                return await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            },
            cancellationToken).ConfigureAwait(false);

    public ValueTask<int> RemoveExpiredAsync(DateTimeOffset cutoff, CancellationToken cancellationToken = default)
    {
        var cutoffMs = cutoff.ToUnixTimeMilliseconds();
        return ExecuteAsync(
            "remove expired sessions",
            async (connection, ct) =>
            {
                await using var command = connection.CreateCommand();
                command.CommandText = "DELETE FROM sessions WHERE last_seen_at < $cutoff";
                command.Parameters.AddWithValue("$cutoff", cutoffMs);
                var removed = await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false);

                // Registry entries of sessions that no longer exist (their node died before unregistering);
                // an entry younger than the cutoff is kept, since its record may not be written yet.
                await using var prune = connection.CreateCommand();
                prune.CommandText = """
                    DELETE FROM user_sessions
                    WHERE registered_at < $cutoff AND NOT EXISTS (SELECT 1 FROM sessions WHERE sessions.id = user_sessions.session_id)
                    """;
                prune.Parameters.AddWithValue("$cutoff", cutoffMs);
                await prune.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
                return removed;
            },
            cancellationToken);
    }

    public async ValueTask RegisterAsync(string principal, string sessionId, string node, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(principal);
        ArgumentException.ThrowIfNullOrEmpty(sessionId);
        ArgumentNullException.ThrowIfNull(node);
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        await ExecuteAsync(
            "register user session",
            async (connection, ct) =>
            {
                await using var command = connection.CreateCommand();
                command.CommandText = """
                    INSERT INTO user_sessions (principal, session_id, node, registered_at) VALUES ($principal, $session_id, $node, $now)
                    ON CONFLICT (principal, session_id) DO UPDATE SET node = excluded.node, registered_at = excluded.registered_at
                    """;
                command.Parameters.AddWithValue("$principal", principal);
                command.Parameters.AddWithValue("$session_id", sessionId);
                command.Parameters.AddWithValue("$node", node);
                command.Parameters.AddWithValue("$now", now);
                return await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            },
            cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask UnregisterAsync(string principal, string sessionId, CancellationToken cancellationToken = default) =>
        await ExecuteAsync(
            "unregister user session",
            async (connection, ct) =>
            {
                await using var command = connection.CreateCommand();
                command.CommandText = "DELETE FROM user_sessions WHERE principal = $principal AND session_id = $session_id";
                command.Parameters.AddWithValue("$principal", principal);
                command.Parameters.AddWithValue("$session_id", sessionId);
                return await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            },
            cancellationToken).ConfigureAwait(false);

    public ValueTask<IReadOnlyList<UserSession>> GetSessionsAsync(string principal, CancellationToken cancellationToken = default) =>
        ExecuteAsync<IReadOnlyList<UserSession>>(
            "list user sessions",
            async (connection, ct) =>
            {
                await using var command = connection.CreateCommand();
                command.CommandText = "SELECT session_id, node FROM user_sessions WHERE principal = $principal ORDER BY session_id";
                command.Parameters.AddWithValue("$principal", principal);
                await using var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
                var sessions = new List<UserSession>();
                while (await reader.ReadAsync(ct).ConfigureAwait(false))
                {
                    sessions.Add(new UserSession(reader.GetString(0), reader.GetString(1)));
                }

                return sessions;
            },
            cancellationToken);

    public void Dispose() => _initGate.Dispose();

    private async ValueTask<T> ExecuteAsync<T>(string operation, Func<SqliteConnection, CancellationToken, Task<T>> action, CancellationToken cancellationToken)
    {
        try
        {
            await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
            await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
            return await action(connection, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is SqliteException or IOException or UnauthorizedAccessException)
        {
            throw new SessionStoreException($"SQLite session store '{FilePath}': could not {operation}: {ex.Message}", ex);
        }
    }

    private async Task<SqliteConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var connection = new SqliteConnection(_connectionString);
        try
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            // Per connection (a pooled connection keeps them; setting them again is cheap).
            await using var command = connection.CreateCommand();
            command.CommandText = $"PRAGMA busy_timeout = {BusyTimeoutMilliseconds}; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;";
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async ValueTask EnsureInitializedAsync(CancellationToken cancellationToken)
    {
        if (_initialized)
        {
            return;
        }

        await _initGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!_initialized)
            {
                // A failure leaves _initialized false, so the next operation tries again (the
                // directory may have become writable).
                await InitializeAsync(cancellationToken).ConfigureAwait(false);
                _initialized = true;
            }
        }
        finally
        {
            _initGate.Release();
        }
    }

    private async Task InitializeAsync(CancellationToken cancellationToken)
    {
        var directory = System.IO.Path.GetDirectoryName(FilePath);
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (var wal = connection.CreateCommand())
        {
            // Persistent in the file: every later connection, of any process, uses WAL.
            wal.CommandText = "PRAGMA journal_mode = WAL";
            var mode = (string?)await wal.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
            if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
            {
                throw new SessionStoreException($"SQLite session store '{FilePath}': could not switch to WAL mode (journal_mode is '{mode}').");
            }
        }

        await SqliteSchema.MigrateAsync(connection, cancellationToken).ConfigureAwait(false);
    }
}
