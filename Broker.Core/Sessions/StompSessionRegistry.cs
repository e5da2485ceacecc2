using System.Collections.Concurrent;

namespace Broker.Sessions;

/// <summary>The live sessions of this node: for graceful shutdown and for closing a user's sessions.</summary>
public sealed class StompSessionRegistry
{
    private readonly ConcurrentDictionary<string, StompSession> _sessions = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, StompSession> _byTokenHash = new(StringComparer.Ordinal);

    public int Count => _sessions.Count;

    internal void Add(StompSession session) => _sessions[session.Id] = session;

    internal void Remove(StompSession session)
    {
        _sessions.TryRemove(new KeyValuePair<string, StompSession>(session.Id, session));
        if (session.TokenHash.Length > 0)
        {
            _byTokenHash.TryRemove(new KeyValuePair<string, StompSession>(Convert.ToHexString(session.TokenHash), session));
        }
    }

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

    /// <summary>The principals of the connected sessions (null for anonymous ones), by session id.</summary>
    public IReadOnlyDictionary<string, string?> Snapshot() => _sessions.ToDictionary(p => p.Key, p => p.Value.Principal);

    /// <summary>Sends every session an ERROR with <paramref name="reason"/> and closes it.</summary>
    public void CloseAll(string reason)
    {
        foreach (var session in _sessions.Values)
        {
            session.Close(reason);
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
