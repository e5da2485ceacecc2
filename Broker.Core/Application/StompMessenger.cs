using Broker.Routing;
using Broker.Sessions;

namespace Broker.Application;

/// <summary>
/// <see cref="IStompMessenger"/> over the session engine's own paths: the broker for topics and queues, the user
/// destinations' router for users (the one a session's SEND to <c>/user/&lt;login&gt;/...</c> takes), and a session's
/// own queue for one session.
/// </summary>
internal sealed class StompMessenger(StompSessionServices services, AwaySessions away) : IStompMessenger
{
    private const string Requester = "messenger";

    public async ValueTask PublishAsync(string destination, StompPayload payload, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(destination);
        ArgumentNullException.ThrowIfNull(payload);
        CheckSize(destination);
        if (Destinations.IsUser(destination))
        {
            throw new ArgumentException($"'{destination}' is a user destination: use SendToUserAsync or SendToSessionAsync", nameof(destination));
        }

        if (services.Application.IsApplicationDestination(destination))
        {
            throw new ArgumentException($"'{destination}' is an application destination, handled by the application's handlers; publish to /topic/<key> or /queue/<name>", nameof(destination));
        }

        if ((UserDestinations.CheckSend(destination) ?? services.Broker.ValidateDestination(destination, forSubscribe: false)) is { } problem)
        {
            throw new ArgumentException(problem, nameof(destination));
        }

        var message = new BrokerMessage(destination, services.NextMessageId(), payload.MessageHeaders(), payload.Body);
        await services.Broker.PublishAsync(message, cancellationToken).ConfigureAwait(false);
    }

    public ValueTask<int> SendToUserAsync(string login, string destination, StompPayload payload, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(login);
        ArgumentNullException.ThrowIfNull(payload);
        var queueName = QueueName(destination);
        var userDestination = $"{Destinations.UserPrefix}{login}/queue/{queueName}";
        if (!UserDestinations.TryParseSend(userDestination, out var parsedLogin, out _) || parsedLogin != login)
        {
            throw new ArgumentException($"'{login}' cannot be named in a user destination (no '/' or line break)", nameof(login));
        }

        var message = new BrokerMessage(userDestination, services.NextMessageId(), payload.MessageHeaders(), payload.Body);
        return services.UserRouter.SendAsync(login, queueName, message, Requester, cancellationToken);
    }

    public async ValueTask<bool> SendToSessionAsync(string sessionId, string destination, StompPayload payload, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(sessionId);
        ArgumentNullException.ThrowIfNull(payload);
        var queueName = QueueName(destination);
        var subscribed = UserDestinations.SubscribeForm(queueName);
        var takes = services.Registry.Find(sessionId) is { } live
            ? live.IsSubscribedTo(subscribed)
            : away.Find(sessionId)?.Record is { Principal: { } login } && services.Registry.DormantSubscribers(login, subscribed).Contains(sessionId);
        if (!takes)
        {
            return false;
        }

        var message = new BrokerMessage(UserDestinations.SessionQueue(queueName, sessionId), services.NextMessageId(), payload.MessageHeaders(), payload.Body);
        await services.Broker.PublishAsync(message, cancellationToken).ConfigureAwait(false);
        return true;
    }

    public StompPayload CreatePayload<T>(T value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return StompPayload.From(value, services.Application.Options.JsonSerializerOptions);
    }

    // The size limits a client's SEND meets (max-destination-length, max-destination-words).
    private void CheckSize(string destination)
    {
        try
        {
            Destinations.CheckSize(destination, services.Options.MaxDestinationLength, services.Options.MaxDestinationWords);
        }
        catch (Protocol.StompProtocolException ex)
        {
            throw new ArgumentException(ex.Message, nameof(destination), ex);
        }
    }

    // "/queue/<name>" or "/user/queue/<name>": the name a user's or session's own queue is made from.
    private string QueueName(string destination)
    {
        ArgumentException.ThrowIfNullOrEmpty(destination);
        CheckSize(destination);
        var ownQueue = Destinations.UserPrefix + "queue/";
        var name = destination.StartsWith(ownQueue, StringComparison.Ordinal) ? destination[ownQueue.Length..]
            : Destinations.IsQueue(destination) ? destination[Destinations.QueuePrefix.Length..]
            : throw new ArgumentException($"'{destination}' is not a user's queue: name it /queue/<name> or /user/queue/<name>", nameof(destination));
        if (name.Length == 0 || name.AsSpan().ContainsAny('\r', '\n'))
        {
            throw new ArgumentException($"'{destination}' has an empty queue name or a line break", nameof(destination));
        }

        return services.Broker.ValidateDestination(Destinations.Queue(name), forSubscribe: false) is { } problem
            ? throw new ArgumentException(problem, nameof(destination))
            : name;
    }
}
