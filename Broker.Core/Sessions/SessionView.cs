using Broker.Routing;

namespace Broker.Sessions;

/// <summary>What an operator sees of a live session (the admin API): a copy, taken off the message path.</summary>
/// <param name="Node">The node serving it (the id session records and the user registry carry).</param>
/// <param name="Durable">It holds a session token, so a dropped connection leaves it resumable.</param>
/// <param name="CreatedAt">When the session began: its first connection, also for a resumed one.</param>
/// <param name="ConnectedAt">When this connection was opened.</param>
/// <param name="LastSeenAt">When the client was last heard from.</param>
internal sealed record SessionView(
    string Id,
    string? Principal,
    string Node,
    bool Durable,
    string Version,
    string? Remote,
    DateTimeOffset CreatedAt,
    DateTimeOffset ConnectedAt,
    DateTimeOffset LastSeenAt,
    IReadOnlyList<SubscriptionView> Subscriptions);

/// <summary>One subscription of a <see cref="SessionView"/>.</summary>
internal sealed record SubscriptionView(string Id, string Destination, AckMode AckMode);
