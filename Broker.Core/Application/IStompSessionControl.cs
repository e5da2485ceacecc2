namespace Broker.Application;

/// <summary>
/// Finds and ends sessions (Spring Session's find-by-principal and "deleting the session closes its WebSockets"). A DI
/// singleton; the executable's admin HTTP API is built on it.
/// <para>
/// This node's sessions are known fully: connected ones, and durable ones whose client is away (resumable until the TTL
/// passes). With the Redis cluster, other nodes' sessions are found and ended through the node that holds them (a node
/// that does not answer in time is acted for: its session's record is deleted). Without it, sessions connected to other
/// nodes are known from a shared user registry (id and node only) and not ended.
/// </para>
/// </summary>
public interface IStompSessionControl
{
    /// <summary>The sessions of <paramref name="login"/>: this node's (connected and away), then other nodes' (as they describe them with the Redis cluster, else the registry's live ones).</summary>
    ValueTask<IReadOnlyList<StompSessionInfo>> FindByUserAsync(string login, CancellationToken cancellationToken = default);

    /// <summary>
    /// This node's sessions, connected and away, as the admin API lists them: at most <paramref name="limit"/> (1 or
    /// more), by login (anonymous first), connected before away, oldest first, with how many there are in all.
    /// </summary>
    ValueTask<StompSessionList> ListAsync(int limit, CancellationToken cancellationToken = default);

    /// <summary>
    /// The session with <paramref name="sessionId"/>, connected or away: this node's, else (with a shared session store)
    /// another node's, as that node describes it with the Redis cluster (its store record and the user registry when it
    /// does not answer in time, or without the cluster); null when it is known nowhere. Another node's session is found
    /// once that node has stored its record (write-behind: usually within milliseconds of its CONNECT).
    /// </summary>
    ValueTask<StompSessionInfo?> FindAsync(string sessionId, CancellationToken cancellationToken = default);

    /// <summary>
    /// Ends a session for good: a connected one gets an ERROR with <paramref name="reason"/> and closes; its durable record
    /// is deleted (an away one's too), so its token no longer resumes (a CONNECT with it gets <c>resumed:false</c>).
    /// False when no such session is known here or in the session store.
    /// </summary>
    ValueTask<bool> TerminateAsync(string sessionId, string reason, CancellationToken cancellationToken = default);

    /// <summary>Ends every session of <paramref name="login"/> this node holds, connected or away (with the Redis cluster, on every node); returns how many.</summary>
    ValueTask<int> TerminateUserAsync(string login, string reason, CancellationToken cancellationToken = default);
}
