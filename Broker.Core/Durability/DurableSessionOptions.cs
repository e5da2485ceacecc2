namespace Broker.Durability;

/// <summary>Durable-session settings (<c>Broker:Sessions:*</c>).</summary>
public sealed class DurableSessionOptions
{
    /// <summary><c>sqlite</c> (default), <c>redis</c>, <c>memory</c>, or <c>none</c> to turn durable sessions off.</summary>
    public string Store { get; set; } = "sqlite";

    /// <summary>How long a session stays resumable after its client was last heard from.</summary>
    public TimeSpan Ttl { get; set; } = TimeSpan.FromHours(24);

    /// <summary>How often expired sessions are removed.</summary>
    public TimeSpan CleanupInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How often a connected client's activity is recorded as last-seen.</summary>
    public TimeSpan TouchInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Longest one store operation may take before it counts as failed.</summary>
    public TimeSpan StoreTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Longest shutdown waits for queued session writes to reach the store.</summary>
    public TimeSpan FlushTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Longest a resuming CONNECT waits for the store before it gets a fresh session instead.</summary>
    public TimeSpan ResumeTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Most live sessions one user may have (limit name <c>max-sessions-per-user</c>); 0 (the default) = no limit. Counted at
    /// CONNECT (this node's sessions and, with a shared user registry, other nodes'); past it see <see cref="WhenMaxPerUser"/>.
    /// </summary>
    public int MaxPerUser { get; set; }

    /// <summary>
    /// Most durable sessions this node tracks as away (dropped, resumable) at once (limit name <c>max-away-sessions</c>);
    /// past it the oldest leaves the table only: its record stays in the store and still resumes, but it gets no expiry
    /// event. 0 = no limit.
    /// </summary>
    public int MaxAway { get; set; } = 100_000;

    /// <summary>
    /// Most away sessions one owner (a login, or an anonymous client's address) has on this node (limit name
    /// <c>max-away-sessions-per-user</c>); past it the owner's oldest away session is ended for good (its record deleted,
    /// its token no longer resumes). With sessions shared in Redis (the cluster, or the Redis session store) a login's
    /// away sessions on all nodes together are held to it too, the oldest ended wherever they are; an anonymous owner's
    /// are counted per node. Bounds what one client can grow the session store by. 0 = no limit.
    /// </summary>
    public int MaxAwayPerUser { get; set; } = 1_000;

    /// <summary>What a CONNECT past <see cref="MaxPerUser"/> does: end the user's oldest session (default) or be refused.</summary>
    public MaxSessionsPerUserPolicy WhenMaxPerUser { get; set; } = MaxSessionsPerUserPolicy.TerminateOldest;
}
