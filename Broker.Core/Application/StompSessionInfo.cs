using Broker.Routing;

namespace Broker.Application;

/// <summary>
/// A session as the application and the operator see it (events, <see cref="IStompSessionControl"/>, the executable's
/// <c>GET /api/sessions</c> and dashboard): a copy taken when it was asked for. Fields a node does not know (a session
/// live on another node is known only by id and node; an away one has no connection) are null or empty.
/// </summary>
/// <param name="Id">The public session id (CONNECTED's <c>session</c> header).</param>
/// <param name="Login">The authenticated principal's name; null when anonymous.</param>
/// <param name="Node">The node serving it, or that served it last.</param>
/// <param name="Connected">True while a connection serves it; false for a durable session whose client is away (resumable until its TTL passes).</param>
/// <param name="Durable">It holds a session token: a dropped connection leaves it resumable.</param>
/// <param name="CreatedAt">When the session began (its first connection, for a resumed one too).</param>
/// <param name="LastSeenAt">When its client was last heard from.</param>
/// <param name="Subscriptions">Its subscriptions, by id.</param>
/// <param name="Metadata">Application data kept with it (<c>StompSession.SetMetadata</c>).</param>
public sealed record StompSessionInfo(
    string Id,
    string? Login,
    string? Node,
    bool Connected,
    bool Durable,
    DateTimeOffset? CreatedAt,
    DateTimeOffset? LastSeenAt,
    IReadOnlyList<StompSubscriptionInfo> Subscriptions,
    IReadOnlyDictionary<string, string> Metadata)
{
    /// <summary>The STOMP version its connection negotiated (<c>1.2</c>); null without a connection on this node.</summary>
    public string? Version { get; init; }

    /// <summary>The connection's remote end point (address and port); null without a connection on this node.</summary>
    public string? Remote { get; init; }

    /// <summary>When its current connection was opened; null without a connection on this node.</summary>
    public DateTimeOffset? ConnectedAt { get; init; }

    /// <summary>Bytes queued for its connection and not yet written (bounded by <c>Broker:MaxPendingBytes</c>); null without a connection on this node.</summary>
    public long? PendingBytes { get; init; }
}

/// <summary>One subscription of a session: the id the client gave it and the destination it named.</summary>
public sealed record StompSubscriptionInfo(string Id, string Destination)
{
    /// <summary>How its messages are acknowledged (the SUBSCRIBE's <c>ack</c> header).</summary>
    public AckMode Ack { get; init; }
}

/// <summary>A page of this node's sessions (<see cref="IStompSessionControl.ListAsync"/>).</summary>
/// <param name="Total">How many sessions this node holds, connected and away.</param>
/// <param name="Sessions">At most the number asked for: by login (anonymous first), connected before away, oldest first.</param>
public sealed record StompSessionList(int Total, IReadOnlyList<StompSessionInfo> Sessions);

/// <summary>A subscription that came or went (<see cref="IStompSessionObserver.OnSubscribed"/>, <see cref="IStompSessionObserver.OnUnsubscribed"/>).</summary>
/// <param name="SessionId">The session's id.</param>
/// <param name="Login">The session's principal; null when anonymous.</param>
/// <param name="Subscription">The subscription.</param>
public sealed record StompSubscriptionEvent(string SessionId, string? Login, StompSubscriptionInfo Subscription);

/// <summary>Why a session's connection ended (<see cref="IStompSessionObserver.OnDisconnected"/>).</summary>
public enum StompDisconnectReason
{
    /// <summary>The client sent DISCONNECT: the session ended for good.</summary>
    ClientDisconnect,

    /// <summary>The connection went away without DISCONNECT; a durable session stays resumable.</summary>
    Dropped,

    /// <summary>No heart-beat from a client that promised them (or no CONNECT in time).</summary>
    TimedOut,

    /// <summary>An ERROR frame: the client broke the protocol or a limit, or the broker failed its request.</summary>
    Error,

    /// <summary>The client did not keep up with its messages (<c>max-pending-bytes</c>, <c>max-unacked</c>, <c>send-timeout</c>).</summary>
    SlowConsumer,

    /// <summary>The same durable session resumed on another connection (an <see cref="IStompSessionObserver.OnResumed"/> follows for it).</summary>
    TakenOver,

    /// <summary>The application or an operator closed it (<see cref="IStompSessionControl"/>, <c>StompSession.Close</c>, <c>max-sessions-per-user</c>).</summary>
    ClosedByServer,

    /// <summary>The server is stopping.</summary>
    ServerShutdown,
}
