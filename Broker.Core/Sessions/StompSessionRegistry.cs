using System.Collections.Concurrent;

namespace Broker.Sessions;

/// <summary>The live sessions of this node: for graceful shutdown and for closing a user's sessions.</summary>
public sealed class StompSessionRegistry
{
    private readonly ConcurrentDictionary<string, StompSession> _sessions = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, StompSession> _byTokenHash = new(StringComparer.Ordinal);

    // Connected sessions by principal, for /user/ destinations: copy-on-write arrays, read without a lock.
    private readonly ConcurrentDictionary<string, StompSession[]> _byPrincipal = new(StringComparer.Ordinal);
    private readonly Lock _principalGate = new();

    public int Count => _sessions.Count;

    internal void Add(StompSession session) => _sessions[session.Id] = session;

    internal void Remove(StompSession session)
    {
        _sessions.TryRemove(new KeyValuePair<string, StompSession>(session.Id, session));
        if (session.Principal is { } principal)
        {
            lock (_principalGate)
            {
                if (_byPrincipal.TryGetValue(principal, out var current) && Array.IndexOf(current, session) >= 0)
                {
                    var rest = Array.FindAll(current, s => s != session);
                    if (rest.Length == 0)
                    {
                        _byPrincipal.TryRemove(principal, out _);
                    }
                    else
                    {
                        _byPrincipal[principal] = rest;
                    }
                }
            }
        }

        if (session.TokenHash.Length > 0)
        {
            _byTokenHash.TryRemove(new KeyValuePair<string, StompSession>(Convert.ToHexString(session.TokenHash), session));
        }
    }

    /// <summary>Files a connected session under its principal (its id is final by then), for /user/ destinations.</summary>
    internal void IndexUser(StompSession session)
    {
        if (session.Principal is not { } principal)
        {
            return;
        }

        lock (_principalGate)
        {
            _byPrincipal[principal] = _byPrincipal.TryGetValue(principal, out var current) ? [.. current, session] : [session];
            if (_dormant.TryGetValue(principal, out var dormant) && dormant.Remove(session.Id) && dormant.Count == 0)
            {
                _dormant.Remove(principal);
            }
        }
    }

    /// <summary>The connected sessions of <paramref name="principal"/> on this node.</summary>
    internal StompSession[] SessionsOf(string principal) => _byPrincipal.GetValueOrDefault(principal) ?? [];

    // Durable sessions that dropped here and may resume, by principal: what they subscribed to under /user/,
    // so messages sent to the user meanwhile wait in their queues. Kept until resumed or the TTL passes.
    private readonly Dictionary<string, Dictionary<string, DormantSession>> _dormant = new(StringComparer.Ordinal);

    /// <summary>Remembers a dropped durable session's user destinations until <paramref name="expiresAt"/> (tick count, ms).</summary>
    internal void Park(string principal, string sessionId, string[] userDestinations, long expiresAt)
    {
        if (userDestinations.Length == 0)
        {
            return;
        }

        lock (_principalGate)
        {
            SweepDormant();
            if (!_dormant.TryGetValue(principal, out var sessions))
            {
                _dormant[principal] = sessions = new(StringComparer.Ordinal);
            }

            sessions[sessionId] = new DormantSession(userDestinations, expiresAt);
        }
    }

    /// <summary>The ids of <paramref name="principal"/>'s dropped, resumable sessions here that subscribed to <paramref name="userDestination"/>.</summary>
    internal List<string> DormantSubscribers(string principal, string userDestination)
    {
        var found = new List<string>();
        lock (_principalGate)
        {
            if (!_dormant.TryGetValue(principal, out var sessions))
            {
                return found;
            }

            var now = Environment.TickCount64;
            foreach (var (id, dormant) in sessions)
            {
                if (dormant.ExpiresAt <= now)
                {
                    sessions.Remove(id);
                }
                else if (Array.IndexOf(dormant.Destinations, userDestination) >= 0)
                {
                    found.Add(id);
                }
            }

            if (sessions.Count == 0)
            {
                _dormant.Remove(principal);
            }
        }

        return found;
    }

    /// <summary>Forgets a dropped session's user destinations (it was ended for good): messages to its user no longer wait for it.</summary>
    internal void Unpark(string principal, string sessionId)
    {
        lock (_principalGate)
        {
            if (_dormant.TryGetValue(principal, out var sessions) && sessions.Remove(sessionId) && sessions.Count == 0)
            {
                _dormant.Remove(principal);
            }
        }
    }

    private long _dormantSweptAt = Environment.TickCount64;

    // At most once a minute, under _principalGate: forget sessions whose TTL has passed.
    private void SweepDormant()
    {
        var now = Environment.TickCount64;
        if (now - _dormantSweptAt < 60_000)
        {
            return;
        }

        _dormantSweptAt = now;
        foreach (var (principal, sessions) in _dormant)
        {
            foreach (var (id, dormant) in sessions)
            {
                if (dormant.ExpiresAt <= now)
                {
                    sessions.Remove(id);
                }
            }

            if (sessions.Count == 0)
            {
                _dormant.Remove(principal);
            }
        }
    }

    private sealed record DormantSession(string[] Destinations, long ExpiresAt);

    /// <summary>Files a durable session under its token hash, for resume.</summary>
    internal void IndexToken(StompSession session) => _byTokenHash[Convert.ToHexString(session.TokenHash)] = session;

    /// <summary>Re-files a session under the id it resumed.</summary>
    internal void Rename(StompSession session, string newId)
    {
        _sessions.TryRemove(new KeyValuePair<string, StompSession>(session.Id, session));
        _sessions[newId] = session;
    }

    internal StompSession? FindByTokenHash(ReadOnlySpan<byte> tokenHash) => _byTokenHash.GetValueOrDefault(Convert.ToHexString(tokenHash));

    /// <summary>The live session with <paramref name="sessionId"/> on this node, if any.</summary>
    public StompSession? Find(string sessionId) => _sessions.GetValueOrDefault(sessionId);

    /// <summary>The live sessions of this node now (some may be connecting or closing).</summary>
    internal ICollection<StompSession> All => _sessions.Values;

    /// <summary>The principals of the connected sessions (null for anonymous ones), by session id.</summary>
    public IReadOnlyDictionary<string, string?> Snapshot() => _sessions.ToDictionary(p => p.Key, p => p.Value.Principal);

    /// <summary>Sends every session an ERROR with <paramref name="reason"/> and closes it.</summary>
    public void CloseAll(string reason)
    {
        foreach (var session in _sessions.Values)
        {
            session.Close(CloseReason.ServerShutdown, reason);
        }
    }

    /// <summary>Closes every session of <paramref name="principal"/> on this node; returns how many.</summary>
    public int CloseUser(string principal, string reason)
    {
        var closed = 0;
        foreach (var session in _sessions.Values)
        {
            if (session.Principal == principal)
            {
                session.Close(reason);
                closed++;
            }
        }

        return closed;
    }
}
