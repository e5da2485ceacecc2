using Broker.Durability;
using Broker.Sessions;

namespace Broker.Application;

/// <summary><see cref="IStompSessionControl"/> over this node's session registry, its away sessions, the user registry and the session store.</summary>
internal sealed class StompSessionControl(StompSessionServices services, AwaySessions away) : IStompSessionControl
{
    // How long ending a connected session waits for it to close before deleting its record anyway.
    private static readonly TimeSpan CloseWait = TimeSpan.FromSeconds(5);

    public async ValueTask<IReadOnlyList<StompSessionInfo>> FindByUserAsync(string login, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(login);
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

        if (services.Persistence is { } persistence)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(persistence.Options.StoreTimeout);
            foreach (var user in await persistence.Users.GetSessionsAsync(login, timeout.Token).ConfigureAwait(false))
            {
                if (user.Node != services.NodeId && ids.Add(user.SessionId))
                {
                    found.Add(new StompSessionInfo(user.SessionId, login, user.Node, Connected: true, Durable: true, null, null, [], new Dictionary<string, string>()));
                }
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

    public ValueTask<StompSessionInfo?> FindAsync(string sessionId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(sessionId);
        return ValueTask.FromResult(services.Registry.Find(sessionId)?.Describe() ?? away.Find(sessionId)?.Info);
    }

    public async ValueTask<bool> TerminateAsync(string sessionId, string reason, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(sessionId);
        ArgumentException.ThrowIfNullOrWhiteSpace(reason);
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

        // Not held here: an away session another node recorded (a shared store) is deleted there.
        if (services.Persistence is { } persistence)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(persistence.Options.StoreTimeout);
            return await persistence.Store.RemoveAsync(sessionId, timeout.Token).ConfigureAwait(false);
        }

        return false;
    }

    public async ValueTask<int> TerminateUserAsync(string login, string reason, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(login);
        ArgumentException.ThrowIfNullOrWhiteSpace(reason);
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
        catch (TimeoutException)
        {
        }

        // Closing already for another reason (a drop), the session kept its state to resume: delete it after all.
        if (session.ClosedBecause != CloseReason.Terminated && session.FinalState is { } record)
        {
            away.Remove(record.Id, out _);
            Forget(record);
        }
    }

    // Its durable record deleted (behind any write still queued for it) and its user destinations no longer kept.
    private void Forget(SessionRecord record)
    {
        services.Persistence?.Remove(record);
        if (record.Principal is { } principal)
        {
            services.Registry.Unpark(principal, record.Id);
            services.Persistence?.SetLive(record.Id, principal, services.NodeId, live: false);
        }
    }
}
