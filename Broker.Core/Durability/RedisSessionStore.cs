using System.Globalization;
using StackExchange.Redis;

namespace Broker.Durability;

/// <summary>
/// Session records and the user registry in Redis (clusters: every node sees every session). Keys,
/// under <see cref="RedisSessionStoreOptions.KeyPrefix"/>:
/// <list type="bullet">
/// <item><c>session:{id}</c>, a hash (token, principal, node, subs, meta, created, lastSeen), expiring at last-seen + TTL;</item>
/// <item><c>token:{hex of the token hash}</c> → id, with the same expiry;</item>
/// <item><c>sessions</c>, a sorted set of ids by last-seen, for <see cref="RemoveExpiredAsync"/>;</item>
/// <item><c>user:{principal}</c>, a hash sessionId → "registeredAtMs:node", and <c>users</c>, the set of principals that have one.</item>
/// </list>
/// Multi-key writes are Lua scripts or MULTI/EXEC, so each operation is atomic. Thread-safe. Every
/// operation is bounded by <see cref="RedisSessionStoreOptions.OperationTimeout"/>; failures are thrown
/// as <see cref="SessionStoreException"/>.
/// </summary>
public sealed class RedisSessionStore : ISessionStore, IUserRegistry, IDisposable
{
    private const int ExpireBatchSize = 500;

    // KEYS: session, token, index. ARGV: id, lastSeenMs, ttlMs, token key prefix, then field/value pairs.
    private const string SaveScript = """
        local owner = redis.call('GET', KEYS[2])
        if owner and owner ~= ARGV[1] then
          return redis.error_reply('token hash already belongs to session ' .. owner)
        end
        local old = redis.call('HGET', KEYS[1], 'token')
        if old then
          local oldKey = ARGV[4] .. old
          if oldKey ~= KEYS[2] and redis.call('GET', oldKey) == ARGV[1] then redis.call('DEL', oldKey) end
        end
        redis.call('DEL', KEYS[1])
        redis.call('HSET', KEYS[1], unpack(ARGV, 5))
        redis.call('PEXPIRE', KEYS[1], ARGV[3])
        redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
        redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
        return 1
        """;

    // KEYS: session, index. ARGV: id, lastSeenMs, ttlMs, token key prefix.
    private const string TouchScript = """
        local token = redis.call('HGET', KEYS[1], 'token')
        if not token then return 0 end
        redis.call('HSET', KEYS[1], 'lastSeen', ARGV[2])
        redis.call('PEXPIRE', KEYS[1], ARGV[3])
        redis.call('PEXPIRE', ARGV[4] .. token, ARGV[3])
        redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
        return 1
        """;

    // KEYS: session, index. ARGV: id, token key prefix.
    private const string RemoveScript = """
        local token = redis.call('HGET', KEYS[1], 'token')
        redis.call('ZREM', KEYS[2], ARGV[1])
        if not token then return 0 end
        local tokenKey = ARGV[2] .. token
        if redis.call('GET', tokenKey) == ARGV[1] then redis.call('DEL', tokenKey) end
        redis.call('DEL', KEYS[1])
        return 1
        """;

    // KEYS: index. ARGV: cutoffMs (exclusive), session key prefix, token key prefix, batch size.
    // Returns { records removed, ids examined }.
    private const string RemoveExpiredScript = """
        local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, tonumber(ARGV[4]))
        local removed = 0
        for _, id in ipairs(ids) do
          local sessionKey = ARGV[2] .. id
          local token = redis.call('HGET', sessionKey, 'token')
          if token then
            local tokenKey = ARGV[3] .. token
            if redis.call('GET', tokenKey) == id then redis.call('DEL', tokenKey) end
            redis.call('DEL', sessionKey)
            removed = removed + 1
          end
          redis.call('ZREM', KEYS[1], id)
        end
        return { removed, #ids }
        """;

    // KEYS: user, users. ARGV: principal, session key prefix, cutoffMs.
    private const string PruneUserScript = """
        local entries = redis.call('HGETALL', KEYS[1])
        local pruned = 0
        for i = 1, #entries, 2 do
          local sessionId, value = entries[i], entries[i + 1]
          local separator = string.find(value, ':', 1, true)
          local registered = separator and tonumber(string.sub(value, 1, separator - 1)) or 0
          if registered < tonumber(ARGV[3]) and redis.call('EXISTS', ARGV[2] .. sessionId) == 0 then
            redis.call('HDEL', KEYS[1], sessionId)
            pruned = pruned + 1
          end
        end
        if redis.call('HLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[1]) end
        return pruned
        """;

    // KEYS: user, users. ARGV: principal, session id.
    private const string UnregisterScript = """
        redis.call('HDEL', KEYS[1], ARGV[2])
        if redis.call('HLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[1]) end
        return 1
        """;

    private readonly RedisConnection _connection;
    private readonly TimeSpan _ttl;
    private readonly TimeSpan _operationTimeout;
    private readonly TimeProvider _time;
    private readonly string _sessionPrefix;
    private readonly string _tokenPrefix;
    private readonly string _userPrefix;
    private readonly RedisKey _indexKey;
    private readonly RedisKey _usersKey;

    public RedisSessionStore(RedisSessionStoreOptions? options = null, TimeProvider? timeProvider = null)
    {
        options ??= new RedisSessionStoreOptions();
        options.Validate();
        ArgumentNullException.ThrowIfNull(options.KeyPrefix, nameof(options));
        _connection = new RedisConnection(options.Configuration, options.ConnectTimeout, options.OperationTimeout);
        _ttl = options.Ttl;
        _operationTimeout = options.OperationTimeout;
        _time = timeProvider ?? TimeProvider.System;
        KeyPrefix = options.KeyPrefix;
        _sessionPrefix = KeyPrefix + "session:";
        _tokenPrefix = KeyPrefix + "token:";
        _userPrefix = KeyPrefix + "user:";
        _indexKey = KeyPrefix + "sessions";
        _usersKey = KeyPrefix + "users";
    }

    /// <summary>The prefix of every key this store writes.</summary>
    public string KeyPrefix { get; }

    /// <summary>The store's connection, which the control plane shares when there is no Redis cluster (<see cref="Cluster.RedisClusterControl"/>).</summary>
    internal RedisConnection Connection => _connection;

    internal TimeSpan OperationTimeout => _operationTimeout;

    public async ValueTask SaveAsync(SessionRecord record, CancellationToken cancellationToken = default)
    {
        SessionRecordChecks.Validate(record);
        var tokenHex = Convert.ToHexStringLower(record.TokenHash);
        var lastSeen = record.LastSeenAt.ToUnixTimeMilliseconds();
        var values = new List<RedisValue>(18)
        {
            record.Id, lastSeen, ExpiryMilliseconds(record.LastSeenAt), _tokenPrefix,
            "token", tokenHex,
            "subs", SessionStoreJson.SerializeSubscriptions(record.Subscriptions),
            "meta", SessionStoreJson.SerializeMetadata(record.Metadata),
            "created", record.CreatedAt.ToUnixTimeMilliseconds(),
            "lastSeen", lastSeen,
        };
        if (record.Principal is not null)
        {
            values.Add("principal");
            values.Add(record.Principal);
        }

        if (record.Node is not null)
        {
            values.Add("node");
            values.Add(record.Node);
        }

        RedisKey[] keys = [_sessionPrefix + record.Id, _tokenPrefix + tokenHex, _indexKey];
        await RunAsync("save session", db => db.ScriptEvaluateAsync(SaveScript, keys, [.. values]), cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask<SessionRecord?> FindByTokenHashAsync(ReadOnlyMemory<byte> tokenHash, CancellationToken cancellationToken = default)
    {
        var tokenHex = Convert.ToHexStringLower(tokenHash.Span);
        var id = await RunAsync("find session", db => db.StringGetAsync(_tokenPrefix + tokenHex), cancellationToken).ConfigureAwait(false);
        if (id.IsNullOrEmpty)
        {
            return null;
        }

        var record = await ReadAsync(id!, cancellationToken).ConfigureAwait(false);
        return record is not null && Convert.ToHexStringLower(record.TokenHash) == tokenHex ? record : null; // else expired or replaced between the two reads
    }

    public async ValueTask<SessionRecord?> FindByIdAsync(string sessionId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(sessionId);
        return await ReadAsync(sessionId, cancellationToken).ConfigureAwait(false);
    }

    private async Task<SessionRecord?> ReadAsync(string id, CancellationToken cancellationToken)
    {
        var entries = await RunAsync("find session", db => db.HashGetAllAsync(_sessionPrefix + id), cancellationToken).ConfigureAwait(false);
        var fields = entries.ToDictionary(e => (string)e.Name!, e => e.Value, StringComparer.Ordinal);
        if (!fields.TryGetValue("token", out var storedToken) || storedToken.IsNullOrEmpty
            || !fields.TryGetValue("lastSeen", out var lastSeenValue) || !fields.TryGetValue("created", out var createdValue))
        {
            return null;
        }

        var lastSeen = DateTimeOffset.FromUnixTimeMilliseconds((long)lastSeenValue);
        if (lastSeen < _time.GetUtcNow() - _ttl)
        {
            return null;
        }

        return new SessionRecord
        {
            Id = id,
            TokenHash = Convert.FromHexString((string)storedToken!),
            Principal = fields.TryGetValue("principal", out var principal) ? (string?)principal : null,
            Node = fields.TryGetValue("node", out var node) ? (string?)node : null,
            Subscriptions = fields.TryGetValue("subs", out var subs) ? SessionStoreJson.DeserializeSubscriptions(subs!) : [],
            Metadata = fields.TryGetValue("meta", out var meta) ? SessionStoreJson.DeserializeMetadata(meta!) : new Dictionary<string, string>(),
            CreatedAt = DateTimeOffset.FromUnixTimeMilliseconds((long)createdValue),
            LastSeenAt = lastSeen,
        };
    }

    public async ValueTask<bool> RemoveAsync(string sessionId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(sessionId);
        RedisKey[] keys = [_sessionPrefix + sessionId, _indexKey];
        RedisValue[] values = [sessionId, _tokenPrefix];
        var result = await RunAsync("remove session", db => db.ScriptEvaluateAsync(RemoveScript, keys, values), cancellationToken).ConfigureAwait(false);
        return (int)result == 1;
    }

    public async ValueTask TouchAsync(string sessionId, DateTimeOffset lastSeen, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(sessionId);
        RedisKey[] keys = [_sessionPrefix + sessionId, _indexKey];
        RedisValue[] values = [sessionId, lastSeen.ToUnixTimeMilliseconds(), ExpiryMilliseconds(lastSeen), _tokenPrefix];
        await RunAsync("touch session", db => db.ScriptEvaluateAsync(TouchScript, keys, values), cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask<int> RemoveExpiredAsync(DateTimeOffset cutoff, CancellationToken cancellationToken = default)
    {
        var cutoffMs = cutoff.ToUnixTimeMilliseconds();
        RedisKey[] indexKeys = [_indexKey];
        RedisValue[] values = [cutoffMs, _sessionPrefix, _tokenPrefix, ExpireBatchSize];
        var removed = 0;
        while (true)
        {
            var result = (RedisResult[])(await RunAsync("remove expired sessions", db => db.ScriptEvaluateAsync(RemoveExpiredScript, indexKeys, values), cancellationToken).ConfigureAwait(false))!;
            removed += (int)result[0];
            if ((int)result[1] < ExpireBatchSize)
            {
                break;
            }
        }

        // Registry entries of sessions that no longer exist: removed here, expired by Redis, or left by
        // a node that died before unregistering. An entry younger than the cutoff is kept, since its
        // record may not be written yet.
        var principals = await RunAsync("remove expired sessions", db => db.SetMembersAsync(_usersKey), cancellationToken).ConfigureAwait(false);
        foreach (var principal in principals)
        {
            RedisKey[] keys = [_userPrefix + (string)principal!, _usersKey];
            RedisValue[] pruneValues = [principal, _sessionPrefix, cutoffMs];
            await RunAsync("prune user registry", db => db.ScriptEvaluateAsync(PruneUserScript, keys, pruneValues), cancellationToken).ConfigureAwait(false);
        }

        return removed;
    }

    public async ValueTask RegisterAsync(string principal, string sessionId, string node, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(principal);
        ArgumentException.ThrowIfNullOrEmpty(sessionId);
        ArgumentNullException.ThrowIfNull(node);
        var value = string.Create(CultureInfo.InvariantCulture, $"{_time.GetUtcNow().ToUnixTimeMilliseconds()}:{node}");
        await RunAsync(
            "register user session",
            db =>
            {
                var transaction = db.CreateTransaction();
                _ = transaction.HashSetAsync(_userPrefix + principal, sessionId, value);
                _ = transaction.SetAddAsync(_usersKey, principal);
                return transaction.ExecuteAsync();
            },
            cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask UnregisterAsync(string principal, string sessionId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(principal);
        ArgumentException.ThrowIfNullOrEmpty(sessionId);
        RedisKey[] keys = [_userPrefix + principal, _usersKey];
        RedisValue[] values = [principal, sessionId];
        await RunAsync("unregister user session", db => db.ScriptEvaluateAsync(UnregisterScript, keys, values), cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask<IReadOnlyList<UserSession>> GetSessionsAsync(string principal, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(principal);
        var entries = await RunAsync("list user sessions", db => db.HashGetAllAsync(_userPrefix + principal), cancellationToken).ConfigureAwait(false);
        var sessions = new List<UserSession>(entries.Length);
        foreach (var entry in entries)
        {
            var value = (string)entry.Value!;
            var separator = value.IndexOf(':', StringComparison.Ordinal);
            sessions.Add(new UserSession(entry.Name!, separator < 0 ? value : value[(separator + 1)..]));
        }

        sessions.Sort((a, b) => string.CompareOrdinal(a.SessionId, b.SessionId));
        return sessions;
    }

    public void Dispose() => _connection.Dispose();

    /// <summary>Milliseconds until a session last seen at <paramref name="lastSeen"/> expires (at least 1: Redis rejects 0).</summary>
    private long ExpiryMilliseconds(DateTimeOffset lastSeen) =>
        Math.Max(1, (long)(lastSeen + _ttl - _time.GetUtcNow()).TotalMilliseconds);

    private async Task<T> RunAsync<T>(string operation, Func<IDatabase, Task<T>> action, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        try
        {
            // StackExchange.Redis's commands take no cancellation token; WaitAsync bounds the wait whatever
            // the client does (an abandoned command completes or fails on its own).
            var database = await _connection.GetDatabaseAsync().WaitAsync(_operationTimeout, cancellationToken).ConfigureAwait(false);
            return await action(database).WaitAsync(_operationTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            throw new SessionStoreException($"Redis session store ({_connection.Endpoints}): could not {operation}: {ex.Message}", ex);
        }
    }
}
