using Broker.Application;
using Broker.Durability;
using Broker.Sessions;

namespace Broker.Cluster;

/// <summary>
/// Session control across nodes (<see cref="IStompSessionControl"/>, <c>max-sessions-per-user</c>, a resume whose
/// old connection is still open on another node): the node that holds a session is asked through
/// <see cref="IClusterControl"/>; when it is down or does not answer in time, this node acts for it on the shared
/// store and user registry (the record deleted, so its token no longer resumes; a resume goes on from the stored
/// state). It also carries out the requests other nodes send here (<see cref="HandleAsync"/>), on this node's sessions only.
/// Without a cluster it does what one node can: the shared store's record is deleted, the registry's entries listed.
/// </summary>
internal sealed class ClusterSessions
{
    // How long a node that carried out a request waits for its session writes to reach the store before replying.
    private static readonly TimeSpan FlushWait = TimeSpan.FromSeconds(1);
    private static readonly IReadOnlyDictionary<string, string> NoMetadata = new Dictionary<string, string>();

    private readonly StompSessionServices _services;
    private readonly StompSessionControl _local;

    public ClusterSessions(StompSessionServices services)
    {
        _services = services;
        _local = new StompSessionControl(services, services.Application.Away);
    }

    private IClusterControl Control => _services.Cluster;

    private string Self => _services.NodeId;

    /// <summary>
    /// Adds the user's sessions on other nodes to <paramref name="found"/>: as each node describes them (subscriptions,
    /// created, last seen), else as the user registry and the away directory list them (id and node).
    /// </summary>
    public async Task AddElsewhereAsync(string login, HashSet<string> ids, List<StompSessionInfo> found, CancellationToken cancellationToken)
    {
        if (_services.Persistence is not { } persistence)
        {
            return;
        }

        var live = await RegisteredElsewhereAsync(persistence, login, cancellationToken).ConfigureAwait(false);
        live.RemoveAll(u => ids.Contains(u.SessionId));
        var away = (await Control.AwayOfUserAsync(login, cancellationToken).ConfigureAwait(false)).Where(a => a.Node != Self && !ids.Contains(a.SessionId)).ToList();
        if (Control.IsEnabled)
        {
            var request = new ControlMessage { Kind = ControlMessage.DescribeUser, Login = login };
            var nodes = live.Select(u => u.Node).Concat(away.Select(a => a.Node)).Distinct(StringComparer.Ordinal);
            var answers = await Task.WhenAll(nodes.Select(node => Control.AskAsync(node, request, cancellationToken))).ConfigureAwait(false);

            // Connected first: a node may still list as away a session that has since resumed on another.
            foreach (var info in answers.SelectMany(a => a.Reply?.Sessions ?? []).OrderBy(s => s.Connected ? 0 : 1))
            {
                if (info.Login == login && ids.Add(info.Id))
                {
                    found.Add(info);
                }
            }
        }

        foreach (var user in live)
        {
            if (ids.Add(user.SessionId))
            {
                found.Add(new StompSessionInfo(user.SessionId, login, user.Node, Connected: true, Durable: true, null, null, [], NoMetadata));
            }
        }

        foreach (var entry in away)
        {
            if (ids.Add(entry.SessionId))
            {
                found.Add(new StompSessionInfo(entry.SessionId, login, entry.Node, Connected: false, Durable: true, null, null, [], NoMetadata));
            }
        }
    }

    /// <summary>
    /// A session this node does not hold, from the shared store: as the node that holds it describes it (cluster), else
    /// as its record and the user registry know it (connected on the registry's node, else away from the node that saw it
    /// last). Null when the store has no record of it (or no store is shared).
    /// </summary>
    public async Task<StompSessionInfo?> FindElsewhereAsync(string sessionId, CancellationToken cancellationToken)
    {
        if (_services.Persistence is not { } persistence)
        {
            return null;
        }

        if (await FindAsync(persistence, sessionId, cancellationToken).ConfigureAwait(false) is not { } record)
        {
            // No record yet (its node writes it behind CONNECTED) or none at all: the node that holds it says so.
            var request = new ControlMessage { Kind = ControlMessage.DescribeSession, SessionId = sessionId };
            return await AskEveryNodeAsync(request, cancellationToken).ConfigureAwait(false) is { Sessions: [var held] } && held.Id == sessionId ? held : null;
        }

        var live = record.Principal is null ? null : await LiveNodeOrNullAsync(persistence, record, cancellationToken).ConfigureAwait(false);
        var node = live ?? record.Node;
        if (Control.IsEnabled && node is not null && node != Self)
        {
            var answer = await Control.AskAsync(node, new ControlMessage { Kind = ControlMessage.DescribeSession, SessionId = sessionId }, cancellationToken).ConfigureAwait(false);
            if (answer.Found && answer.Reply!.Sessions is [var described] && described.Id == sessionId)
            {
                return described;
            }
        }

        var subscriptions = record.Subscriptions.Select(s => new StompSubscriptionInfo(s.Id, s.Destination) { Ack = s.AckMode }).ToList();
        return new StompSessionInfo(record.Id, record.Principal, node, Connected: live is not null, Durable: true, record.CreatedAt, record.LastSeenAt, subscriptions, record.Metadata);
    }

    /// <summary>
    /// Ends a session this node does not hold: the node its record names ends it; with no record yet (its node writes it
    /// behind CONNECTED), whichever node holds it; else its record is deleted here.
    /// </summary>
    public async Task<bool> TerminateElsewhereAsync(string sessionId, string reason, CancellationToken cancellationToken)
    {
        if (_services.Persistence is not { } persistence)
        {
            return false;
        }

        if (Control.IsEnabled)
        {
            if (await FindAsync(persistence, sessionId, cancellationToken).ConfigureAwait(false) is { } record)
            {
                return await TerminateOnAsync(await HolderAsync(persistence, record, cancellationToken).ConfigureAwait(false), sessionId, record.Principal, reason, "terminate", cancellationToken).ConfigureAwait(false);
            }

            var request = new ControlMessage { Kind = ControlMessage.Terminate, SessionId = sessionId, Reason = reason };
            if (await AskEveryNodeAsync(request, cancellationToken).ConfigureAwait(false) is not null)
            {
                return true;
            }
        }

        using var timeout = Timeout(persistence, cancellationToken);
        return await persistence.Store.RemoveAsync(sessionId, timeout.Token).ConfigureAwait(false);
    }

    /// <summary>
    /// Asks <paramref name="node"/> to end the session; when it is this node, down, or does not answer, the record is
    /// deleted here (counted under <paramref name="cause"/>).
    /// </summary>
    public async Task<bool> TerminateOnAsync(string? node, string sessionId, string? principal, string reason, string cause, CancellationToken cancellationToken)
    {
        if (node is not null && node != Self)
        {
            var answer = await Control.AskAsync(node, new ControlMessage { Kind = ControlMessage.Terminate, SessionId = sessionId, Reason = reason }, cancellationToken).ConfigureAwait(false);
            if (answer.Found)
            {
                return true;
            }
        }

        ApplicationLog.Terminated(_services.Application.Logger, sessionId, principal, reason);
        _services.Application.Metrics.Terminated(cause);
        return await ForgetAsync(_services.Persistence!, sessionId, principal, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Ends the user's sessions on other nodes (each node its own; for a node that does not answer, their records are deleted here); how many.</summary>
    public async Task<int> TerminateUserElsewhereAsync(string login, string reason, CancellationToken cancellationToken)
    {
        if (_services.Persistence is not { } persistence || !Control.IsEnabled)
        {
            return 0;
        }

        var live = await RegisteredElsewhereAsync(persistence, login, cancellationToken).ConfigureAwait(false);
        var away = await Control.AwayOfUserAsync(login, cancellationToken).ConfigureAwait(false);
        var byNode = live.Select(u => (u.Node, u.SessionId)).Concat(away.Where(a => a.Node != Self).Select(a => (a.Node, a.SessionId)))
            .Distinct().GroupBy(s => s.Node, s => s.SessionId, StringComparer.Ordinal);
        var request = new ControlMessage { Kind = ControlMessage.TerminateUser, Login = login, Reason = reason };
        var counts = await Task.WhenAll(byNode.Select(async sessions =>
        {
            var answer = await Control.AskAsync(sessions.Key, request, cancellationToken).ConfigureAwait(false);
            if (answer is { Outcome: ControlOutcome.Answered, Reply: { } reply })
            {
                return reply.Count;
            }

            var ended = 0;
            foreach (var sessionId in sessions)
            {
                ApplicationLog.Terminated(_services.Application.Logger, sessionId, login, reason);
                _services.Application.Metrics.Terminated("terminate");
                await ForgetAsync(persistence, sessionId, login, cancellationToken).ConfigureAwait(false);
                ended++;
            }

            return ended;
        })).ConfigureAwait(false);
        return counts.Sum();
    }

    /// <summary>
    /// The user's connected sessions on other nodes (from the user registry), leaving out the one
    /// <paramref name="presentedToken"/> names (its CONNECT takes it over). When there are at least
    /// <paramref name="describeFrom"/>, as their nodes describe them (created), else as the registry knows them (created unknown).
    /// </summary>
    public async Task<List<StompSessionInfo>> LiveElsewhereAsync(string login, string? presentedToken, int describeFrom, CancellationToken cancellationToken)
    {
        if (_services.Persistence is not { } persistence)
        {
            return [];
        }

        var live = await RegisteredElsewhereAsync(persistence, login, cancellationToken).ConfigureAwait(false);
        if (live.Count > 0 && presentedToken is not null)
        {
            var hash = StompSession.HashToken(presentedToken);
            SessionRecord? named;
            if (!persistence.TryGetPending(hash, out named))
            {
                using var timeout = Timeout(persistence, cancellationToken);
                named = await persistence.Store.FindByTokenHashAsync(hash, timeout.Token).ConfigureAwait(false);
            }

            if (named is not null && named.Principal == login)
            {
                live.RemoveAll(u => u.SessionId == named.Id);
            }
        }

        var described = new Dictionary<string, StompSessionInfo>(StringComparer.Ordinal);
        if (Control.IsEnabled && live.Count > 0 && live.Count >= describeFrom)
        {
            var request = new ControlMessage { Kind = ControlMessage.DescribeUser, Login = login };
            var answers = await Task.WhenAll(live.Select(u => u.Node).Distinct(StringComparer.Ordinal).Select(node => Control.AskAsync(node, request, cancellationToken))).ConfigureAwait(false);
            foreach (var info in answers.SelectMany(a => a.Reply?.Sessions ?? []))
            {
                described.TryAdd(info.Id, info);
            }
        }

        return [.. live.Select(u => described.GetValueOrDefault(u.SessionId) ?? new StompSessionInfo(u.SessionId, login, u.Node, Connected: true, Durable: true, null, null, [], NoMetadata))];
    }

    /// <summary>
    /// A resume found <paramref name="record"/> in the store: when another node still holds its connection, that node
    /// closes it (the take-over ERROR) and hands back the final state. A node that is down or does not answer in time
    /// leaves the stored state to resume from.
    /// </summary>
    public async Task<SessionRecord> TakeOverElsewhereAsync(SessionRecord record)
    {
        if (!Control.IsEnabled || _services.Persistence is not { } persistence)
        {
            return record;
        }

        string? node;
        try
        {
            node = record.Principal is null ? record.Node : await LiveNodeAsync(persistence, record, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Sessions.Log.UserLookupFailed(_services.Logger, ex, record.Id, record.Principal ?? "anonymous");
            return record;
        }

        if (node is null || node == Self)
        {
            return record;
        }

        var answer = await Control.AskAsync(node, new ControlMessage { Kind = ControlMessage.TakeOver, SessionId = record.Id, TokenHash = Convert.ToHexStringLower(record.TokenHash) }).ConfigureAwait(false);
        return answer.Found && answer.Reply!.Record is { } final && final.Id == record.Id && final.TokenHash.AsSpan().SequenceEqual(record.TokenHash) ? final : record;
    }

    /// <summary>
    /// Asks every other node that takes control requests (one request each, within the control timeout) and returns the
    /// reply of one that held the session and carried the request out; null when none did.
    /// </summary>
    private async Task<ControlMessage?> AskEveryNodeAsync(ControlMessage request, CancellationToken cancellationToken)
    {
        var answers = await Control.AskEveryNodeAsync(request, cancellationToken).ConfigureAwait(false);
        return answers.FirstOrDefault(a => a.Found).Reply;
    }

    /// <summary>
    /// <c>max-away-sessions-per-user</c> across nodes, after a session of <paramref name="login"/> went away here: when the
    /// user's away sessions on all nodes together (the away directory) are more than the limit, the oldest beyond it are
    /// ended for good wherever they are (their records deleted, so their tokens no longer resume), as one node ends its own.
    /// Each is counted and logged here. A node that is down or does not answer is acted for on the shared store. Taking an
    /// entry out of the directory is what decides (a resume claims its entry the same way, <see cref="IClusterControl.ClaimAwayAsync"/>):
    /// one found connected is left; one that could not be ended goes back into the directory.
    /// </summary>
    public async Task EndAwayBeyondLimitAsync(string login)
    {
        var max = _services.Persistence?.Options.MaxAwayPerUser ?? 0;
        if (max <= 0 || !Control.IsEnabled || _services.Persistence is not { } persistence)
        {
            return;
        }

        IReadOnlyList<AwayEntry> taken;
        try
        {
            taken = await Control.TakeAwayBeyondAsync(login, max).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            ApplicationLog.AwayPerUserCheckFailed(_services.Application.Logger, ex, login);
            return;
        }

        foreach (var entry in taken)
        {
            try
            {
                var outcome = entry.Node == Self
                    ? await EndAwayHereAsync(persistence, entry.SessionId, login, CancellationToken.None).ConfigureAwait(false)
                    : await EndAwayOnAsync(persistence, entry, login).ConfigureAwait(false);
                if (outcome == AwayEnd.Ended)
                {
                    _services.Application.Away.OwnerLimitExceededAcrossNodes(entry.SessionId, login);
                }
                else if (outcome == AwayEnd.Connected)
                {
                    Control.NotEnded(login, entry.SessionId);
                }
            }
            catch (Exception ex)
            {
                ApplicationLog.AwayEndFailed(_services.Application.Logger, ex, entry.SessionId, login);
                await Control.ReturnAwayAsync(login, entry).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// This node's own <c>max-away-sessions-per-user</c> chose <paramref name="over"/> (its oldest away session of the
    /// user here): it is ended for good when this node takes it out of the away directory, or when the directory cannot be
    /// asked (the per-node rule as without one). One that is no longer there is left: it resumed on another node (this
    /// node's table still listed it) or another node's check took it.
    /// </summary>
    public async Task EndAwayPastLocalLimitAsync(AwaySession over, string owner)
    {
        var record = over.Record;
        try
        {
            var taken = await Control.TakeAwayAsync(owner, record.Id).ConfigureAwait(false);
            if (taken == false || (taken == true && _services.Persistence is { } persistence
                && await ConnectedElsewhereAsync(persistence, owner, record.Id, Self, CancellationToken.None).ConfigureAwait(false)))
            {
                if (taken == true)
                {
                    Control.NotEnded(owner, record.Id);
                }

                ApplicationLog.AwayPerUserLeft(_services.Application.Logger, record.Id, owner);
                return;
            }
        }
        catch (Exception ex)
        {
            // Taken (or unknown): the per-node rule goes on without the registry's word.
            ApplicationLog.AwayPerUserCheckFailed(_services.Application.Logger, ex, owner);
        }

        StompSessionControl.Forget(_services, record);
        _services.Application.Away.OwnerLimitExceeded(over, owner);
    }

    // The node that holds the away session ends it (its own writes to the store come first). One that is down, does not
    // answer, or answers without ending it for a reason other than its being connected (an older node that does not know
    // the request, a failure there) is acted for here, unless the user registry lists the session connected elsewhere.
    private async Task<AwayEnd> EndAwayOnAsync(SessionPersistence persistence, AwayEntry entry, string login)
    {
        var answer = await Control.AskAsync(entry.Node, new ControlMessage { Kind = ControlMessage.EndAway, SessionId = entry.SessionId, Login = login }).ConfigureAwait(false);
        if (answer.Found)
        {
            return AwayEnd.Ended;
        }

        if (answer is { Outcome: ControlOutcome.Answered, Reply.Connected: true })
        {
            return AwayEnd.Connected;
        }

        if (_services.Registry.Find(entry.SessionId) is not null || await ConnectedElsewhereAsync(persistence, login, entry.SessionId, entry.Node, CancellationToken.None).ConfigureAwait(false))
        {
            return AwayEnd.Connected;
        }

        return await ForgetAsync(persistence, entry.SessionId, login, CancellationToken.None).ConfigureAwait(false) ? AwayEnd.Ended : AwayEnd.Nothing;
    }

    // Ends an away session of this node for good, unless it is connected here or (as the user registry lists it) on
    // another node again; one no longer tracked here (past max-away-sessions) is deleted from the store by id.
    private async Task<AwayEnd> EndAwayHereAsync(SessionPersistence persistence, string sessionId, string login, CancellationToken cancellationToken)
    {
        if (_services.Registry.Find(sessionId) is not null || await ConnectedElsewhereAsync(persistence, login, sessionId, Self, cancellationToken).ConfigureAwait(false))
        {
            return AwayEnd.Connected;
        }

        if (_services.Application.Away.Remove(sessionId, out var entry))
        {
            StompSessionControl.Forget(_services, entry!.Record);
            return AwayEnd.Ended;
        }

        return await ForgetAsync(persistence, sessionId, login, cancellationToken).ConfigureAwait(false) ? AwayEnd.Ended : AwayEnd.Nothing;
    }

    // The user registry lists the session as connected on a node other than awayFrom (the one it went away from).
    private static async Task<bool> ConnectedElsewhereAsync(SessionPersistence persistence, string login, string sessionId, string awayFrom, CancellationToken cancellationToken)
    {
        using var timeout = Timeout(persistence, cancellationToken);
        var registered = await persistence.Users.GetSessionsAsync(login, timeout.Token).ConfigureAwait(false);
        return registered.Any(u => u.SessionId == sessionId && u.Node != awayFrom);
    }

    /// <summary>Carries out a request from another node on this node's sessions; the reply to send back.</summary>
    public async Task<ControlMessage> HandleAsync(ControlMessage request, CancellationToken cancellationToken)
    {
        var reply = request.ReplyTo();
        var reason = string.IsNullOrWhiteSpace(request.Reason) ? "session ended by the server" : request.Reason;
        switch (request.Kind)
        {
            // The store's writes are waited for only when something was ended here (a broadcast asks every node).
            case ControlMessage.Terminate when request.SessionId is { } sessionId:
                var found = await _local.TerminateHereAsync(sessionId, reason, cancellationToken).ConfigureAwait(false);
                if (found)
                {
                    await FlushAsync().ConfigureAwait(false);
                }

                return reply with { Found = found };
            case ControlMessage.TerminateUser when request.Login is { } login:
                var count = await _local.TerminateUserHereAsync(login, reason, cancellationToken).ConfigureAwait(false);
                if (count > 0)
                {
                    await FlushAsync().ConfigureAwait(false);
                }

                return reply with { Found = count > 0, Count = count };
            case ControlMessage.DescribeUser when request.Login is { } login:
                return reply with { Found = true, Sessions = _local.FindHere(login) };
            case ControlMessage.DescribeSession when request.SessionId is { } sessionId:
                return _local.FindHereById(sessionId) is { } session ? reply with { Found = true, Sessions = [session] } : reply;
            case ControlMessage.EndAway when request.SessionId is { } sessionId && request.Login is { } login && _services.Persistence is { } persistence:
                var endedAway = await EndAwayHereAsync(persistence, sessionId, login, cancellationToken).ConfigureAwait(false);
                if (endedAway == AwayEnd.Ended)
                {
                    await FlushAsync().ConfigureAwait(false);
                }

                return reply with { Found = endedAway == AwayEnd.Ended, Connected = endedAway == AwayEnd.Connected };
            case ControlMessage.TakeOver when request.SessionId is { } sessionId && request.TokenHash is { } tokenHash:
                return await TakeOverHereAsync(reply, sessionId, tokenHash).ConfigureAwait(false);
            default:
                return reply;
        }
    }

    // The connection still open here is closed with the take-over ERROR; its final state goes to the store before the reply.
    private async Task<ControlMessage> TakeOverHereAsync(ControlMessage reply, string sessionId, string tokenHash)
    {
        byte[] hash;
        try
        {
            hash = Convert.FromHexString(tokenHash);
        }
        catch (FormatException)
        {
            return reply;
        }

        if (_services.Registry.FindByTokenHash(hash) is not { } live || live.Id != sessionId || await live.TakeOverAsync().ConfigureAwait(false) is not { } final)
        {
            return reply;
        }

        if (final.Principal is { } principal)
        {
            _services.Registry.Unpark(principal, sessionId);
        }

        _services.Persistence?.Save(final);
        await FlushAsync().ConfigureAwait(false);
        return reply with { Found = true, Record = final };
    }

    private async Task FlushAsync()
    {
        if (_services.Persistence is { } persistence)
        {
            await persistence.FlushAsync(FlushWait).ConfigureAwait(false);
        }
    }

    // Its record deleted, its registry entry and away entry gone: its token no longer resumes anywhere.
    private async Task<bool> ForgetAsync(SessionPersistence persistence, string sessionId, string? principal, CancellationToken cancellationToken)
    {
        _services.Application.Away.Remove(sessionId, out _);
        Control.NotAway(principal, sessionId);
        using var timeout = Timeout(persistence, cancellationToken);
        if (principal is not null)
        {
            _services.Registry.Unpark(principal, sessionId);
            await persistence.Users.UnregisterAsync(principal, sessionId, timeout.Token).ConfigureAwait(false);
        }

        return await persistence.Store.RemoveAsync(sessionId, timeout.Token).ConfigureAwait(false);
    }

    private static async Task<SessionRecord?> FindAsync(SessionPersistence persistence, string sessionId, CancellationToken cancellationToken)
    {
        using var timeout = Timeout(persistence, cancellationToken);
        return await persistence.Store.FindByIdAsync(sessionId, timeout.Token).ConfigureAwait(false);
    }

    // The node whose connection serves the session now (the registry), else the one that saw it last (the record).
    private async Task<string?> HolderAsync(SessionPersistence persistence, SessionRecord record, CancellationToken cancellationToken) =>
        record.Principal is null ? record.Node : await LiveNodeOrNullAsync(persistence, record, cancellationToken).ConfigureAwait(false) ?? record.Node;

    // The registry's node for the session; null when it lists none or the lookup failed (logged).
    private async Task<string?> LiveNodeOrNullAsync(SessionPersistence persistence, SessionRecord record, CancellationToken cancellationToken)
    {
        try
        {
            return await LiveNodeAsync(persistence, record, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            Sessions.Log.UserLookupFailed(_services.Logger, ex, record.Id, record.Principal ?? "anonymous");
            return null;
        }
    }

    private static async Task<string?> LiveNodeAsync(SessionPersistence persistence, SessionRecord record, CancellationToken cancellationToken)
    {
        using var timeout = Timeout(persistence, cancellationToken);
        var registered = await persistence.Users.GetSessionsAsync(record.Principal!, timeout.Token).ConfigureAwait(false);
        return registered.FirstOrDefault(u => u.SessionId == record.Id)?.Node;
    }

    // The registry's entries of the user's sessions on other nodes (an entry naming this node but no session here is stale).
    private async Task<List<UserSession>> RegisteredElsewhereAsync(SessionPersistence persistence, string login, CancellationToken cancellationToken)
    {
        using var timeout = Timeout(persistence, cancellationToken);
        var registered = await persistence.Users.GetSessionsAsync(login, timeout.Token).ConfigureAwait(false);
        return [.. registered.Where(u => u.Node != Self && _services.Registry.Find(u.SessionId) is null)];
    }

    private static CancellationTokenSource Timeout(SessionPersistence persistence, CancellationToken cancellationToken)
    {
        var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(persistence.Options.StoreTimeout);
        return timeout;
    }

    // What became of an away session taken past max-away-sessions-per-user.
    private enum AwayEnd
    {
        Ended,
        Connected,
        Nothing,
    }
}
