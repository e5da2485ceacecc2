namespace Broker.Durability;

/// <summary>
/// Session records and the user registry in this process's memory: for tests and single-node runs
/// that need no durability (<c>Broker:Sessions:Store=memory</c>). Thread-safe; every operation
/// completes synchronously.
/// </summary>
public sealed class InMemorySessionStore : ISessionStore, IUserRegistry
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, SessionRecord> _sessions = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _sessionIdByTokenHex = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Dictionary<string, Registration>> _users = new(StringComparer.Ordinal);
    private readonly TimeSpan _ttl;
    private readonly TimeProvider _time;

    public InMemorySessionStore(SessionStoreOptions? options = null, TimeProvider? timeProvider = null)
    {
        options ??= new SessionStoreOptions();
        options.Validate();
        _ttl = options.Ttl;
        _time = timeProvider ?? TimeProvider.System;
    }

    public ValueTask SaveAsync(SessionRecord record, CancellationToken cancellationToken = default)
    {
        SessionRecordChecks.Validate(record);
        cancellationToken.ThrowIfCancellationRequested();
        // A copy, so that the caller's lists and arrays can change without changing what is stored.
        var copy = record with
        {
            TokenHash = (byte[])record.TokenHash.Clone(),
            Subscriptions = [.. record.Subscriptions],
            Metadata = new Dictionary<string, string>(record.Metadata, StringComparer.Ordinal),
        };
        var tokenHex = Convert.ToHexStringLower(copy.TokenHash);
        lock (_lock)
        {
            if (_sessionIdByTokenHex.TryGetValue(tokenHex, out var owner) && owner != copy.Id)
            {
                throw new SessionStoreException($"The token hash of session '{copy.Id}' already belongs to session '{owner}'.");
            }

            if (_sessions.TryGetValue(copy.Id, out var previous))
            {
                _sessionIdByTokenHex.Remove(Convert.ToHexStringLower(previous.TokenHash));
            }

            _sessions[copy.Id] = copy;
            _sessionIdByTokenHex[tokenHex] = copy.Id;
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask<SessionRecord?> FindByTokenHashAsync(ReadOnlyMemory<byte> tokenHash, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var tokenHex = Convert.ToHexStringLower(tokenHash.Span);
        var oldest = _time.GetUtcNow() - _ttl;
        lock (_lock)
        {
            if (_sessionIdByTokenHex.TryGetValue(tokenHex, out var id) && _sessions.TryGetValue(id, out var record) && record.LastSeenAt >= oldest)
            {
                return ValueTask.FromResult<SessionRecord?>(record with { TokenHash = (byte[])record.TokenHash.Clone() });
            }
        }

        return ValueTask.FromResult<SessionRecord?>(null);
    }

    public ValueTask<SessionRecord?> FindByIdAsync(string sessionId, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var oldest = _time.GetUtcNow() - _ttl;
        lock (_lock)
        {
            return ValueTask.FromResult(_sessions.TryGetValue(sessionId, out var record) && record.LastSeenAt >= oldest
                ? record with { TokenHash = (byte[])record.TokenHash.Clone() }
                : null);
        }
    }

    public ValueTask<bool> RemoveAsync(string sessionId, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        lock (_lock)
        {
            return ValueTask.FromResult(RemoveLocked(sessionId));
        }
    }

    public ValueTask TouchAsync(string sessionId, DateTimeOffset lastSeen, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        lock (_lock)
        {
            if (_sessions.TryGetValue(sessionId, out var record))
            {
                _sessions[sessionId] = record with { LastSeenAt = lastSeen };
            }
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask<int> RemoveExpiredAsync(DateTimeOffset cutoff, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var removed = 0;
        lock (_lock)
        {
            foreach (var record in _sessions.Values.Where(r => r.LastSeenAt < cutoff).ToList())
            {
                RemoveLocked(record.Id);
                removed++;
            }

            // Registry entries of sessions that no longer exist (their node died before unregistering);
            // an entry younger than the cutoff is kept, since its record may not be written yet.
            foreach (var (principal, sessions) in _users.ToList())
            {
                foreach (var (sessionId, registration) in sessions.ToList())
                {
                    if (registration.RegisteredAt < cutoff && !_sessions.ContainsKey(sessionId))
                    {
                        sessions.Remove(sessionId);
                    }
                }

                if (sessions.Count == 0)
                {
                    _users.Remove(principal);
                }
            }
        }

        return ValueTask.FromResult(removed);
    }

    public ValueTask RegisterAsync(string principal, string sessionId, string node, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(principal);
        ArgumentException.ThrowIfNullOrEmpty(sessionId);
        ArgumentNullException.ThrowIfNull(node);
        cancellationToken.ThrowIfCancellationRequested();
        var registration = new Registration(node, _time.GetUtcNow());
        lock (_lock)
        {
            if (!_users.TryGetValue(principal, out var sessions))
            {
                sessions = new Dictionary<string, Registration>(StringComparer.Ordinal);
                _users[principal] = sessions;
            }

            sessions[sessionId] = registration;
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask UnregisterAsync(string principal, string sessionId, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        lock (_lock)
        {
            if (_users.TryGetValue(principal, out var sessions) && sessions.Remove(sessionId) && sessions.Count == 0)
            {
                _users.Remove(principal);
            }
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask<IReadOnlyList<UserSession>> GetSessionsAsync(string principal, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        lock (_lock)
        {
            IReadOnlyList<UserSession> result = _users.TryGetValue(principal, out var sessions)
                ? [.. sessions.Select(s => new UserSession(s.Key, s.Value.Node))]
                : [];
            return ValueTask.FromResult(result);
        }
    }

    private bool RemoveLocked(string sessionId)
    {
        if (!_sessions.Remove(sessionId, out var record))
        {
            return false;
        }

        _sessionIdByTokenHex.Remove(Convert.ToHexStringLower(record.TokenHash));
        return true;
    }

    private readonly record struct Registration(string Node, DateTimeOffset RegisteredAt);
}
