using Broker.Routing;

namespace Broker.Durability;

/// <summary>
/// Durable session records: what a client needs to resume on any node. Implementations: in memory
/// (tests), SQLite (one node, the default), Redis (clusters). Never called per message: the session
/// engine writes behind, coalescing changes.
/// </summary>
public interface ISessionStore
{
    /// <summary>Inserts or replaces the record with <see cref="SessionRecord.Id"/>.</summary>
    ValueTask SaveAsync(SessionRecord record, CancellationToken cancellationToken = default);

    /// <summary>The record whose token hash is <paramref name="tokenHash"/>, or null (unknown or expired).</summary>
    ValueTask<SessionRecord?> FindByTokenHashAsync(ReadOnlyMemory<byte> tokenHash, CancellationToken cancellationToken = default);

    /// <summary>
    /// The record with <paramref name="sessionId"/>, or null (unknown, expired, or a store that cannot look up by id:
    /// the default). The cluster uses it to find the node that holds a session it is asked to end.
    /// </summary>
    ValueTask<SessionRecord?> FindByIdAsync(string sessionId, CancellationToken cancellationToken = default) => ValueTask.FromResult<SessionRecord?>(null);

    /// <summary>Deletes the record; true if it existed.</summary>
    ValueTask<bool> RemoveAsync(string sessionId, CancellationToken cancellationToken = default);

    /// <summary>Records client activity: sets last-seen (and, where the store expires keys, extends the TTL).</summary>
    ValueTask TouchAsync(string sessionId, DateTimeOffset lastSeen, CancellationToken cancellationToken = default);

    /// <summary>Deletes records last seen before <paramref name="cutoff"/>; returns how many.</summary>
    ValueTask<int> RemoveExpiredAsync(DateTimeOffset cutoff, CancellationToken cancellationToken = default);
}

/// <summary>A durable session.</summary>
public sealed record SessionRecord
{
    /// <summary>The public session id (CONNECTED's <c>session</c> header).</summary>
    public required string Id { get; init; }

    /// <summary>SHA-256 of the session token; the token itself is never stored.</summary>
    public required byte[] TokenHash { get; init; }

    /// <summary>The authenticated principal; null for an anonymous session.</summary>
    public string? Principal { get; init; }

    /// <summary>The node that last served the session.</summary>
    public string? Node { get; init; }

    public IReadOnlyList<SubscriptionRecord> Subscriptions { get; init; } = [];

    /// <summary>Application key/value data, settable through the embedding API.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; init; } = new Dictionary<string, string>();

    public DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset LastSeenAt { get; init; }
}

/// <summary>A subscription of a durable session and how far its delivery got.</summary>
/// <param name="Epoch">The history epoch <paramref name="Position"/> belongs to; null when nothing was delivered yet.</param>
/// <param name="Position">Offset of the last message delivered (0: none).</param>
public sealed record SubscriptionRecord(string Id, string Destination, AckMode AckMode, int Prefetch = 0, string? Epoch = null, long Position = 0);
