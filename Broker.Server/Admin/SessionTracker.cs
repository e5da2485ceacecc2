using Broker.Durability;
using Broker.Sessions;
using Microsoft.Extensions.Options;

namespace Broker.Server.Admin;

/// <summary>
/// This node's sessions as the admin API lists them: the live ones straight from <see cref="StompSessionRegistry"/>,
/// and the "away" ones, durable sessions whose connection dropped here and that a token can still resume (the
/// state their connection left to the store). Away sessions are learnt by watching the live ones (every sample
/// and before each API answer), kept until they resume, end or pass the TTL, and at most
/// <see cref="MaxAwaySessions"/> of them (the oldest are forgotten here first; the store still has them).
/// </summary>
internal sealed class SessionTracker(StompSessionRegistry registry, IOptions<DurableSessionOptions> durableOptions, ILogger<SessionTracker> logger)
{
    /// <summary>Most away sessions listed (limit name <c>admin-away-sessions</c>).</summary>
    public const int MaxAwaySessions = 10_000;

    private readonly TimeSpan _ttl = durableOptions.Value.Ttl;
    private readonly Lock _gate = new();
    private readonly HashSet<StompSession> _watched = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<string, SessionRecord> _away = new(StringComparer.Ordinal);
    private long _forgotten;

    /// <summary>Away sessions forgotten because <see cref="MaxAwaySessions"/> was reached.</summary>
    public long Forgotten => Interlocked.Read(ref _forgotten);

    /// <summary>The established live sessions now.</summary>
    public List<StompSession> Live()
    {
        var live = new List<StompSession>();
        foreach (var id in registry.Snapshot().Keys)
        {
            if (registry.Find(id) is { IsEstablished: true } session)
            {
                live.Add(session);
            }
        }

        return live;
    }

    /// <summary>Learns which durable sessions dropped since the last look; returns the live ones.</summary>
    public List<StompSession> Refresh()
    {
        var live = Live();
        lock (_gate)
        {
            foreach (var session in live)
            {
                if (session.IsDurable)
                {
                    _watched.Add(session);
                }

                // A session that resumed is back.
                _away.Remove(session.Id);
            }

            _watched.RemoveWhere(session =>
            {
                if (!session.Finished.IsCompleted)
                {
                    return false;
                }

                if (session.ResumableState is { } state && registry.Find(state.Id) is null)
                {
                    Park(state);
                }

                return true;
            });

            var cutoff = DateTimeOffset.UtcNow - _ttl;
            List<string>? expired = null;
            foreach (var (id, record) in _away)
            {
                if (record.LastSeenAt < cutoff)
                {
                    (expired ??= []).Add(id);
                }
            }

            foreach (var id in expired ?? [])
            {
                _away.Remove(id);
            }
        }

        return live;
    }

    /// <summary>The away sessions (of <paramref name="principal"/> only, when given).</summary>
    public List<SessionRecord> Away(string? principal = null)
    {
        lock (_gate)
        {
            return principal is null ? [.. _away.Values] : [.. _away.Values.Where(r => r.Principal == principal)];
        }
    }

    public int AwayCount
    {
        get
        {
            lock (_gate)
            {
                return _away.Count;
            }
        }
    }

    /// <summary>Stops listing an away session (its record was deleted); false if it was not listed.</summary>
    public bool Forget(string sessionId)
    {
        lock (_gate)
        {
            return _away.Remove(sessionId);
        }
    }

    // Under _gate.
    private void Park(SessionRecord state)
    {
        if (_away.Count >= MaxAwaySessions && !_away.ContainsKey(state.Id))
        {
            var oldest = _away.Values.MinBy(r => r.LastSeenAt)!;
            _away.Remove(oldest.Id);
            if (Interlocked.Increment(ref _forgotten) == 1)
            {
                Log.AwayLimitReached(logger, MaxAwaySessions);
            }
        }

        _away[state.Id] = state;
    }
}
