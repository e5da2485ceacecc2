using System.Buffers.Text;
using Broker.Protocol;
using Broker.Routing;

namespace Broker.Sessions;

public sealed partial class StompSession
{
    // STOMP 1.2 "SUBSCRIBE": id unique per connection; ack auto | client | client-individual.
    private async ValueTask SubscribeAsync(StompFrame frame)
    {
        var destination = RequireHeader(frame, StompHeaders.Destination);
        var id = Version == StompVersion.V10 ? frame.GetString(StompHeaders.Id) ?? destination : RequireHeader(frame, StompHeaders.Id);
        var ackMode = (frame.GetString(StompHeaders.Ack) ?? "auto") switch
        {
            "auto" => AckMode.Auto,
            "client" => AckMode.Client,
            "client-individual" => AckMode.ClientIndividual,
            var other => throw new StompProtocolException($"invalid ack mode '{other}': use auto, client or client-individual"),
        };
        var prefetch = _options.DefaultPrefetch;
        if (frame.TryGetHeader("prefetch-count"u8, out var prefetchText) &&
            (!Utf8Parser.TryParse(prefetchText, out prefetch, out var used) || used != prefetchText.Length || prefetch < 0))
        {
            throw new StompProtocolException("invalid prefetch-count header");
        }

        if (_subscriptions.TryGetValue(id, out var existing))
        {
            if (!existing.Restored)
            {
                throw new StompProtocolException($"subscription id '{id}' is already in use on this connection");
            }

            // A resumed client re-sending SUBSCRIBE (stomp.js apps do, in onConnect) attaches to the
            // restored subscription: no second subscription, no duplicate message.
            existing.Restored = false;
            if (existing.Destination == destination && existing.AckMode == ackMode)
            {
                SendReceiptIfRequested();
                return;
            }

            lock (_subscriptionsGate)
            {
                _subscriptions.Remove(id);
            }

            End(existing);
        }

        if (_subscriptions.Count >= _options.MaxSubscriptionsPerConnection)
        {
            throw StompProtocolException.LimitExceeded("max-subscriptions", _subscriptions.Count + 1, _options.MaxSubscriptionsPerConnection);
        }

        if (ValidateSubscribeDestination(destination) is { } problem)
        {
            throw new StompProtocolException(problem);
        }

        await _services.Authorization.AuthorizeAsync(this, Security.StompOperation.Subscribe, destination).ConfigureAwait(false);

        _services.Application.Intercept(this, frame, destination);
        var subscription = new SessionSubscription(this, id, destination, ackMode, prefetch);
        lock (_subscriptionsGate)
        {
            _subscriptions.Add(id, subscription);
        }

        // An application destination: its handler answers on the subscription; no broker behind it.
        if (_services.Application.IsApplicationDestination(destination))
        {
            await _services.Application.SubscribeAsync(this, subscription, frame, _currentReceipt).ConfigureAwait(false);
            return;
        }

        subscription.Handle = await _services.Broker.SubscribeAsync(new SubscriptionRequest(Id, id, subscription.Route, ackMode, prefetch, Durable: _persistence is not null), subscription).ConfigureAwait(false);
        SaveSnapshot();
        _services.Application.Subscribed(this, subscription);
        SendReceiptIfRequested();
    }

    // A user destination is this session's own queue; the broker judges its name as it would any queue's.
    private string? ValidateSubscribeDestination(string destination)
    {
        Destinations.CheckSize(destination, _options.MaxDestinationLength, _options.MaxDestinationWords);
        if (_services.Application.IsApplicationDestination(destination))
        {
            return _services.Application.ValidateSubscribe(destination);
        }

        return UserDestinations.CheckSubscribe(destination) ?? _services.Broker.ValidateDestination(
            Destinations.IsUser(destination) ? UserDestinations.ResolveSubscribe(destination, Id) : destination, forSubscribe: true);
    }

    // STOMP 1.2 "UNSUBSCRIBE".
    private void Unsubscribe(StompFrame frame)
    {
        var id = Version == StompVersion.V10 ? frame.GetString(StompHeaders.Id) ?? RequireHeader(frame, StompHeaders.Destination) : RequireHeader(frame, StompHeaders.Id);
        _services.Application.Intercept(this, frame, _subscriptions.GetValueOrDefault(id)?.Destination);
        SessionSubscription? subscription;
        lock (_subscriptionsGate)
        {
            _subscriptions.Remove(id, out subscription);
        }

        if (subscription is null)
        {
            throw new StompProtocolException($"no subscription with id '{id}'");
        }

        End(subscription);
        SaveSnapshot();
        _services.Application.Unsubscribed(this, subscription);
    }

    /// <summary>A message from the broker for <paramref name="subscription"/>: tracked for ACK in the client modes, then queued for the writer.</summary>
    internal bool Deliver(SessionSubscription subscription, BrokerMessage message, ulong deliveryTag)
    {
        if (!subscription.Active || IsClosing)
        {
            return false;
        }

        long ackId = 0;
        if (subscription.AckMode != AckMode.Auto && !TrackPending(subscription, message, deliveryTag, out ackId))
        {
            return false;
        }

        return HoldOrEnqueue(new Outbound(message, subscription, ackId));
    }

    // At close: DISCONNECT ends the subscriptions for good; a dropped connection leaves them resumable.
    private void ReleaseSubscriptions()
    {
        var disconnected = EndsForGood;
        foreach (var subscription in _subscriptions.Values)
        {
            if (disconnected)
            {
                End(subscription);
            }
            else
            {
                Detach(subscription);
            }
        }

        // A session that cannot come back leaves no /user/ queue behind (README "User destinations").
        if (disconnected || _persistence is null)
        {
            foreach (var subscription in _subscriptions.Values)
            {
                if (Destinations.IsUser(subscription.Destination))
                {
                    _services.Broker.DeleteSessionQueue(subscription.Route);
                }
            }
        }

        lock (_subscriptionsGate)
        {
            _subscriptions.Clear();
        }
    }

    /// <summary>Ends a subscription for good (UNSUBSCRIBE, DISCONNECT): the broker forgets it, a durable one included.</summary>
    private void End(SessionSubscription subscription)
    {
        StopDeliveries(subscription);
        subscription.Handle?.Unsubscribe();
    }

    /// <summary>Lets go of a subscription a resume may take up again: the broker keeps what it needs for that.</summary>
    private void Detach(SessionSubscription subscription)
    {
        StopDeliveries(subscription);
        subscription.Handle?.Dispose();
    }

    // Unacknowledged queue messages go back to the queue for other consumers.
    private void StopDeliveries(SessionSubscription subscription)
    {
        subscription.Active = false;
        if (subscription.Pending is not { } unacknowledged)
        {
            return;
        }

        lock (_ackGate)
        {
            foreach (var pending in unacknowledged)
            {
                _pendingAcks?.Remove(pending.AckId);
            }

            unacknowledged.Clear();
        }
    }

    // For user destinations: does this session take messages sent to its user's /user/queue/<name>?
    internal bool IsSubscribedTo(string destination)
    {
        // A closing session that cannot resume would leave the message in a queue nobody reads.
        if (IsClosing && (_persistence is null || EndsForGood))
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
