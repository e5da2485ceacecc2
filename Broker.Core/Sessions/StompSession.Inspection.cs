using Broker.Durability;
using Broker.Protocol;

namespace Broker.Sessions;

// Read-only views and the operator's "end this session" for the admin API (Broker.Server/Admin); never on the message path.
public sealed partial class StompSession
{
    /// <summary>CONNECT was accepted and the connection is not closing: the id and the principal are final.</summary>
    internal bool IsEstablished => State == SessionState.Connected;

    /// <summary>
    /// Once the connection has closed: the state a token can resume (what the store was given), or null while it is
    /// open, or when the session ended for good (DISCONNECT, terminated), lives on in another connection (taken
    /// over) or was not durable.
    /// </summary>
    internal SessionRecord? ResumableState =>
        State >= SessionState.Closing && IsResumableAfterClose ? _finalState : null;

    /// <summary>A copy of what the session is now: who, where, since when, and its subscriptions.</summary>
    internal SessionView DescribeView()
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
}
