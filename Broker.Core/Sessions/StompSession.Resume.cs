using System.Security.Cryptography;
using System.Text;
using Broker.Cluster;
using Broker.Durability;
using Broker.Protocol;
using Broker.Routing;

namespace Broker.Sessions;

// Durable sessions (README "Durable sessions"): CONNECTED carries session and session-token; a
// CONNECT with session-token gets its subscriptions back and the messages it missed.
public sealed partial class StompSession
{
    /// <summary>Sets application data on the session; it is stored with the session record.</summary>
    public void SetMetadata(string key, string value)
    {
        _metadata = new Dictionary<string, string>(_metadata, StringComparer.Ordinal) { [key] = value };
        SaveSnapshot();
    }

    internal static byte[] HashToken(string token) => SHA256.HashData(Encoding.UTF8.GetBytes(token));

    private static string NewToken() => Base64Url(RandomNumberGenerator.GetBytes(32));

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <summary>
    /// Sets the session up as durable after authentication: resumes the presented token's session when it
    /// belongs to this principal, otherwise starts a new one. Returns the CONNECTED headers it adds.
    /// </summary>
    private async ValueTask<(string? Token, bool Resumed, bool Recovered)> EstablishAsync(string? presentedToken)
    {
        _persistence = _services.Persistence;
        if (_persistence is null)
        {
            return (null, false, false);
        }

        _createdAt = _keepAlive.Time.GetUtcNow();
        _lastTouchAt = _keepAlive.NowMs();
        if (presentedToken is not null && await FindResumableAsync(presentedToken).ConfigureAwait(false) is ({ } record, var claim))
        {
            var recovered = await RestoreAsync(record).ConfigureAwait(false);
            _services.Metrics.Resumed(recovered);
            _persistence.Back(record.Id);
            if (claim == AwayClaim.Unknown)
            {
                _services.Cluster.NotAway(Principal, record.Id);
            }

            SaveSnapshot();
            if (Principal is not null)
            {
                _persistence.SetLive(Id, Principal, _services.NodeId, live: true);
            }

            return (presentedToken, true, recovered);
        }

        var token = NewToken();
        _tokenHash = HashToken(token);
        _services.Registry.IndexToken(this);
        SaveSnapshot();
        if (Principal is not null)
        {
            _persistence.SetLive(Id, Principal, _services.NodeId, live: true);
        }

        return (token, false, false);
    }

    // Unknown, expired or foreign tokens give a fresh session, never someone else's; so does one whose session was just
    // taken past max-away-sessions-per-user on all nodes together (it is being ended for good).
    private async ValueTask<(SessionRecord? Record, AwayClaim Claim)> FindResumableAsync(string token)
    {
        var hash = HashToken(token);
        SessionRecord? record = null;
        var fromStore = false;

        // The session may still be live here (the old connection not yet noticed dead): take it over.
        if (_services.Registry.FindByTokenHash(hash) is { } live && live != this)
        {
            if (live.Principal != Principal)
            {
                return (null, AwayClaim.Unknown);
            }

            record = await live.TakeOverAsync().ConfigureAwait(false);
        }
        else if (_persistence!.TryGetPending(hash, out var pending))
        {
            record = pending;
        }
        else
        {
            try
            {
                using var timeout = new CancellationTokenSource(_persistence.Options.ResumeTimeout);
                record = await _persistence.Store.FindByTokenHashAsync(hash, timeout.Token).ConfigureAwait(false);
                fromStore = true;
            }
            catch (Exception ex)
            {
                Log.ResumeLookupFailed(_logger, ex, Id);
                return (null, AwayClaim.Unknown);
            }
        }

        if (record is null || record.Principal != Principal || !CryptographicOperations.FixedTimeEquals(record.TokenHash, hash))
        {
            return (null, AwayClaim.Unknown);
        }

        if (fromStore)
        {
            // Its old connection may still be open on another node: that node closes it and hands over its final state.
            record = await _services.ClusterSessions.TakeOverElsewhereAsync(record).ConfigureAwait(false);
        }

        // Whoever takes the session out of the away directory owns it: this resume, before restoring anything, unless
        // the max-away-sessions-per-user check took it first.
        var claim = Principal is null ? AwayClaim.Unknown : await _services.Cluster.ClaimAwayAsync(Principal, record.Id).ConfigureAwait(false);
        if (claim == AwayClaim.Ended)
        {
            Log.ResumeRefusedEnded(_logger, Id, record.Id);
            return (null, AwayClaim.Unknown);
        }

        _services.Registry.Rename(this, record.Id);
        Id = record.Id;
        _tokenHash = record.TokenHash;
        _services.Registry.IndexToken(this);
        _createdAt = record.CreatedAt;
        _metadata = new Dictionary<string, string>(record.Metadata, StringComparer.Ordinal);
        return (record, claim);
    }

    // Subscribes every stored subscription again, resuming from its position. Deliveries (replayed
    // history included) are held until CONNECTED has been queued, so CONNECTED goes first.
    private async ValueTask<bool> RestoreAsync(SessionRecord record)
    {
        var recovered = true;
        _holdGate = new Lock();
        _held = [];
        _holding = true;
        foreach (var stored in record.Subscriptions)
        {
            if (!await _services.Authorization.IsAllowedAsync(this, Security.StompOperation.Subscribe, stored.Destination).ConfigureAwait(false)) { continue; }

            var subscription = new SessionSubscription(this, stored.Id, stored.Destination, stored.AckMode, stored.Prefetch) { Restored = true };
            lock (_subscriptionsGate)
            {
                _subscriptions.Add(stored.Id, subscription);
            }

            var resumeFrom = stored.Epoch is null ? null : new StreamPosition(stored.Epoch, stored.Position);
            var handle = await _services.Broker.SubscribeAsync(
                new SubscriptionRequest(Id, stored.Id, subscription.Route, stored.AckMode, stored.Prefetch, resumeFrom, Durable: true), subscription).ConfigureAwait(false);
            subscription.Handle = handle;
            recovered &= handle.Recovered;
        }

        return recovered;
    }

    /// <summary>Releases deliveries held while the session was being restored, after CONNECTED.</summary>
    private void ReleaseHeld()
    {
        if (_holdGate is null)
        {
            return; // not a resume: nothing was held
        }

        lock (_holdGate)
        {
            if (_held is not null)
            {
                foreach (var item in _held)
                {
                    Enqueue(item);
                }

                _held = null;
            }

            _holding = false;
        }
    }

    private bool HoldOrEnqueue(in Outbound item)
    {
        if (_holding)
        {
            lock (_holdGate!)
            {
                if (_holding)
                {
                    _held!.Add(item);
                    return true;
                }
            }
        }

        return Enqueue(item);
    }

    /// <summary>
    /// Ends this connection because the same session resumed on another one and returns its final state,
    /// or null when it would not end in time (the resume then starts a fresh session instead).
    /// </summary>
    internal async Task<SessionRecord?> TakeOverAsync()
    {
        _handingOver = true;
        SendError("session resumed on another connection", null, null, CloseReason.TakenOver);
        try
        {
            // A connection that cannot even take its ERROR (the network is gone) is cut at once.
            await Finished.WaitAsync(TimeSpan.FromSeconds(1)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            _transport.Abort();
        }

        try
        {
            await Finished.WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
            return _finalState;
        }
        catch (TimeoutException)
        {
            // Not taken after all: let the old connection save its own state when it finally closes.
            _handingOver = false;
            return null;
        }
    }

    /// <summary>Queues the session's current state for the store (write-behind; never awaited).</summary>
    private void SaveSnapshot()
    {
        if (_persistence is not null && !EndsForGood && !_handingOver)
        {
            _persistence.Save(Snapshot());
        }
    }

    private SessionRecord Snapshot()
    {
        SessionSubscription[] current;
        lock (_subscriptionsGate)
        {
            current = [.. _subscriptions.Values];
        }

        var subscriptions = new List<SubscriptionRecord>(current.Length);
        foreach (var s in current)
        {
            // An application subscription was answered once; a resume does not ask its handler again.
            if (_services.Application.IsApplicationDestination(s.Destination))
            {
                continue;
            }

            var (epoch, position) = ResumePosition(s);
            subscriptions.Add(new SubscriptionRecord(s.Id, s.Destination, s.AckMode, s.Prefetch, epoch, position));
        }

        return new SessionRecord
        {
            Id = Id,
            TokenHash = _tokenHash,
            Principal = Principal,
            Node = _services.NodeId,
            Subscriptions = subscriptions,
            Metadata = _metadata,
            CreatedAt = _createdAt,
            LastSeenAt = _keepAlive.Time.GetUtcNow() - TimeSpan.FromMilliseconds(_keepAlive.NowMs() - Volatile.Read(ref _lastReadAt)),
        };
    }

    // Spring Session's rule: only client activity keeps a session alive. Returns when to look again.
    private long TouchIfDue(long now)
    {
        var interval = (long)_persistence!.Options.TouchInterval.TotalMilliseconds;
        if (now - _lastTouchAt < interval)
        {
            return _lastTouchAt + interval;
        }

        if (Volatile.Read(ref _lastReadAt) > _lastTouchAt)
        {
            _lastTouchAt = now;
            _persistence.Touch(Id, _keepAlive.Time.GetUtcNow());
        }

        return now + interval;
    }

    // A dropped connection leaves the session resumable; DISCONNECT ends it for good.
    private void PersistOnClose()
    {
        if (_persistence is null)
        {
            return;
        }

        var disconnected = EndsForGood;
        _finalState = Snapshot();
        if (!disconnected)
        {
            // Until it resumes (the taking connection included), messages to its user wait for it.
            ParkUserDestinations(_finalState);
        }

        if (_handingOver)
        {
            return; // the taking session carries this state on
        }

        if (disconnected)
        {
            _persistence.Remove(_finalState);
            _services.Cluster.NotAway(Principal, Id);
        }
        else
        {
            _persistence.Save(_finalState);
            _persistence.Away(_finalState.Id);
            _services.Cluster.Away(_finalState);
        }

        if (Principal is not null)
        {
            _persistence.SetLive(Id, Principal, _services.NodeId, live: false);
        }
    }

    // A dropped durable session may resume here: messages sent to its user meanwhile wait in its queues.
    private void ParkUserDestinations(SessionRecord record)
    {
        if (Principal is null)
        {
            return;
        }

        var destinations = new List<string>();
        foreach (var subscription in record.Subscriptions)
        {
            if (Destinations.IsUser(subscription.Destination))
            {
                destinations.Add(subscription.Destination);
            }
        }

        _services.Registry.Park(Principal, Id, [.. destinations], Environment.TickCount64 + (long)_persistence!.Options.Ttl.TotalMilliseconds);
    }
}
