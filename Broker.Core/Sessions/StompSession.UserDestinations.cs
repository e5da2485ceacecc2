using Broker.Protocol;
using Broker.Routing;

namespace Broker.Sessions;

// User destinations (README "User destinations", Spring's semantics): a session subscribes to
// /user/queue/<name> and gets its own queue; SEND to /user/<login>/queue/<name> reaches every session
// of <login>. MESSAGE frames show the subscriber /user/queue/<name>, whatever the broker routed by.
public sealed partial class StompSession
{
    /// <summary>Publishes a SEND's message: to the broker as it is, or to each session of the user it names.</summary>
    private ValueTask RouteAsync(BrokerMessage message) =>
        UserDestinations.IsUserDestination(message.Destination) ? PublishToUserAsync(message) : _services.Broker.PublishAsync(message);

    private string? ValidateSendDestination(string destination)
    {
        if (UserDestinations.CheckSend(destination) is { } problem)
        {
            return problem;
        }

        // A user destination's queues are made on demand; the broker judges the name as it would any queue's.
        return _services.Broker.ValidateDestination(
            UserDestinations.TryParseSend(destination, out _, out var queueName) ? "/queue/" + queueName : destination, forSubscribe: false);
    }

    private string? ValidateSubscribeDestination(string destination) =>
        UserDestinations.CheckSubscribe(destination) ?? _services.Broker.ValidateDestination(
            UserDestinations.IsUserDestination(destination) ? UserDestinations.ResolveSubscribe(destination, Id) : destination, forSubscribe: true);

    // The targets: the user's sessions on this node that subscribed to /user/queue/<name>, connected or
    // dropped and resumable, and every session the user registry lists on another node (there the relay's
    // shared queue reaches it; with the in-process broker the queue here keeps the message for a session
    // that resumes here). No session: nothing is delivered and the SEND still succeeds, as in Spring.
    private async ValueTask PublishToUserAsync(BrokerMessage message)
    {
        if (!UserDestinations.TryParseSend(message.Destination, out var login, out var queueName))
        {
            throw new StompProtocolException($"cannot send to '{message.Destination}'"); // validated at SEND; not reached
        }

        var subscribed = UserDestinations.SubscribeForm(queueName);
        var targets = new List<string>();
        foreach (var session in _services.Registry.SessionsOf(login))
        {
            if (session.IsSubscribedTo(subscribed) && !targets.Contains(session.Id))
            {
                targets.Add(session.Id);
            }
        }

        foreach (var sessionId in _services.Registry.DormantSubscribers(login, subscribed))
        {
            if (!targets.Contains(sessionId))
            {
                targets.Add(sessionId);
            }
        }

        if (_services.Persistence is { } persistence)
        {
            IReadOnlyList<Durability.UserSession> registered = [];
            try
            {
                using var timeout = new CancellationTokenSource(persistence.Options.StoreTimeout);
                registered = await persistence.Users.GetSessionsAsync(login, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                Log.UserLookupFailed(_logger, ex, Id, login);
            }

            // This node's own sessions were counted above; an entry naming this node but no live session
            // here is one the registry has not yet been told has gone.
            foreach (var user in registered)
            {
                if (user.Node != _services.NodeId && _services.Registry.Find(user.SessionId) is null && !targets.Contains(user.SessionId))
                {
                    targets.Add(user.SessionId);
                }
            }
        }

        foreach (var sessionId in targets)
        {
            var copy = new BrokerMessage(UserDestinations.SessionQueue(queueName, sessionId), message.MessageId, message.Headers, message.Body);
            await _services.Broker.PublishAsync(copy).ConfigureAwait(false);
        }
    }

    // A dropped durable session may resume here: messages sent to its user meanwhile wait in its queues.
    private void ParkUserDestinations(Durability.SessionRecord record)
    {
        if (Principal is null)
        {
            return;
        }

        var destinations = new List<string>();
        foreach (var subscription in record.Subscriptions)
        {
            if (UserDestinations.IsUserDestination(subscription.Destination))
            {
                destinations.Add(subscription.Destination);
            }
        }

        _services.Registry.Park(Principal, Id, [.. destinations], Environment.TickCount64 + (long)_persistence!.Options.Ttl.TotalMilliseconds);
    }

    private bool IsSubscribedTo(string destination)
    {
        // A closing session that cannot resume would leave the message in a queue nobody reads.
        if (_closing && (_persistence is null || _disconnected))
        {
            return false;
        }

        lock (_subscriptionsGate)
        {
            foreach (var subscription in _subscriptions.Values)
            {
                if (subscription.Destination == destination)
                {
                    return true;
                }
            }
        }

        return false;
    }
}
