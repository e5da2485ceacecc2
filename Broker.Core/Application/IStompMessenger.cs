namespace Broker.Application;

/// <summary>
/// Sends messages from anywhere in the app (controllers, minimal APIs, background services, handlers), as Spring's
/// <c>SimpMessagingTemplate</c> and SignalR's <c>IHubContext</c> do. A DI singleton. Typed values go as JSON (see
/// <see cref="StompMessengerExtensions"/>); a <see cref="StompPayload"/> sets the bytes, content type and extra headers.
/// Invalid destinations throw <see cref="ArgumentException"/> saying what is wrong.
/// </summary>
public interface IStompMessenger
{
    /// <summary>Publishes to <c>/topic/&lt;key&gt;</c> (every subscriber) or <c>/queue/&lt;name&gt;</c> (one consumer). Completes when the broker has it.</summary>
    ValueTask PublishAsync(string destination, StompPayload payload, CancellationToken cancellationToken = default);

    /// <summary>
    /// Sends to every session of user <paramref name="login"/> that subscribed to <c>/user/queue/&lt;name&gt;</c>
    /// (<paramref name="destination"/>: <c>/queue/&lt;name&gt;</c> or <c>/user/queue/&lt;name&gt;</c>), as a SEND to
    /// <c>/user/&lt;login&gt;/queue/&lt;name&gt;</c> would: this node's sessions, connected or away and resumable, and those
    /// the user registry lists on other nodes where the relay reaches them. Returns how many sessions it went to.
    /// </summary>
    ValueTask<int> SendToUserAsync(string login, string destination, StompPayload payload, CancellationToken cancellationToken = default);

    /// <summary>
    /// Sends to one session, on its <c>/user/queue/&lt;name&gt;</c> (<paramref name="destination"/>: <c>/queue/&lt;name&gt;</c>
    /// or <c>/user/queue/&lt;name&gt;</c>) when it subscribed to it. False when the session is not on this node (connected or
    /// away) or does not subscribe.
    /// </summary>
    ValueTask<bool> SendToSessionAsync(string sessionId, string destination, StompPayload payload, CancellationToken cancellationToken = default);

    /// <summary>A value as a payload: a <see cref="StompPayload"/> as it is, text for a string, bytes for a byte array, otherwise JSON with the application's options.</summary>
    StompPayload CreatePayload<T>(T value);
}
