using Broker.Durability;
using Broker.Protocol;

namespace Broker.Sessions;

// Read-only views and the operator's "end this session" for the admin API (Broker.Server/Admin); never on the message path.
public sealed partial class StompSession
{
    /// <summary>CONNECT was accepted and the connection is not closing: the id and the principal are final.</summary>
    internal bool IsEstablished => State == SessionState.Connected;

    /// <summary>The session holds a token (durable sessions are on), so a drop leaves it resumable.</summary>
    internal bool IsDurable => _persistence is not null && _tokenHash.Length > 0;

    /// <summary>
    /// Once the connection has closed: the state a token can resume (what the store was given), or null while it is
    /// open, or when the session ended for good (DISCONNECT, terminated), lives on in another connection (taken
    /// over) or was not durable.
    /// </summary>
    internal SessionRecord? ResumableState =>
        State >= SessionState.Closing && ClosedBecause is not (CloseReason.Disconnect or CloseReason.TakenOver) && !_terminated && _persistence is not null ? _finalState : null;

    /// <summary>A copy of what the session is now: who, where, since when, and its subscriptions.</summary>
    internal SessionView Describe()
    {
        SubscriptionView[] subscriptions;
        lock (_subscriptionsGate)
        {
            subscriptions = new SubscriptionView[_subscriptions.Count];
            var i = 0;
            foreach (var s in _subscriptions.Values)
            {
                subscriptions[i++] = new SubscriptionView(s.Id, s.Destination, s.AckMode);
            }
        }

        var now = DateTimeOffset.UtcNow;
        var ticks = _keepAlive.NowMs();
        var connectedAt = now - TimeSpan.FromMilliseconds(ticks - _startedAt);
        return new SessionView(
            Id,
            Principal,
            _services.NodeId,
            IsDurable,
            Version.ToHeaderValue(),
            _transport.RemoteEndPoint?.ToString(),
            _createdAt == default ? connectedAt : _createdAt,
            connectedAt,
            now - TimeSpan.FromMilliseconds(ticks - Volatile.Read(ref _lastReadAt)),
            subscriptions);
    }

    /// <summary>
    /// Ends the session for good: the client gets an ERROR with <paramref name="reason"/>, the connection closes,
    /// and once its final state is written the durable record is deleted, so its token no longer resumes.
    /// </summary>
    internal void Terminate(string reason)
    {
        _terminated = true;
        Close(reason);
        Finished.ContinueWith(static (_, state) => ((StompSession)state!).ForgetDurableState(), this, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    // After PersistOnClose queued the final state: a removal queued behind it wins (the writes coalesce per session).
    private void ForgetDurableState()
    {
        if (_persistence is not null && _finalState is { } final && ClosedBecause != CloseReason.TakenOver)
        {
            _persistence.Remove(final);
        }
    }
}
