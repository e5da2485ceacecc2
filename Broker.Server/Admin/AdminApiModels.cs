namespace Broker.Server.Admin;

// The JSON the HTTP API answers with (camelCase, ASP.NET's web defaults).

/// <param name="Error">What is wrong, for the caller.</param>
internal sealed record ApiError(string Error)
{
    /// <summary>The limit the request passed (the name a client's ERROR carries, such as <c>max-queue-length</c>), if one.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string? Limit { get; init; }
}

/// <param name="Bytes">The message body's size.</param>
internal sealed record PublishedResponse(string Destination, int Bytes);

/// <param name="Sessions">How many of the user's sessions subscribed to the queue and were sent a copy (0 is no error: no session listens).</param>
internal sealed record SentToUserResponse(string User, string Destination, int Bytes, int Sessions);

internal sealed record SessionsResponse(string Node, int Total, bool Truncated, IReadOnlyList<SessionJson> Sessions);

/// <summary>A session as <c>GET /api/sessions</c> lists it (<see cref="Broker.Application.StompSessionInfo"/>).</summary>
/// <param name="Connected">True: a live connection (on <paramref name="Node"/>); false: away (dropped, resumable with its token).</param>
/// <param name="ConnectedAt">When the live connection was opened; null when away or on another node.</param>
/// <param name="CreatedAt">When the session began; null for a session on another node (the user registry knows id and node only).</param>
/// <param name="PendingBytes">Bytes queued for the connection, not yet written; null when away or on another node.</param>
internal sealed record SessionJson(
    string Id,
    string? User,
    string? Node,
    bool Connected,
    bool Durable,
    string? Version,
    string? Remote,
    DateTimeOffset? CreatedAt,
    DateTimeOffset? ConnectedAt,
    DateTimeOffset? LastSeenAt,
    long? PendingBytes,
    IReadOnlyList<SubscriptionJson> Subscriptions);

internal sealed record SubscriptionJson(string Id, string Destination, string Ack);

/// <param name="Connected">The session had a live connection (closed now with an ERROR); false: it was away and its record is deleted.</param>
internal sealed record SessionEndedResponse(string Id, bool Connected, string Reason);

/// <param name="Ended">Sessions ended: live connections closed (each got an ERROR with the reason) and away sessions whose records were deleted.</param>
internal sealed record UserSessionsEndedResponse(string User, int Ended, string Reason);

internal sealed record StatsResponse(
    string Node,
    DateTimeOffset At,
    DateTimeOffset StartedAt,
    int Connections,
    SessionCounts Sessions,
    MessageTotals Messages,
    RatesJson Rates,
    BrokerJson Broker,
    DestinationsJson Destinations,
    MemoryJson Memory,
    IReadOnlyList<LimitJson> Limits);

/// <param name="Durable">Connected sessions that hold a token (a drop leaves them resumable).</param>
internal sealed record SessionCounts(int Connected, int Away, int Users, int Durable);

internal sealed record MessageTotals(
    long Published, long Delivered, long Dropped, long Errors, long BytesReceived, long BytesSent, long LimitsExceeded,
    long ResumedRecovered, long ResumedNotRecovered);

internal sealed record RatesJson(double IntervalSeconds, int Capacity, IReadOnlyList<RateSample> Samples);

/// <param name="Kind"><c>inprocess</c>, <c>rabbitmq</c>, or the broker's type name.</param>
internal sealed record BrokerJson(string Kind, long QueuedMessages, long StoreBacklog, bool DurableSessions, IReadOnlyList<LinkState> Links);

/// <param name="Source"><c>broker</c> (counts from the in-process broker) or <c>sessions</c> (subscriber counts from this node's sessions, for a relay).</param>
internal sealed record DestinationsJson(int Total, bool Truncated, string Source, IReadOnlyList<DestinationJson> Items);

internal sealed record DestinationJson(string Destination, string Kind, int Subscribers, int? QueueDepth, int? Unacked, int? History, long? Published);

internal sealed record MemoryJson(long WorkingSetBytes, long GcHeapBytes, long GcCommittedBytes, long ManagedBytes, int Gen0Collections, int Gen1Collections, int Gen2Collections);

/// <param name="Setting">The configuration key.</param>
/// <param name="Limit">The name an ERROR carries when a client exceeds it, if any.</param>
/// <param name="Unit"><c>bytes</c>, <c>count</c>, <c>messages</c> or <c>time</c>.</param>
internal sealed record LimitJson(string Setting, string? Limit, string Unit, string Value);
