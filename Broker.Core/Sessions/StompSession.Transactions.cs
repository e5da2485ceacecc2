using Broker.Protocol;
using Broker.Routing;

namespace Broker.Sessions;

public sealed partial class StompSession
{
    // STOMP 1.2 "BEGIN": transaction ids are unique per connection.
    private void Begin(StompFrame frame)
    {
        var id = RequireHeader(frame, StompHeaders.Transaction);
        _transactions ??= new(StringComparer.Ordinal);
        if (_transactions.ContainsKey(id))
        {
            throw new StompProtocolException($"transaction '{id}' is already open");
        }

        if (_transactions.Count >= _options.MaxTransactionsPerConnection)
        {
            throw StompProtocolException.LimitExceeded("max-transactions", _transactions.Count + 1, _options.MaxTransactionsPerConnection);
        }

        _transactions.Add(id, []);
    }

    // STOMP 1.2 "COMMIT": applies the transaction's SEND, ACK and NACK frames in order.
    private async ValueTask CommitAsync(StompFrame frame)
    {
        var id = RequireHeader(frame, StompHeaders.Transaction);
        if (_transactions is null || !_transactions.Remove(id, out var actions))
        {
            throw new StompProtocolException($"no open transaction '{id}'");
        }

        ReleaseTransaction(actions);

        // All or nothing: an ACK or NACK that no longer names a pending message fails the COMMIT before
        // anything is applied.
        lock (_ackGate)
        {
            foreach (var action in actions)
            {
                if (action.Ack is { } pending && pending.Subscription.Active && (_pendingAcks is null || !_pendingAcks.ContainsKey(pending.AckId)))
                {
                    throw new StompProtocolException($"transaction '{id}' acknowledges a message that is no longer pending");
                }
            }
        }

        foreach (var action in actions)
        {
            if (action.Message is not null)
            {
                await RouteAsync(action.Message).ConfigureAwait(false);
            }
            else if (action.Ack is { } ack && ack.Subscription.Active)
            {
                Settle(ack, action.Nack);
            }
        }

        SendReceiptIfRequested();
    }

    // STOMP 1.2 "ABORT": discards the transaction.
    private void Abort(StompFrame frame)
    {
        var id = RequireHeader(frame, StompHeaders.Transaction);
        if (_transactions is null || !_transactions.Remove(id, out var actions))
        {
            throw new StompProtocolException($"no open transaction '{id}'");
        }

        ReleaseTransaction(actions);
    }

    private void AddToTransaction(string id, TransactionAction action)
    {
        if (_transactions is null || !_transactions.TryGetValue(id, out var actions))
        {
            throw new StompProtocolException($"no open transaction '{id}'");
        }

        if (actions.Count >= _options.MaxTransactionSize)
        {
            throw StompProtocolException.LimitExceeded("max-transaction-size", actions.Count + 1, _options.MaxTransactionSize);
        }

        // max-transaction-bytes: what every open transaction of this connection holds, together.
        var bytes = _transactionBytes + action.Size;
        if (bytes > _options.MaxTransactionBytes)
        {
            throw StompProtocolException.LimitExceeded("max-transaction-bytes", bytes, _options.MaxTransactionBytes);
        }

        actions.Add(action);
        HoldForTransaction(action);
    }

    private sealed record TransactionAction(BrokerMessage? Message, PendingAck? Ack, bool Nack)
    {
        // An ACK or NACK holds a reference and a little bookkeeping; a SEND its body and headers (as the budget counts them).
        public long Size { get; } = Message is null ? 64 : Resources.MessageSize.Of(Message);
    }
}
