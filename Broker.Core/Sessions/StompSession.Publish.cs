using System.Buffers;
using Broker.Durability;
using Broker.Protocol;
using Broker.Routing;

namespace Broker.Sessions;

// The path of a SEND: validate its destination, make the message, then publish it. A SEND without a receipt is
// pipelined (IMessageBroker.PublishPipelinedAsync): the read loop goes on to the next frame while the broker
// tracks the confirmation, keeps this session's messages in order and bounds how many are outstanding. A frame
// with a receipt waits until every earlier SEND is confirmed, so its RECEIPT still confirms every frame before
// it; so do a COMMIT and a SEND to a user destination, which publish the awaited way. A pipelined SEND that
// fails afterwards ends the session with an ERROR, as it would have had it been awaited.
public sealed partial class StompSession
{
    // STOMP 1.2 "SEND": destination required; user headers travel to MESSAGE.
    private ValueTask SendAsync(StompFrame frame)
    {
        var destination = RequireHeader(frame, StompHeaders.Destination);
        if (ValidateSendDestination(destination) is { } problem)
        {
            throw new StompProtocolException(problem);
        }

        var authorizing = _services.Authorization.AuthorizeAsync(this, Security.StompOperation.Send, destination);
        if (!authorizing.IsCompletedSuccessfully) { return Security.DestinationAuthorization.ThenAsync(authorizing, SendAsync, frame); }

        _services.Application.Intercept(this, frame, destination);
        if (_services.Application.IsApplicationDestination(destination))
        {
            return _services.Application.DispatchSendAsync(this, frame, destination, _currentReceipt);
        }

        var headers = UserHeaders(frame);
        var message = new BrokerMessage(destination, _services.NextMessageId(), headers, frame.Body.ToArray());
        using var trace = BrokerTelemetry.StartSend(message, headers);
        if (frame.GetString(StompHeaders.Transaction) is { } transaction)
        {
            AddToTransaction(transaction, new TransactionAction(message, null, false));
            SendReceiptIfRequested();
            return ValueTask.CompletedTask;
        }

        if (_currentReceipt is null && !Destinations.IsUser(message.Destination))
        {
            return PublishPipelined(message);
        }

        // Published another way (awaited, maybe on another channel): after the pipelined ones, to keep the order.
        if (Volatile.Read(ref _unconfirmed) > 0)
        {
            return AwaitConfirmationsThenPublish(message);
        }

        var publish = RouteAsync(message);
        if (publish.IsCompletedSuccessfully)
        {
            SendReceiptIfRequested();
            return ValueTask.CompletedTask;
        }

        return AwaitPublishThenReceipt(publish);
    }

    private string? ValidateSendDestination(string destination)
    {
        Destinations.CheckSize(destination, _options.MaxDestinationLength, _options.MaxDestinationWords);
        if (_services.Application.IsApplicationDestination(destination))
        {
            return _services.Application.ValidateSend(destination);
        }

        if (UserDestinations.CheckSend(destination) is { } problem)
        {
            return problem;
        }

        // A user destination's queues are made on demand; the broker judges the name as it would any queue's.
        return _services.Broker.ValidateDestination(
            UserDestinations.TryParseSend(destination, out _, out var queueName) ? Destinations.Queue(queueName) : destination, forSubscribe: false);
    }

    private static List<KeyValuePair<string, string>> UserHeaders(StompFrame frame)
    {
        var headers = new List<KeyValuePair<string, string>>(frame.HeaderCount);
        for (var i = 0; i < frame.HeaderCount; i++)
        {
            var name = frame.HeaderName(i);
            if (IsReservedHeader(name))
            {
                continue;
            }

            // STOMP 1.2 "Repeated Header Entries": repeats travel in order (the first is the value).
            headers.Add(new(System.Text.Encoding.UTF8.GetString(name), System.Text.Encoding.UTF8.GetString(frame.HeaderValue(i))));
        }

        return headers;
    }

    // Headers the broker sets or that belong to the SEND itself, never copied from SEND to MESSAGE.
    private static bool IsReservedHeader(ReadOnlySpan<byte> name) =>
        name.SequenceEqual(StompHeaders.Destination) || name.SequenceEqual(StompHeaders.ContentLength) ||
        name.SequenceEqual(StompHeaders.Receipt) || name.SequenceEqual(StompHeaders.Transaction) ||
        name.SequenceEqual(StompHeaders.MessageId) || name.SequenceEqual(StompHeaders.Subscription) ||
        name.SequenceEqual(StompHeaders.Ack) || name.SequenceEqual("redelivered"u8);

    private async ValueTask AwaitConfirmationsThenPublish(BrokerMessage message)
    {
        await AwaitConfirmationsAsync().ConfigureAwait(false);
        if (!IsClosing)
        {
            await RouteAsync(message).ConfigureAwait(false);
            SendReceiptIfRequested();
        }
    }

    private async ValueTask AwaitPublishThenReceipt(ValueTask publish)
    {
        await publish.ConfigureAwait(false);
        SendReceiptIfRequested();
    }

    /// <summary>Publishes a message the awaited way: to the broker as it is, or to each session of the user it names.</summary>
    private ValueTask RouteAsync(BrokerMessage message) =>
        Destinations.IsUser(message.Destination) ? PublishToUserAsync(message) : _services.Broker.PublishAsync(message);

    // User destinations (README "User destinations"): to every session of the user, through the router the
    // application's IStompMessenger uses too.
    private async ValueTask PublishToUserAsync(BrokerMessage message)
    {
        if (!UserDestinations.TryParseSend(message.Destination, out var login, out var queueName))
        {
            throw new StompProtocolException($"cannot send to '{message.Destination}'"); // validated at SEND; not reached
        }

        await _services.UserRouter.SendAsync(login, queueName, message, Id).ConfigureAwait(false);
    }

    private ValueTask PublishPipelined(BrokerMessage message)
    {
        _publisher ??= new SessionPublisher(this);
        Interlocked.Increment(ref _unconfirmed);
        ValueTask<bool> publish;
        try
        {
            publish = _services.Broker.PublishPipelinedAsync(message, _publisher);
        }
        catch
        {
            OnConfirmed();
            throw;
        }

        if (publish.IsCompletedSuccessfully)
        {
            if (publish.Result)
            {
                OnConfirmed();
            }

            return ValueTask.CompletedTask;
        }

        return AwaitPipelined(publish);
    }

    private async ValueTask AwaitPipelined(ValueTask<bool> publish)
    {
        bool confirmed;
        try
        {
            confirmed = await publish.ConfigureAwait(false);
        }
        catch
        {
            OnConfirmed();
            throw;
        }

        if (confirmed)
        {
            OnConfirmed();
        }
    }

    private void OnConfirmed()
    {
        if (Interlocked.Decrement(ref _unconfirmed) == 0)
        {
            Volatile.Read(ref _confirmedAll)?.TrySetResult();
        }
    }

    // Only the read loop waits, so there is one waiter at a time.
    private async Task AwaitConfirmationsAsync()
    {
        var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref _confirmedAll, signal);
        try
        {
            if (Volatile.Read(ref _unconfirmed) > 0)
            {
                await signal.Task.ConfigureAwait(false);
            }
        }
        finally
        {
            Volatile.Write(ref _confirmedAll, null);
        }
    }

    /// <summary>The session as the broker's <see cref="IPublisher"/>: told how each pipelined SEND ended.</summary>
    private sealed class SessionPublisher(StompSession session) : IPublisher
    {
        public void Confirmed(BrokerMessage message) => session.OnConfirmed();

        public void Failed(BrokerMessage message, Exception exception)
        {
            // The client asked for no receipt, so nothing waits for this SEND: the session ends with the
            // ERROR an awaited SEND would have had (without receipt-id), and the client reconnects.
            Log.PipelinedPublishFailed(session._logger, exception, session.Id, message.Destination);
            var reply = ErrorReply.For(exception);
            if (reply.Limit is { } limit)
            {
                session._services.Metrics.LimitExceeded(limit);
            }

            session.SendError(reply.Message, reply.Detail, receiptId: null);
            session.OnConfirmed();
        }
    }
}
