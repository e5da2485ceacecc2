using System.Collections.Concurrent;
using System.Threading.Channels;
using Broker.Sessions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Broker.Durability;

/// <summary>
/// Writes session state to the <see cref="ISessionStore"/> and <see cref="IUserRegistry"/> behind the
/// sessions' backs: changes are coalesced per session (the latest state wins), one writer applies them,
/// failures are logged and retried with backoff, and nothing on the message path ever waits for it.
/// It also removes sessions not seen within the TTL, on an interval.
/// </summary>
internal sealed partial class SessionPersistence : IAsyncDisposable
{
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(30);

    private readonly ISessionStore _store;
    private readonly IUserRegistry _registry;
    private readonly StompSessionRegistry _live;
    private readonly DurableSessionOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<string, PendingWrite> _pending = new(StringComparer.Ordinal);

    // Writes being applied: still visible to a resume until the store has them.
    private readonly ConcurrentDictionary<string, PendingWrite> _applying = new(StringComparer.Ordinal);
    private readonly Channel<string> _dirty = Channel.CreateUnbounded<string>(new() { SingleReader = true });
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _writer;
    private readonly Task _cleanup;
    private readonly BrokerMetrics? _metrics;

    // Durable sessions of this node that dropped and may resume: id → when their TTL passes (Unix ms). One entry a
    // session, gone on resume, removal or expiry; for the broker.sessions.away gauge.
    private readonly ConcurrentDictionary<string, long> _away = new(StringComparer.Ordinal);
    private int _failures;
    private int _inFlight;

    public SessionPersistence(ISessionStore store, IUserRegistry registry, StompSessionRegistry live, IOptions<DurableSessionOptions> options, ILogger<SessionPersistence> logger, TimeProvider? time = null, BrokerMetrics? metrics = null)
    {
        _metrics = metrics;
        metrics?.Observe("store.backlog", "sessions", () => _pending.Count + Volatile.Read(ref _inFlight));
        metrics?.Observe("sessions.away", "sessions", AwayCount);
        _store = store;
        _registry = registry;
        _live = live;
        _options = options.Value;
        _logger = logger;
        _time = time ?? TimeProvider.System;
        _writer = Task.Run(WriteLoopAsync);
        _cleanup = Task.Run(CleanupLoopAsync);
    }

    public ISessionStore Store => _store;

    /// <summary>The user registry the live sessions are recorded in (for /user/ destinations).</summary>
    public IUserRegistry Users => _registry;

    public DurableSessionOptions Options => _options;

    /// <summary>Writes queued but not yet applied (for tests and diagnostics).</summary>
    public int Backlog => _pending.Count;

    public void Save(SessionRecord record) => Update(record.Id, p => p with { Record = record, Remove = false });

    // A removal keeps the record so a pending removal can still be matched by its token.

    public void Remove(SessionRecord record)
    {
        _away.TryRemove(record.Id, out _);
        Update(record.Id, p => p with { Record = record, Remove = true });
    }

    /// <summary>A durable session of this node lost its connection and may resume until the TTL passes (for <c>broker.sessions.away</c>).</summary>
    public void Away(string sessionId) => _away[sessionId] = (_time.GetUtcNow() + _options.Ttl).ToUnixTimeMilliseconds();

    /// <summary>A durable session resumed (here); it is no longer away.</summary>
    public void Back(string sessionId) => _away.TryRemove(sessionId, out _);

    private long AwayCount()
    {
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        var count = 0L;
        foreach (var (_, expiresAt) in _away)
        {
            count += expiresAt > now ? 1 : 0;
        }

        return count;
    }

    // Forgets away sessions whose TTL has passed (on the cleanup interval).
    private void ForgetExpiredAway()
    {
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        foreach (var (id, expiresAt) in _away)
        {
            if (expiresAt <= now)
            {
                _away.TryRemove(new KeyValuePair<string, long>(id, expiresAt));
            }
        }
    }

    /// <summary>
    /// A write for the token still in the queue: the latest state (found, record) or a pending removal
    /// (found, null). A client that reconnects at once must see what its old connection just wrote.
    /// </summary>
    public bool TryGetPending(ReadOnlySpan<byte> tokenHash, out SessionRecord? record) =>
        TryFind(_pending, tokenHash, out record) || TryFind(_applying, tokenHash, out record);

    private static bool TryFind(ConcurrentDictionary<string, PendingWrite> writes, ReadOnlySpan<byte> tokenHash, out SessionRecord? record)
    {
        foreach (var write in writes.Values)
        {
            if (write.Record is { } pending && pending.TokenHash.AsSpan().SequenceEqual(tokenHash))
            {
                record = write.Remove ? null : pending;
                return true;
            }
        }

        record = null;
        return false;
    }

    public void SetLive(string sessionId, string principal, string node, bool live) =>
        Update(sessionId, p => p with { Principal = principal, Node = node, Live = live });

    public void Touch(string sessionId, DateTimeOffset at) => Update(sessionId, p => p with { Touch = at });

    /// <summary>Waits until every queued write is applied, the one being written included (or <paramref name="timeout"/> passes).</summary>
    public async Task FlushAsync(TimeSpan timeout)
    {
        var started = _time.GetTimestamp();
        while ((!_pending.IsEmpty || Volatile.Read(ref _inFlight) > 0) && _time.GetElapsedTime(started) < timeout)
        {
            await Task.Delay(5).ConfigureAwait(false);
        }
    }

    // On shutdown the sessions close first (each saving its state), then the queue drains.
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        var started = _time.GetTimestamp();
        while (_live.Count > 0 && _time.GetElapsedTime(started) < TimeSpan.FromSeconds(5))
        {
            await Task.Delay(10, CancellationToken.None).ConfigureAwait(false);
        }

        await FlushAsync(_options.FlushTimeout).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await FlushAsync(_options.FlushTimeout).ConfigureAwait(false);
        _dirty.Writer.TryComplete();
        await _stopping.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(_writer, _cleanup).ConfigureAwait(false);
        _stopping.Dispose();
    }

    private void Update(string sessionId, Func<PendingWrite, PendingWrite> change)
    {
        var added = false;
        _pending.AddOrUpdate(sessionId, _ =>
        {
            added = true;
            return change(PendingWrite.None);
        }, (_, current) => change(current));
        if (added)
        {
            _dirty.Writer.TryWrite(sessionId);
        }
    }

    private async Task WriteLoopAsync()
    {
        var backoff = TimeSpan.FromMilliseconds(100);
        try
        {
            await foreach (var sessionId in _dirty.Reader.ReadAllAsync(_stopping.Token).ConfigureAwait(false))
            {
                while (TryTake(sessionId, out var write))
                {
                    try
                    {
                        var started = _time.GetTimestamp();
                        await ApplyAsync(sessionId, write).ConfigureAwait(false);
                        _metrics?.StoreWrite(_time.GetElapsedTime(started));
                        _applying.TryRemove(new KeyValuePair<string, PendingWrite>(sessionId, write));
                        Interlocked.Decrement(ref _inFlight);
                        if (_failures > 0)
                        {
                            LogRecovered(_logger, _failures);
                            _failures = 0;
                        }

                        backoff = TimeSpan.FromMilliseconds(100);
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException || !_stopping.IsCancellationRequested)
                    {
                        // Put it back unless something newer arrived meanwhile, then wait before retrying.
                        _failures++;
                        LogWriteFailed(_logger, ex, sessionId, _failures, backoff);
                        _pending.AddOrUpdate(sessionId, write, (_, newer) => write.MergedWith(newer));
                        _applying.TryRemove(new KeyValuePair<string, PendingWrite>(sessionId, write));
                        Interlocked.Decrement(ref _inFlight);

                        // Back of the line, so one failing session does not hold up the others.
                        _dirty.Writer.TryWrite(sessionId);
                        await Task.Delay(backoff, _stopping.Token).ConfigureAwait(false);
                        backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxBackoff.Ticks));
                        break;
                    }
                }
            }
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
        }
    }

    // Counted as in flight from the moment it leaves _pending, so a flush never sees "nothing left" mid-write.
    private bool TryTake(string sessionId, out PendingWrite write)
    {
        Interlocked.Increment(ref _inFlight);
        if (_pending.TryRemove(sessionId, out write!))
        {
            _applying[sessionId] = write;
            return true;
        }

        Interlocked.Decrement(ref _inFlight);
        return false;
    }

    private async Task ApplyAsync(string sessionId, PendingWrite write)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        timeout.CancelAfter(_options.StoreTimeout);
        var token = timeout.Token;
        if (write.Principal is { } principal)
        {
            if (write.Live == true)
            {
                await _registry.RegisterAsync(principal, sessionId, write.Node!, token).ConfigureAwait(false);
            }
            else
            {
                await _registry.UnregisterAsync(principal, sessionId, token).ConfigureAwait(false);
            }
        }

        if (write.Remove)
        {
            await _store.RemoveAsync(sessionId, token).ConfigureAwait(false);
        }
        else if (write.Record is { } record)
        {
            await _store.SaveAsync(write.Touch is { } seen && seen > record.LastSeenAt ? record with { LastSeenAt = seen } : record, token).ConfigureAwait(false);
        }
        else if (write.Touch is { } seen)
        {
            await _store.TouchAsync(sessionId, seen, token).ConfigureAwait(false);
        }
    }

    private async Task CleanupLoopAsync()
    {
        try
        {
            using var timer = new PeriodicTimer(_options.CleanupInterval, _time);
            while (await timer.WaitForNextTickAsync(_stopping.Token).ConfigureAwait(false))
            {
                try
                {
                    ForgetExpiredAway();
                    var removed = await _store.RemoveExpiredAsync(_time.GetUtcNow() - _options.Ttl, _stopping.Token).ConfigureAwait(false);
                    if (removed > 0)
                    {
                        LogExpired(_logger, removed);
                    }
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    LogCleanupFailed(_logger, ex);
                }
            }
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
        }
    }

    /// <summary>What is waiting to be written for one session; later changes overwrite earlier ones.</summary>
    private sealed record PendingWrite(SessionRecord? Record, bool Remove, string? Principal, string? Node, bool? Live, DateTimeOffset? Touch)
    {
        public static readonly PendingWrite None = new(null, false, null, null, null, null);

        public PendingWrite MergedWith(PendingWrite newer) => new(
            newer.Record ?? Record,
            newer.Record is null ? Remove : newer.Remove,
            newer.Principal ?? Principal,
            newer.Node ?? Node,
            newer.Live ?? Live,
            newer.Touch ?? Touch);
    }

    [LoggerMessage(20, LogLevel.Warning, "Session store write for {SessionId} failed ({Failures} in a row); retrying in {Backoff}")]
    private static partial void LogWriteFailed(ILogger logger, Exception exception, string sessionId, int failures, TimeSpan backoff);

    [LoggerMessage(21, LogLevel.Information, "Session store writes succeed again after {Failures} failures")]
    private static partial void LogRecovered(ILogger logger, int failures);

    [LoggerMessage(22, LogLevel.Information, "Removed {Count} expired sessions")]
    private static partial void LogExpired(ILogger logger, int count);

    [LoggerMessage(23, LogLevel.Warning, "Expired-session cleanup failed")]
    private static partial void LogCleanupFailed(ILogger logger, Exception exception);
}
