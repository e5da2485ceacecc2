using Broker.Routing;
using Broker.Sessions;

namespace Broker.Application;

/// <summary>
/// A reply to one session on a <c>/user/queue/&lt;name&gt;</c> destination: published, through the broker, to that
/// session's own queue, the one its <c>/user/queue/&lt;name&gt;</c> subscription reads (README "User destinations"), so
/// it arrives on that subscription as any user-destination message does. Dropped when the session does not subscribe.
/// </summary>
internal sealed class SessionQueueReply(StompSession session, string queueName, string? correlationId, StompApplication application) : IReplyTarget
{
    public string Destination { get; } = UserDestinations.SubscribeForm(queueName);

    public async ValueTask<bool> SendAsync(StompPayload payload, CancellationToken cancellationToken)
    {
        if (!session.IsSubscribedTo(Destination))
        {
            application.Metrics.ReplyDropped();
            ApplicationLog.ReplyDropped(application.Logger, session.Id, Destination);
            return false;
        }

        var headers = payload.MessageHeaders(extra: 1);
        if (correlationId is not null)
        {
            headers.Add(new("correlation-id", correlationId));
        }

        var message = new BrokerMessage(UserDestinations.SessionQueue(queueName, session.Id), session.Services.NextMessageId(), headers, payload.Body);
        await session.Services.Broker.PublishAsync(message, cancellationToken).ConfigureAwait(false);
        return true;
    }
}

/// <summary>A reply to a <c>MapStompSubscription</c> SUBSCRIBE: a MESSAGE on that subscription only, never through the broker.</summary>
internal sealed class SubscriptionReply(StompSession session, SessionSubscription subscription) : IReplyTarget
{
    public string Destination => subscription.Destination;

    public ValueTask<bool> SendAsync(StompPayload payload, CancellationToken cancellationToken)
    {
        var message = new BrokerMessage(subscription.Destination, session.Services.NextMessageId(), payload.MessageHeaders(), payload.Body);
        return ValueTask.FromResult(session.Deliver(subscription, message, deliveryTag: 0));
    }
}
