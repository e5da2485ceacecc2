using Broker.Durability;
using Broker.Routing;

namespace Broker.Sessions;

/// <summary>
/// User destinations' delivery (README "User destinations", Spring's semantics), shared by a session's SEND to
/// <c>/user/&lt;login&gt;/queue/&lt;name&gt;</c> and the application's <c>IStompMessenger.SendToUserAsync</c>: a message
/// for a user reaches every session of that user that subscribed to <c>/user/queue/&lt;name&gt;</c>: the user's sessions
/// on this node, connected or dropped and resumable, and every session the user registry lists on another node (there
/// the relay's shared queue reaches it; with the in-process broker the queue here keeps the message for a session that
/// resumes here), and, with the Redis cluster, every session of the user that dropped on any node and may still resume
/// (its queue is the cluster's, so it waits there for the resume, on any node). No session: nothing is delivered, and that is no error, as in Spring.
/// </summary>
internal sealed class UserDestinationRouter(StompSessionServices services)
{
    /// <summary>Sends a copy of <paramref name="message"/> to each such session's own queue; returns how many.</summary>
    /// <param name="requester">Who asked (a session id), for the log.</param>
    public async ValueTask<int> SendAsync(string login, string queueName, BrokerMessage message, string requester, CancellationToken cancellationToken = default)
    {
        var subscribed = UserDestinations.SubscribeForm(queueName);
        var targets = new List<string>();
        foreach (var session in services.Registry.SessionsOf(login))
        {
            if (session.IsSubscribedTo(subscribed) && !targets.Contains(session.Id))
            {
                targets.Add(session.Id);
            }
        }

        foreach (var sessionId in services.Registry.DormantSubscribers(login, subscribed))
        {
            if (!targets.Contains(sessionId))
            {
                targets.Add(sessionId);
            }
        }

        if (services.Persistence is { } persistence)
        {
            IReadOnlyList<UserSession> registered = [];
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                timeout.CancelAfter(persistence.Options.StoreTimeout);
                registered = await persistence.Users.GetSessionsAsync(login, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                Log.UserLookupFailed(services.Logger, ex, requester, login);
            }

            // This node's own sessions were counted above; an entry naming this node but no live session
            // here is one the registry has not yet been told has gone.
            foreach (var user in registered)
            {
                if (user.Node != services.NodeId && services.Registry.Find(user.SessionId) is null && !targets.Contains(user.SessionId))
                {
                    targets.Add(user.SessionId);
                }
            }
        }

        // Durable sessions that dropped on another node and may resume anywhere (the cluster's away directory):
        // their queues are the cluster's, so the message waits there for the resume.
        foreach (var away in await services.Cluster.AwayOfUserAsync(login, cancellationToken).ConfigureAwait(false))
        {
            if (Array.IndexOf(away.UserDestinations, subscribed) >= 0 && !targets.Contains(away.SessionId))
            {
                targets.Add(away.SessionId);
            }
        }

        foreach (var sessionId in targets)
        {
            var copy = new BrokerMessage(UserDestinations.SessionQueue(queueName, sessionId), message.MessageId, message.Headers, message.Body);
            await services.Broker.PublishAsync(copy, cancellationToken).ConfigureAwait(false);
        }

        return targets.Count;
    }
}
