using Broker.Durability;
using Broker.Sessions;

namespace Broker.Application;

/// <summary>
/// <see cref="IStompSessionControl"/> over this node's session registry, its away sessions, the user registry and the
/// session store; sessions on other nodes through the cluster (<see cref="Cluster.ClusterSessions"/>).
/// </summary>
internal sealed class StompSessionControl(StompSessionServices services, AwaySessions away) : IStompSessionControl
{
    // How long ending a connected session waits for it to close before deleting its record anyway.
    private static readonly TimeSpan CloseWait = TimeSpan.FromSeconds(5);

    public async ValueTask<IReadOnlyList<StompSessionInfo>> FindByUserAsync(string login, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(login);
        var found = FindHere(login);
        var ids = new HashSet<string>(found.Select(s => s.Id), StringComparer.Ordinal);

        // Other nodes' sessions: as those nodes describe them (cluster), else as the user registry lists them.
        await services.ClusterSessions.AddElsewhereAsync(login, ids, found, cancellationToken).ConfigureAwait(false);
        return found;
    }

    /// <summary>This node's sessions of <paramref name="login"/>, connected and away (also what this node answers another node's cluster request with).</summary>
    internal List<StompSessionInfo> FindHere(string login)
    {
        var found = new List<StompSessionInfo>();
        var ids = new HashSet<string>(StringComparer.Ordinal);
        foreach (var session in services.Registry.SessionsOf(login))
        {
            if (ids.Add(session.Id))
            {
                found.Add(session.Describe());
            }
        }

        foreach (var entry in away.OfUser(login))
        {
            if (ids.Add(entry.Record.Id))
            {
                found.Add(entry.Info);
            }
        }

        return found;
    }

    public ValueTask<StompSessionList> ListAsync(int limit, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        var sessions = new List<StompSessionInfo>();
        var ids = new HashSet<string>(StringComparer.Ordinal);
        foreach (var session in services.Registry.All)
        {
            if (session.IsEstablished && ids.Add(session.Id))
            {
                sessions.Add(session.Describe());
            }
        }

        foreach (var entry in away.All)
        {
            if (ids.Add(entry.Record.Id))
            {
                sessions.Add(entry.Info);
            }
        }

        sessions.Sort(ListOrder);
        var total = sessions.Count;
        if (total > limit)
        {
            sessions.RemoveRange(limit, total - limit);
        }

        return ValueTask.FromResult(new StompSessionList(total, sessions));
    }

    /// <summary>The order <see cref="ListAsync"/> gives: by login (anonymous first), connected before away, oldest first (then by id).</summary>
    internal static int ListOrder(StompSessionInfo a, StompSessionInfo b)
    {
        var byLogin = string.CompareOrdinal(a.Login, b.Login);
        return byLogin != 0 ? byLogin
            : a.Connected != b.Connected ? (a.Connected ? -1 : 1)
            : Nullable.Compare(a.CreatedAt, b.CreatedAt) is var byAge and not 0 ? byAge
            : string.CompareOrdinal(a.Id, b.Id);
    }

    public async ValueTask<StompSessionInfo?> FindAsync(string sessionId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(sessionId);

        // Not held here: as the node that holds it describes it (cluster), else as the shared store knows it.
        return FindHereById(sessionId) ?? await services.ClusterSessions.FindElsewhereAsync(sessionId, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>This node's session with <paramref name="sessionId"/>, connected or away (also what this node answers another node's cluster request with).</summary>
    internal StompSessionInfo? FindHereById(string sessionId) => services.Registry.Find(sessionId)?.Describe() ?? away.Find(sessionId)?.Info;

    public async ValueTask<bool> TerminateAsync(string sessionId, string reason, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(sessionId);
        ArgumentException.ThrowIfNullOrWhiteSpace(reason);
        if (await TerminateHereAsync(sessionId, reason, cancellationToken).ConfigureAwait(false))
        {
            return true;
        }

        // Not held here: the node that holds it ends it (cluster); else its record in a shared store is deleted.
        return await services.ClusterSessions.TerminateElsewhereAsync(sessionId, reason, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Ends the session when this node holds it, connected or away; false when it does not.</summary>
    internal async Task<bool> TerminateHereAsync(string sessionId, string reason, CancellationToken cancellationToken)
    {
        if (services.Registry.Find(sessionId) is { } live)
        {
            await TerminateAsync(live, reason, cancellationToken).ConfigureAwait(false);
            return true;
        }

        if (away.Remove(sessionId, out var entry))
        {
            Forget(entry!.Record);
            services.Application.Metrics.Terminated("terminate");
            ApplicationLog.Terminated(services.Application.Logger, sessionId, entry.Record.Principal, reason);
            return true;
        }

        return false;
    }

    public async ValueTask<int> TerminateUserAsync(string login, string reason, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(login);
        ArgumentException.ThrowIfNullOrWhiteSpace(reason);
        var here = await TerminateUserHereAsync(login, reason, cancellationToken).ConfigureAwait(false);
        return here + await services.ClusterSessions.TerminateUserElsewhereAsync(login, reason, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Ends every session of <paramref name="login"/> this node holds, connected or away; returns how many.</summary>
    internal async Task<int> TerminateUserHereAsync(string login, string reason, CancellationToken cancellationToken)
    {
        var ended = new List<Task>();
        foreach (var session in services.Registry.SessionsOf(login))
        {
            ended.Add(TerminateAsync(session, reason, cancellationToken));
        }

        var count = ended.Count;
        foreach (var entry in away.OfUser(login))
        {
            if (away.Remove(entry.Record.Id, out _))
            {
                Forget(entry.Record);
                services.Application.Metrics.Terminated("terminate");
                count++;
            }
        }

        await Task.WhenAll(ended).ConfigureAwait(false);
        return count;
    }

    private async Task TerminateAsync(StompSession session, string reason, CancellationToken cancellationToken)
    {
        ApplicationLog.Terminated(services.Application.Logger, session.Id, session.Principal, reason);
        services.Application.Metrics.Terminated("terminate");
        session.Terminate(reason);
        try
        {
            await session.Finished.WaitAsync(CloseWait, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
        {
            // Its record goes below in any case; the close goes on by itself.
        }

        // Closing already for another reason (a drop), the session kept its state to resume: delete it after all.
        if (session.ClosedBecause != CloseReason.Terminated && session.FinalState is { } record)
        {
            away.Remove(record.Id, out _);
            Forget(record);
        }
    }

    private void Forget(SessionRecord record) => Forget(services, record);

    /// <summary>Its durable record deleted (behind any write still queued for it), its user destinations no longer kept, and what the broker kept for its subscriptions deleted.</summary>
    internal static void Forget(StompSessionServices services, SessionRecord record)
    {
        services.Persistence?.Remove(record);
        services.Broker.DeleteDurableSession(record);
        if (record.Principal is { } principal)
        {
            services.Registry.Unpark(principal, record.Id);
            services.Persistence?.SetLive(record.Id, principal, services.NodeId, live: false);
        }

        services.Cluster.NotAway(record.Principal, record.Id);
    }
}
