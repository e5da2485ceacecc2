using Broker.Routing;

namespace Broker.Sessions;

// A SEND without a receipt does not wait for the broker's confirmation (IMessageBroker.PublishPipelinedAsync):
// the read loop goes on to the next frame while the relay tracks the confirmation. The broker keeps this
// session's messages in order and bounds how many are outstanding. A frame with a receipt waits until every
// earlier SEND is confirmed, so its RECEIPT still confirms every frame before it; so do a COMMIT and a SEND to a
// user destination, which publish the awaited way. A SEND that fails afterwards ends the session with an ERROR,
// as it would have had it been awaited.
public sealed partial class StompSession
{
    private int _unconfirmed;
    private TaskCompletionSource? _confirmedAll;
    private SessionPublisher? _publisher;

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

    private sealed class SessionPublisher(StompSession session) : IPublisher
    {
        public void Confirmed(BrokerMessage message) => session.OnConfirmed();

        public void Failed(BrokerMessage message, Exception exception)
        {
            // The client asked for no receipt, so nothing waits for this SEND: the session ends with the
            // ERROR an awaited SEND would have had (without receipt-id), and the client reconnects.
            Log.PipelinedPublishFailed(session._logger, exception, session.Id, message.Destination);
            session.Close(exception is Protocol.StompProtocolException ? exception.Message : "broker error: " + exception.Message);
            session.OnConfirmed();
        }
    }
}
