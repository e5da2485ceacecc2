namespace Broker.Application;

/// <summary>
/// Finds and ends sessions (Spring Session's find-by-principal and "deleting the session closes its WebSockets"). A DI
/// singleton; the executable's admin HTTP API is built on it.
/// <para>
/// This node's sessions are known fully: connected ones, and durable ones whose client is away (resumable until the TTL
/// passes). Sessions connected to other nodes are known from the user registry (id and node only) when it is shared
/// (Redis); ending those waits for the cluster to carry the request.
/// </para>
/// </summary>
public interface IStompSessionControl
{
    /// <summary>The sessions of <paramref name="login"/>: this node's (connected and away), then other nodes' live ones from the user registry.</summary>
    ValueTask<IReadOnlyList<StompSessionInfo>> FindByUserAsync(string login, CancellationToken cancellationToken = default);

    /// <summary>
    /// This node's sessions, connected and away, as the admin API lists them: at most <paramref name="limit"/> (1 or
    /// more), by login (anonymous first), connected before away, oldest first, with how many there are in all.
    /// </summary>
    ValueTask<StompSessionList> ListAsync(int limit, CancellationToken cancellationToken = default);

    /// <summary>This node's session with <paramref name="sessionId"/>, connected or away; null when this node does not hold it.</summary>
    ValueTask<StompSessionInfo?> FindAsync(string sessionId, CancellationToken cancellationToken = default);

    /// <summary>
    /// Ends a session for good: a connected one gets an ERROR with <paramref name="reason"/> and closes; its durable record
    /// is deleted (an away one's too), so its token no longer resumes (a CONNECT with it gets <c>resumed:false</c>).
    /// False when no such session is known here or in the session store.
    /// </summary>
    ValueTask<bool> TerminateAsync(string sessionId, string reason, CancellationToken cancellationToken = default);

    /// <summary>Ends every session of <paramref name="login"/> this node holds, connected or away; returns how many.</summary>
    ValueTask<int> TerminateUserAsync(string login, string reason, CancellationToken cancellationToken = default);
}
