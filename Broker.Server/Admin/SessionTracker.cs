using Broker.Durability;
using Broker.Sessions;
using Microsoft.Extensions.Options;

namespace Broker.Server.Admin;

/// <summary>
/// This node's sessions as the admin API lists them: the live ones straight from <see cref="StompSessionRegistry"/>,
/// and the "away" ones, durable sessions whose connection closed here without DISCONNECT and that their token can
/// still resume (with the state their connection left to the store). Away sessions are learnt as they leave the
/// registry, kept until they resume, end or pass the TTL, and at most <see cref="MaxAwaySessions"/> of them (the
/// oldest are forgotten here first; the store still has them).
/// </summary>
internal sealed class SessionTracker : IDisposable
{
    /// <summary>Most away sessions listed (limit name <c>admin-away-sessions</c>).</summary>
    public const int MaxAwaySessions = 10_000;

    private readonly StompSessionRegistry _registry;
    private readonly ILogger _logger;
    private readonly TimeSpan _ttl;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, SessionRecord> _away = new(StringComparer.Ordinal);
    private long _forgotten;

    public SessionTracker(StompSessionRegistry registry, IOptions<DurableSessionOptions> durableOptions, ILogger<SessionTracker> logger)
    {
        _registry = registry;
        _logger = logger;
        _ttl = durableOptions.Value.Ttl;
        registry.Removed += OnRemoved;
    }

    /// <summary>Away sessions forgotten because <see cref="MaxAwaySessions"/> was reached.</summary>
    public long Forgotten => Interlocked.Read(ref _forgotten);

    /// <summary>The established live sessions now, after <see cref="Prune"/>.</summary>
    public List<StompSession> Refresh()
    {
        Prune();
        var live = new List<StompSession>();
        foreach (var id in _registry.Snapshot().Keys)
        {
            if (_registry.Find(id) is { IsEstablished: true } session)
            {
                live.Add(session);
            }
        }

        return live;
    }

    /// <summary>Stops listing away sessions that are live again (resumed) or whose TTL has passed.</summary>
    public void Prune()
    {
        lock (_gate)
        {
            if (_away.Count == 0)
            {
                return;
            }

            var cutoff = DateTimeOffset.UtcNow - _ttl;
            foreach (var (id, record) in _away)
            {
                if (record.LastSeenAt < cutoff || _registry.Find(id) is { IsEstablished: true })
                {
                    _away.Remove(id);
                }
            }
        }
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

    public void Dispose() => _registry.Removed -= OnRemoved;

    // On the closing session's thread, after its final state went to the store.
    private void OnRemoved(StompSession session)
    {
        if (session.ResumableState is not { } state)
        {
            return;
        }

        lock (_gate)
        {
            if (_away.Count >= MaxAwaySessions && !_away.ContainsKey(state.Id))
            {
                var oldest = _away.Values.MinBy(r => r.LastSeenAt)!;
                _away.Remove(oldest.Id);
                if (Interlocked.Increment(ref _forgotten) == 1)
                {
                    Log.AwayLimitReached(_logger, MaxAwaySessions);
                }
            }

            _away[state.Id] = state;
        }
    }
}
