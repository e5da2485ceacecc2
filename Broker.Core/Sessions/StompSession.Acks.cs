using Broker.Protocol;
using Broker.Routing;

namespace Broker.Sessions;

public sealed partial class StompSession
{
    // STOMP 1.2 "ACK"/"NACK": 1.2 names the MESSAGE's ack header in id; 1.1 and 1.0 name message-id (+ subscription in 1.1).
    private void AckOrNack(StompFrame frame)
    {
        var nack = frame.Command == StompCommand.Nack;
        if (nack && Version == StompVersion.V10)
        {
            throw new StompProtocolException("NACK is not part of STOMP 1.0");
        }

        var target = ResolveAck(frame);
        if (frame.GetString(StompHeaders.Transaction) is { } transaction)
        {
            AddToTransaction(transaction, new TransactionAction(null, target, nack));
            return;
        }

        Settle(target, nack);
    }

    /// <summary>Files a client-mode delivery as awaiting ACK and gives it its ack id; false when the subscription ended or is over <c>max-unacked</c>.</summary>
    private bool TrackPending(SessionSubscription subscription, BrokerMessage message, ulong deliveryTag, out long ackId)
    {
        ackId = 0;
        lock (_ackGate)
        {
            if (!subscription.Active)
            {
                return false;
            }

            var pending = subscription.Pending!;
            if (pending.Count >= _options.MaxUnackedPerSubscription)
            {
                SlowConsumer("max-unacked", $"limit exceeded: max-unacked ({pending.Count} messages of subscription '{subscription.Id}' not acknowledged)");
                return false;
            }

            ackId = ++_lastAckId;
            (_pendingAcks ??= [])[ackId] = pending.AddLast(new PendingAck(ackId, deliveryTag, message, subscription));
            return true;
        }
    }

    private PendingAck ResolveAck(StompFrame frame)
    {
        lock (_ackGate)
        {
            if (Version == StompVersion.V12)
            {
                var id = RequireHeader(frame, StompHeaders.Id);
                if (long.TryParse(id, System.Globalization.NumberStyles.None, null, out var ackId) && _pendingAcks is not null && _pendingAcks.TryGetValue(ackId, out var node))
                {
                    return node.Value;
                }

                throw new StompProtocolException($"{Name(frame.Command)} for unknown or already acknowledged message '{id}'");
            }

            var messageId = RequireHeader(frame, StompHeaders.MessageId);
            var subscriptionId = Version == StompVersion.V11 ? RequireHeader(frame, StompHeaders.Subscription) : frame.GetString(StompHeaders.Subscription);
            foreach (var subscription in _subscriptions.Values)
            {
                if (subscription.Pending is null || (subscriptionId is not null && subscription.Id != subscriptionId))
                {
                    continue;
                }

                foreach (var pending in subscription.Pending)
                {
                    if (pending.Message.MessageId == messageId)
                    {
                        return pending;
                    }
                }
            }

            throw new StompProtocolException($"{Name(frame.Command)} for unknown or already acknowledged message '{messageId}'");
        }
    }

    // client mode settles this and every earlier delivery of the subscription; client-individual only this one.
    private void Settle(PendingAck target, bool nack)
    {
        var subscription = target.Subscription;
        var multiple = subscription.AckMode == AckMode.Client;
        lock (_ackGate)
        {
            if (_pendingAcks is null || !_pendingAcks.TryGetValue(target.AckId, out var node))
            {
                throw new StompProtocolException("message already acknowledged");
            }

            var pending = subscription.Pending!;
            if (multiple)
            {
                while (pending.First is { } first && first.Value.AckId <= target.AckId)
                {
                    pending.RemoveFirst();
                    _pendingAcks.Remove(first.Value.AckId);
                }
            }
            else
            {
                pending.Remove(node);
                _pendingAcks.Remove(target.AckId);
            }
        }

        // Outside _ackGate: the broker may deliver (and so take _ackGate) from inside these calls.
        if (nack)
        {
            subscription.Handle?.Nack(target.DeliveryTag, multiple);
        }
        else
        {
            subscription.Handle?.Ack(target.DeliveryTag, multiple);
        }
    }

    /// <summary>
    /// Where a resumed subscription continues: after the last message written, or, in the client ack modes,
    /// before the oldest unacknowledged one so it is delivered again.
    /// </summary>
    private (string? Epoch, long Position) ResumePosition(SessionSubscription subscription)
    {
        var (epoch, position) = subscription.Written;
        if (subscription.Pending is { } unacknowledged)
        {
            lock (_ackGate)
            {
                foreach (var pending in unacknowledged)
                {
                    if (pending.Message.Offset > 0 && pending.Message.Epoch == epoch)
                    {
                        position = Math.Min(position, pending.Message.Offset - 1);
                    }
                }
            }
        }

        return (epoch, position);
    }
}
