using Broker.Durability;
using Broker.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Broker.Application;

/// <summary>
/// Durable sessions that dropped on this node and may still resume ("away"): for <see cref="IStompSessionControl"/> to
/// find and end, and to tell observers when one expired. Every <c>Broker:Sessions:CleanupInterval</c> the entries last
/// seen longer than <c>Broker:Sessions:Ttl</c> ago are checked against the store: gone or still old there means it
/// expired (<see cref="Expired"/>); seen again there means it resumed on another node (forgotten, no event). An entry
/// leaves when its session resumes here, is ended, or expires; its size is the <c>broker.sessions.away</c> gauge.
/// <para>
/// Two limits bound what clients can grow here (and, through the first, in the store):
/// <list type="bullet">
/// <item><c>max-away-sessions-per-user</c> (<see cref="DurableSessionOptions.MaxAwayPerUser"/>): one owner (a login, or
/// an anonymous client's address) has at most that many away sessions here; past it the owner's oldest away session is
/// ended for good (its record deleted, so its token no longer resumes) — only the owner's own state goes. With a shared
/// away directory (Redis), a login's away sessions on all nodes together are held to the same limit after each drop
/// (<see cref="Cluster.ClusterSessions.EndAwayBeyondLimitAsync"/>).</item>
/// <item><c>max-away-sessions</c> (<see cref="DurableSessionOptions.MaxAway"/>): past it the oldest entry leaves this
/// table only; its record stays in the store and still resumes (on any node), it is still found and ended through the
/// store, but no expiry event is told for it. Nobody's session is lost to someone else's churn.</item>
/// </list>
/// </para>
/// </summary>
internal sealed class AwaySessions : IDisposable
{
    public const string MaxAwayLimit = "max-away-sessions";
    public const string MaxAwayPerUserLimit = "max-away-sessions-per-user";

    // Under _gate: by id; all entries oldest first (by when they went away); each owner's entries oldest first.
    private readonly Dictionary<string, LinkedListNode<Slot>> _entries = new(StringComparer.Ordinal);
    private readonly LinkedList<Slot> _byAge = new();
    private readonly Dictionary<string, LinkedList<Slot>> _byOwner = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private readonly TimeProvider _time;
    private readonly DurableSessionOptions _options;
    private readonly IServiceProvider _services;
    private readonly BrokerMetrics _metrics;
    private readonly ILogger _logger;
    private readonly Lock _timerGate = new();
    private ITimer? _timer;
    private int _checking;
    private bool _disposed;

    public AwaySessions(TimeProvider time, IOptions<DurableSessionOptions> options, IServiceProvider services, BrokerMetrics metrics, ILogger<AwaySessions> logger)
    {
        _time = time;
        _options = options.Value;
        _services = services;
        _metrics = metrics;
        _logger = logger;
    }

    /// <summary>Told of each session found expired, once.</summary>
    public Action<StompSessionInfo>? Expired { get; set; }

    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>
    /// Adds a session that went away, owned by <paramref name="owner"/> (its login, else its client's address). Returns the
    /// owner's oldest away session when this one took it past <c>max-away-sessions-per-user</c>: already out of the table,
    /// for the caller to end for good and then report with <see cref="OwnerLimitExceeded"/>; null otherwise.
    /// </summary>
    public AwaySession? Add(SessionRecord record, StompSessionInfo info, string owner)
    {
        AwaySession? overOwner = null;
        AwaySession? overAll = null;
        int ownerCount;
        lock (_gate)
        {
            RemoveLocked(record.Id);
            var slot = new Slot(new AwaySession(record, info), owner);
            if (!_byOwner.TryGetValue(owner, out var owned))
            {
                _byOwner[owner] = owned = new LinkedList<Slot>();
            }

            slot.OwnerNode = owned.AddLast(slot);
            _entries[record.Id] = _byAge.AddLast(slot);
            ownerCount = owned.Count;
            if (_options.MaxAwayPerUser > 0 && ownerCount > _options.MaxAwayPerUser)
            {
                overOwner = owned.First!.Value.Session;
                RemoveLocked(overOwner.Record.Id);
            }
            else if (_options.MaxAway > 0 && _entries.Count > _options.MaxAway)
            {
                overAll = _byAge.First!.Value.Session;
                RemoveLocked(overAll.Record.Id);
            }
        }

        if (overAll is not null)
        {
            _metrics.LimitExceeded(MaxAwayLimit);
            ApplicationLog.AwayLimit(_logger, overAll.Record.Id, _options.MaxAway);
        }

        StartTimer();
        return overOwner;
    }

    /// <summary>Counts and logs an owner's session that <see cref="Add"/> put past <c>max-away-sessions-per-user</c>, once the caller has ended it.</summary>
    public void OwnerLimitExceeded(AwaySession over, string owner)
    {
        _metrics.LimitExceeded(MaxAwayPerUserLimit);
        ApplicationLog.AwayPerUserLimit(_logger, over.Record.Id, owner, _options.MaxAwayPerUser);
    }

    /// <summary>Counts and logs a session of <paramref name="login"/> ended for good past <c>max-away-sessions-per-user</c> on all nodes together.</summary>
    public void OwnerLimitExceededAcrossNodes(string sessionId, string login)
    {
        _metrics.LimitExceeded(MaxAwayPerUserLimit);
        ApplicationLog.AwayPerUserLimitAcrossNodes(_logger, sessionId, login, _options.MaxAwayPerUser);
    }

    public bool Remove(string sessionId, out AwaySession? session)
    {
        lock (_gate)
        {
            session = RemoveLocked(sessionId);
            return session is not null;
        }
    }

    public AwaySession? Find(string sessionId)
    {
        lock (_gate)
        {
            return _entries.GetValueOrDefault(sessionId)?.Value.Session;
        }
    }

    /// <summary>Every entry now, oldest first.</summary>
    public List<AwaySession> All
    {
        get
        {
            lock (_gate)
            {
                return [.. _byAge.Select(s => s.Session)];
            }
        }
    }

    public List<AwaySession> OfUser(string login)
    {
        lock (_gate)
        {
            return _byOwner.TryGetValue(login, out var owned) ? [.. owned.Select(s => s.Session).Where(e => e.Record.Principal == login)] : [];
        }
    }

    /// <summary>Who an away session counts against for <c>max-away-sessions-per-user</c>: its login, else its client's address.</summary>
    public static string OwnerOf(string? principal, System.Net.IPAddress? address) =>
        principal ?? "anonymous@" + (address?.ToString() ?? "unknown");

    public void Dispose()
    {
        lock (_timerGate)
        {
            _disposed = true;
            _timer?.Dispose();
        }
    }

    private void StartTimer()
    {
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

    private AwaySession? RemoveLocked(string sessionId)
    {
        if (!_entries.Remove(sessionId, out var node))
        {
            return null;
        }

        var slot = node.Value;
        _byAge.Remove(node);
        var owned = slot.OwnerNode!.List!;
        owned.Remove(slot.OwnerNode);
        if (owned.Count == 0)
        {
            _byOwner.Remove(slot.Owner);
        }

        return slot.Session;
    }

    // Removes the entry only when it is still this one (not re-added since).
    private bool RemoveIfSame(AwaySession entry)
    {
        lock (_gate)
        {
            if (_entries.TryGetValue(entry.Record.Id, out var node) && ReferenceEquals(node.Value.Session, entry))
            {
                RemoveLocked(entry.Record.Id);
                return true;
            }

            return false;
        }
    }

    // One entry of the table, with its place in its owner's list.
    private sealed class Slot(AwaySession session, string owner)
    {
        public AwaySession Session { get; } = session;

        public string Owner { get; } = owner;

        public LinkedListNode<Slot>? OwnerNode { get; set; }
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
            foreach (var entry in All)
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
                    RemoveIfSame(entry);
                }
                else if (RemoveIfSame(entry))
                {
                    _services.GetService<IMessageBroker>()?.DeleteDurableSession(entry.Record);
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

