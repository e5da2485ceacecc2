using System.Collections.Concurrent;
using Broker.Durability;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Broker.Application;

/// <summary>
/// Durable sessions that dropped on this node and may still resume ("away"): for <see cref="IStompSessionControl"/> to
/// find and end, and to tell observers when one expired. Every <c>Broker:Sessions:CleanupInterval</c> the entries last
/// seen longer than <c>Broker:Sessions:Ttl</c> ago are checked against the store: gone or still old there means it
/// expired (<see cref="Expired"/>); seen again there means it resumed on another node (forgotten, no event). An entry
/// leaves when its session resumes here, is ended, or expires, so the table holds at most this node's away sessions
/// within one TTL (the store holds as many records); its size is the <c>broker.sessions.away</c> gauge.
/// </summary>
internal sealed class AwaySessions : IDisposable
{
    private readonly ConcurrentDictionary<string, AwaySession> _entries = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;
    private readonly DurableSessionOptions _options;
    private readonly IServiceProvider _services;
    private readonly ILogger _logger;
    private readonly Lock _timerGate = new();
    private ITimer? _timer;
    private int _checking;
    private bool _disposed;

    public AwaySessions(TimeProvider time, IOptions<DurableSessionOptions> options, IServiceProvider services, ILogger<AwaySessions> logger)
    {
        _time = time;
        _options = options.Value;
        _services = services;
        _logger = logger;
    }

    /// <summary>Told of each session found expired, once.</summary>
    public Action<StompSessionInfo>? Expired { get; set; }

    public int Count => _entries.Count;

    public void Add(SessionRecord record, StompSessionInfo info)
    {
        _entries[record.Id] = new AwaySession(record, info);
        if (_timer is null)
        {
            lock (_timerGate)
            {
                if (_timer is null && !_disposed)
                {
                    _timer = _time.CreateTimer(static s => ((AwaySessions)s!).OnTick(), this, _options.CleanupInterval, _options.CleanupInterval);
                }
            }
        }
    }

    public bool Remove(string sessionId, out AwaySession? session) => _entries.TryRemove(sessionId, out session);

    public AwaySession? Find(string sessionId) => _entries.GetValueOrDefault(sessionId);

    /// <summary>Every entry now.</summary>
    public ICollection<AwaySession> All => _entries.Values;

    public List<AwaySession> OfUser(string login) => [.. _entries.Values.Where(e => e.Record.Principal == login)];

    public void Dispose()
    {
        lock (_timerGate)
        {
            _disposed = true;
            _timer?.Dispose();
        }
    }

    private void OnTick()
    {
        if (Interlocked.Exchange(ref _checking, 1) == 0)
        {
            _ = CheckAsync();
        }
    }

    /// <summary>Finds the entries whose TTL passed and tells <see cref="Expired"/> of each.</summary>
    internal async Task CheckAsync()
    {
        try
        {
            var store = _services.GetService<ISessionStore>();
            if (store is null)
            {
                return;
            }

            var persistence = _services.GetService<SessionPersistence>();
            var cutoff = _time.GetUtcNow() - _options.Ttl;
            foreach (var entry in _entries.Values)
            {
                if (entry.Record.LastSeenAt >= cutoff)
                {
                    continue;
                }

                SessionRecord? current;
                if (persistence is not null && persistence.TryGetPending(entry.Record.TokenHash, out var pending))
                {
                    current = pending;
                }
                else
                {
                    using var timeout = new CancellationTokenSource(_options.StoreTimeout);
                    current = await store.FindByTokenHashAsync(entry.Record.TokenHash, timeout.Token).ConfigureAwait(false);
                }

                if (current is not null && current.LastSeenAt >= cutoff)
                {
                    // Seen again: it resumed elsewhere and is that node's now.
                    _entries.TryRemove(new KeyValuePair<string, AwaySession>(entry.Record.Id, entry));
                }
                else if (_entries.TryRemove(new KeyValuePair<string, AwaySession>(entry.Record.Id, entry)))
                {
                    Expired?.Invoke(entry.Info);
                }
            }
        }
        catch (Exception ex)
        {
            ApplicationLog.ExpiryCheckFailed(_logger, ex);
        }
        finally
        {
            Volatile.Write(ref _checking, 0);
        }
    }
}

/// <summary>A durable session away from this node: its last state as handed to the store, and as the application saw it.</summary>
internal sealed record AwaySession(SessionRecord Record, StompSessionInfo Info);
