using System.Diagnostics.Metrics;
using System.Globalization;
using Broker.Durability;
using Broker.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Broker.Cluster;

/// <summary>
/// <see cref="IClusterControl"/> over Redis: the cluster's connection and key prefix with <c>Broker:Cluster:Kind=redis</c>,
/// else, whenever sessions are shared in Redis (the relay shape, or Redis sessions alone), the session store's
/// connection with the keys under its prefix plus <c>cluster:</c> (<c>broker:cluster:</c> by default, as the cluster's;
/// a request is only sent while that connection is up, so none queues behind a dead one). Every node SUBSCRIBEs to its
/// own channel, <c>&lt;prefix&gt;node:&lt;node id&gt;:control</c>; a request is PUBLISHed to the holder's channel with an id and the
/// sender's node id, and the reply comes back on the sender's channel with the same id (<see cref="ControlReplies"/>).
/// PUBLISH answers with the number of listeners, so a node that is down is known at once (0) and its caller falls
/// back without waiting; a node that listens but does not reply within <see cref="RedisClusterOptions.ControlTimeout"/>
/// is treated the same way. Requests are carried out off the subscription's thread, each within the timeout.
/// The away directory is one hash per user (<see cref="ClusterKeys.AwaySessions"/>), written without waiting.
/// </summary>
internal sealed class RedisClusterControl : IClusterControl, IDisposable
{
    // How long a listing of the nodes that take control requests is used before PUBSUB CHANNELS is asked again.
    private static readonly TimeSpan NodeListAge = TimeSpan.FromSeconds(1);

    private readonly Func<TimeSpan, Task<ConnectionMultiplexer?>> _connect;
    private readonly ClusterKeys _keys;
    private readonly ControlReplies _replies;
    private readonly TimeSpan _timeout;
    private readonly TimeSpan _operationTimeout;
    private readonly TimeSpan _ttl;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly Counter<long> _requests;
    private readonly CancellationTokenSource _stopping = new();
    private readonly int _broadcastBudget;
    private readonly TimeSpan _endedMarkerLifetime;
    private int _broadcasting;
    private volatile NodeList? _nodes;
    private ConnectionMultiplexer? _multiplexer;
    private string? _nodeId;
    private Func<ControlMessage, CancellationToken, Task<ControlMessage>>? _handler;
    private volatile bool _listening;
    private int _disposed;

    /// <param name="connect">Waits up to the given time for the connection to be up; null when it is not.</param>
    private RedisClusterControl(Func<TimeSpan, Task<ConnectionMultiplexer?>> connect, ClusterKeys keys, RedisClusterOptions options, TimeSpan operationTimeout,
        IOptions<DurableSessionOptions> sessions, IMeterFactory meterFactory, ILoggerFactory loggerFactory, TimeProvider? time)
    {
        _connect = connect;
        _keys = keys;
        _replies = new ControlReplies(options.MaxPendingControlRequests);
        _broadcastBudget = Math.Max(1, options.MaxPendingControlRequests / 4);
        _timeout = options.ControlTimeout;

        // Covers a resume that read the record just before its session was taken (its store read, then a take-over
        // request) and the holder's ending it (a request, then the store's delete); then the record is gone anyway.
        _endedMarkerLifetime = TimeSpan.FromMinutes(1) + 2 * (options.ControlTimeout + operationTimeout);
        _operationTimeout = operationTimeout;
        _ttl = sessions.Value.Ttl;
        _logger = loggerFactory.CreateLogger("Broker.Cluster.Control");
        _time = time ?? TimeProvider.System;
        var meter = meterFactory.Create(BrokerMetrics.MeterName);
        _requests = meter.CreateCounter<long>("broker.cluster.control.requests", description: "Control requests this node sent to others, by kind and outcome (answered, node_gone, no_answer)");
        meter.CreateObservableGauge("broker.cluster.control.pending", () => _replies.Count, description: "Control requests waiting for a reply (limit cluster-control-pending)");
        meter.CreateObservableGauge("broker.cluster.control.broadcasting", () => Volatile.Read(ref _broadcasting),
            description: "Control requests sent to every node waiting for a reply (at most a quarter of cluster-control-pending)");
    }

    /// <summary>
    /// The control plane of this node: over the cluster's Redis when the cluster is on, else over the Redis session
    /// store's; null when neither is registered (sessions are not shared, so there is no other node to ask).
    /// </summary>
    public static RedisClusterControl? Create(IServiceProvider services)
    {
        var sessions = services.GetRequiredService<IOptions<DurableSessionOptions>>();
        var meters = services.GetRequiredService<IMeterFactory>();
        var loggers = services.GetRequiredService<ILoggerFactory>();
        var time = services.GetService<TimeProvider>();
        if (services.GetService<RedisClusterBroker>() is { } broker)
        {
            return new RedisClusterControl(async wait => await broker.WaitConnectedAsync(wait).ConfigureAwait(false) ? broker.Multiplexer : null,
                broker.Keys, broker.Options, broker.Options.OperationTimeout, sessions, meters, loggers, time);
        }

        if (services.GetService<ISessionStore>() is RedisSessionStore store)
        {
            var options = services.GetRequiredService<IOptions<RedisClusterOptions>>().Value;
            options.Validate();
            return new RedisClusterControl(wait => ConnectedAsync(store.Connection, wait, time ?? TimeProvider.System),
                new ClusterKeys(store.KeyPrefix + "cluster:"), options, store.OperationTimeout, sessions, meters, loggers, time);
        }

        return null;
    }

    // The session store's multiplexer once it is connected (it connects on first use and then keeps reconnecting).
    private static async Task<ConnectionMultiplexer?> ConnectedAsync(RedisConnection connection, TimeSpan wait, TimeProvider time)
    {
        var started = time.GetTimestamp();
        var multiplexer = await connection.GetMultiplexerAsync().WaitAsync(wait, time).ConfigureAwait(false);
        while (!multiplexer.IsConnected)
        {
            if (time.GetElapsedTime(started) > wait)
            {
                return null;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(20), time).ConfigureAwait(false);
        }

        return multiplexer;
    }

    private IDatabase? Database => Volatile.Read(ref _multiplexer) is { IsConnected: true } multiplexer ? multiplexer.GetDatabase() : null;

    public bool IsEnabled => _listening;

    /// <summary>Starts listening on this node's channel; <paramref name="handler"/> carries out requests from other nodes.</summary>
    public void Start(string nodeId, Func<ControlMessage, CancellationToken, Task<ControlMessage>> handler)
    {
        if (Interlocked.CompareExchange(ref _nodeId, nodeId, null) is null)
        {
            _handler = handler;
            _ = ListenAsync(nodeId);
        }
    }

    // SUBSCRIBE once connected; the multiplexer subscribes again by itself after every reconnect.
    private async Task ListenAsync(string nodeId)
    {
        while (!_stopping.IsCancellationRequested)
        {
            try
            {
                if (await _connect(TimeSpan.FromSeconds(30)).ConfigureAwait(false) is { } multiplexer)
                {
                    Volatile.Write(ref _multiplexer, multiplexer);
                    var channel = _keys.NodeControl(nodeId);
                    await multiplexer.GetSubscriber().SubscribeAsync(channel, (_, value) => OnMessage(value)).WaitAsync(_operationTimeout).ConfigureAwait(false);
                    _listening = true;
                    Log.ControlListening(_logger, nodeId, channel.ToString());
                    return;
                }
            }
            catch (Exception ex) when (RedisClusterBroker.IsRedisFailure(ex))
            {
                Log.OperationFailed(_logger, ex, "subscribe to the control channel");
            }

            await Task.Delay(TimeSpan.FromSeconds(1), _time, CancellationToken.None).ConfigureAwait(false);
        }
    }

    private void OnMessage(RedisValue value)
    {
        var message = ControlMessage.Decode((byte[])value!);
        if (message is null)
        {
            Log.Undecodable(_logger, "control channel");
        }
        else if (message.Kind == ControlMessage.Reply)
        {
            _replies.Complete(message);
        }
        else
        {
            _ = HandleAsync(message);
        }
    }

    // Carries out another node's request within the timeout (less a margin for the reply to travel) and replies.
    private async Task HandleAsync(ControlMessage request)
    {
        ControlMessage reply;
        try
        {
            using var budget = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            budget.CancelAfter(_timeout * 0.8);
            reply = await _handler!(request, budget.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Log.ControlRequestFailed(_logger, ex, request.Kind, request.From);
            reply = request.ReplyTo();
        }

        try
        {
            Volatile.Read(ref _multiplexer)?.GetSubscriber().Publish(_keys.NodeControl(request.From), reply.Encode(), CommandFlags.FireAndForget);
        }
        catch (Exception ex) when (RedisClusterBroker.IsRedisFailure(ex))
        {
            Log.OperationFailed(_logger, ex, "reply to a control request");
        }
    }

    public async Task<ControlAnswer> AskAsync(string node, ControlMessage request, CancellationToken cancellationToken = default)
    {
        var answer = await SendAsync(node, request, cancellationToken).ConfigureAwait(false);
        _requests.Add(1, new KeyValuePair<string, object?>("kind", request.Kind), new KeyValuePair<string, object?>("outcome", OutcomeName(answer.Outcome)));
        if (answer.Outcome != ControlOutcome.Answered)
        {
            Log.ControlNotAnswered(_logger, request.Kind, node, OutcomeName(answer.Outcome));
        }

        return answer;
    }

    private async Task<ControlAnswer> SendAsync(string node, ControlMessage request, CancellationToken cancellationToken)
    {
        if (_nodeId is not { } self || !_listening || Volatile.Read(ref _multiplexer) is not { IsConnected: true } multiplexer)
        {
            return ControlAnswer.None;
        }

        if (!_replies.TryAdd(out var id, out var reply))
        {
            Log.ControlPendingFull(_logger, request.Kind, node, _replies.Limit);
            return ControlAnswer.None;
        }

        try
        {
            var started = _time.GetTimestamp();
            var payload = (request with { Id = id, From = self }).Encode();
            var listeners = await multiplexer.GetSubscriber().PublishAsync(_keys.NodeControl(node), payload).WaitAsync(_timeout, _time, cancellationToken).ConfigureAwait(false);
            if (listeners == 0)
            {
                return ControlAnswer.Gone;
            }

            var left = _timeout - _time.GetElapsedTime(started);
            return left <= TimeSpan.Zero ? ControlAnswer.None : new ControlAnswer(ControlOutcome.Answered, await reply.WaitAsync(left, _time, cancellationToken).ConfigureAwait(false));
        }
        catch (Exception ex) when (RedisClusterBroker.IsRedisFailure(ex) && !cancellationToken.IsCancellationRequested)
        {
            return ControlAnswer.None;
        }
        finally
        {
            _replies.Remove(id);
        }
    }

    public async Task<IReadOnlyList<ControlAnswer>> AskEveryNodeAsync(ControlMessage request, CancellationToken cancellationToken = default)
    {
        var others = (await NodesAsync(cancellationToken).ConfigureAwait(false)).Where(n => n != _nodeId).ToList();
        if (others.Count == 0)
        {
            return [];
        }

        if (Interlocked.Add(ref _broadcasting, others.Count) > _broadcastBudget)
        {
            Interlocked.Add(ref _broadcasting, -others.Count);
            _requests.Add(others.Count, new KeyValuePair<string, object?>("kind", request.Kind), new KeyValuePair<string, object?>("outcome", OutcomeName(ControlOutcome.NoAnswer)));
            Log.ControlBroadcastFull(_logger, request.Kind, others.Count, _broadcastBudget, _replies.Limit);
            return [];
        }

        try
        {
            return await Task.WhenAll(others.Select(node => AskAsync(node, request, cancellationToken))).ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Add(ref _broadcasting, -others.Count);
        }
    }

    // The nodes whose control channels have a subscriber, this one included; the listing is kept for NodeListAge, so a
    // burst of lookups for unknown sessions costs one PUBSUB CHANNELS per server a second.
    private async Task<IReadOnlyList<string>> NodesAsync(CancellationToken cancellationToken)
    {
        if (!_listening || Volatile.Read(ref _multiplexer) is not { IsConnected: true } multiplexer)
        {
            return [];
        }

        if (_nodes is { } cached && _time.GetElapsedTime(cached.At) < NodeListAge)
        {
            return cached.Nodes;
        }

        // PUBSUB CHANNELS <pattern> on every server, replicas too: a Redis Cluster shard lists only the subscriptions made
        // to it, and a subscriber may be on a replica. One that fails is skipped (logged), the others still count.
        var nodes = new HashSet<string>(StringComparer.Ordinal);
        var failed = false;
        foreach (var server in multiplexer.GetServers())
        {
            if (!server.IsConnected)
            {
                continue;
            }

            try
            {
                foreach (var channel in await server.SubscriptionChannelsAsync(_keys.NodeControlPattern).WaitAsync(_operationTimeout, _time, cancellationToken).ConfigureAwait(false))
                {
                    if (_keys.NodeOfControl(channel) is { } node)
                    {
                        nodes.Add(node);
                    }
                }
            }
            catch (Exception ex) when (RedisClusterBroker.IsRedisFailure(ex) && !cancellationToken.IsCancellationRequested)
            {
                failed = true;
                Log.OperationFailed(_logger, ex, $"list the nodes that take control requests on {server.EndPoint}");
            }
        }

        IReadOnlyList<string> listed = [.. nodes];
        if (!failed)
        {
            _nodes = new NodeList(listed, _time.GetTimestamp());
        }

        return listed;
    }

    private static string OutcomeName(ControlOutcome outcome) => outcome switch
    {
        ControlOutcome.Answered => "answered",
        ControlOutcome.NodeGone => "node_gone",
        _ => "no_answer",
    };

    public void Away(SessionRecord record)
    {
        if (record.Principal is not { } principal || _nodeId is not { } self || Database is not { } database)
        {
            return;
        }

        var destinations = record.Subscriptions.Where(s => Destinations.IsUser(s.Destination)).Select(s => s.Destination);
        var expiresAt = (_time.GetUtcNow() + _ttl).ToUnixTimeMilliseconds();
        var key = _keys.AwaySessions(principal);
        try
        {
            database.HashSet(key, record.Id, FormatAway(expiresAt, self, destinations), flags: CommandFlags.FireAndForget);
            database.KeyExpire(key, _ttl, CommandFlags.FireAndForget);
        }
        catch (Exception ex) when (RedisClusterBroker.IsRedisFailure(ex))
        {
            Log.OperationFailed(_logger, ex, "record an away session");
        }
    }

    public void NotAway(string? principal, string sessionId)
    {
        if (principal is null || Database is not { } database)
        {
            return;
        }

        try
        {
            database.HashDelete(_keys.AwaySessions(principal), sessionId, CommandFlags.FireAndForget);
        }
        catch (Exception ex) when (RedisClusterBroker.IsRedisFailure(ex))
        {
            Log.OperationFailed(_logger, ex, "forget an away session");
        }
    }

    public async Task<IReadOnlyList<AwayEntry>> AwayOfUserAsync(string login, CancellationToken cancellationToken = default)
    {
        if (Database is not { } database)
        {
            return [];
        }

        HashEntry[] entries;
        var key = _keys.AwaySessions(login);
        try
        {
            entries = await database.HashGetAllAsync(key).WaitAsync(_operationTimeout, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (RedisClusterBroker.IsRedisFailure(ex) && !cancellationToken.IsCancellationRequested)
        {
            Log.OperationFailed(_logger, ex, "read away sessions");
            return [];
        }

        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        var found = new List<AwayEntry>(entries.Length);
        foreach (var entry in entries)
        {
            if (ParseAway(entry.Name, entry.Value, now) is { } away)
            {
                found.Add(away);
            }
            else
            {
                database.HashDelete(key, entry.Name, CommandFlags.FireAndForget);
            }
        }

        return found;
    }

    public async Task<IReadOnlyList<AwayEntry>> TakeAwayBeyondAsync(string login, int max, CancellationToken cancellationToken = default)
    {
        if (Database is not { } database)
        {
            return [];
        }

        RedisResult result;
        try
        {
            result = await database.ScriptEvaluateAsync(ClusterScripts.TakeAwayBeyond, [_keys.AwaySessions(login)],
                [max, _time.GetUtcNow().ToUnixTimeMilliseconds(), _keys.AwayEndedPrefix(login), (long)_endedMarkerLifetime.TotalMilliseconds])
                .WaitAsync(_operationTimeout, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (RedisClusterBroker.IsRedisFailure(ex) && !cancellationToken.IsCancellationRequested)
        {
            Log.OperationFailed(_logger, ex, "take away sessions past max-away-sessions-per-user");
            return [];
        }

        var pairs = (RedisResult[])result!;
        var taken = new List<AwayEntry>(pairs.Length / 2);
        for (var i = 0; i + 1 < pairs.Length; i += 2)
        {
            if (ParseAway((string?)pairs[i], (string?)pairs[i + 1], now: 0) is { } away)
            {
                taken.Add(away);
            }
        }

        return taken;
    }

    public async Task<AwayClaim> ClaimAwayAsync(string login, string sessionId, CancellationToken cancellationToken = default)
    {
        if (Database is not { } database)
        {
            return AwayClaim.Unknown;
        }

        try
        {
            var claimed = await database.ScriptEvaluateAsync(ClusterScripts.ClaimAway, [_keys.AwaySessions(login), _keys.AwayEnded(login, sessionId)], [sessionId])
                .WaitAsync(_operationTimeout, _time, cancellationToken).ConfigureAwait(false);
            return (long)claimed == 1 ? AwayClaim.Claimed : AwayClaim.Ended;
        }
        catch (Exception ex) when (RedisClusterBroker.IsRedisFailure(ex) && !cancellationToken.IsCancellationRequested)
        {
            Log.OperationFailed(_logger, ex, "claim a resuming session from the away directory");
            return AwayClaim.Unknown;
        }
    }

    public async Task<bool?> TakeAwayAsync(string login, string sessionId, CancellationToken cancellationToken = default)
    {
        if (Database is not { } database)
        {
            return null;
        }

        try
        {
            var taken = await database.ScriptEvaluateAsync(ClusterScripts.TakeAway, [_keys.AwaySessions(login), _keys.AwayEnded(login, sessionId)],
                [sessionId, (long)_endedMarkerLifetime.TotalMilliseconds]).WaitAsync(_operationTimeout, _time, cancellationToken).ConfigureAwait(false);
            return (long)taken == 1;
        }
        catch (Exception ex) when (RedisClusterBroker.IsRedisFailure(ex) && !cancellationToken.IsCancellationRequested)
        {
            Log.OperationFailed(_logger, ex, "take an away session past max-away-sessions-per-user");
            return null;
        }
    }

    public async Task ReturnAwayAsync(string login, AwayEntry entry, CancellationToken cancellationToken = default)
    {
        if (Database is not { } database)
        {
            return;
        }

        var value = FormatAway(entry.ExpiresAt, entry.Node, entry.UserDestinations);
        try
        {
            await database.ScriptEvaluateAsync(ClusterScripts.ReturnAway, [_keys.AwaySessions(login), _keys.AwayEnded(login, entry.SessionId)],
                [entry.SessionId, value, (long)_ttl.TotalMilliseconds]).WaitAsync(_operationTimeout, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (RedisClusterBroker.IsRedisFailure(ex) && !cancellationToken.IsCancellationRequested)
        {
            Log.OperationFailed(_logger, ex, "put back an away session that could not be ended");
        }
    }

    public void NotEnded(string login, string sessionId)
    {
        if (Database is not { } database)
        {
            return;
        }

        try
        {
            database.KeyDelete(_keys.AwayEnded(login, sessionId), CommandFlags.FireAndForget);
        }
        catch (Exception ex) when (RedisClusterBroker.IsRedisFailure(ex))
        {
            Log.OperationFailed(_logger, ex, "lift an away session's ended marker");
        }
    }

    // An away hash entry: expiresAt, node, then its user destinations, one a line (they hold no line breaks:
    // UserDestinations rejects them). ParseAway reads it back.
    private static string FormatAway(long expiresAt, string node, IEnumerable<string> userDestinations) =>
        string.Join('\n', [expiresAt.ToString(CultureInfo.InvariantCulture), node, .. userDestinations]);

    // An away hash entry (FormatAway); null when unreadable or expired by now.
    private static AwayEntry? ParseAway(string? sessionId, string? value, long now)
    {
        var parts = (value ?? "").Split('\n');
        return sessionId is null || parts.Length < 2 || !long.TryParse(parts[0], CultureInfo.InvariantCulture, out var expiresAt) || expiresAt <= now
            ? null
            : new AwayEntry(sessionId, parts[1], parts[2..], expiresAt);
    }

    // Disposed once per registration (itself and IClusterControl): the token stays usable, only cancelled.
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _stopping.Cancel();
        }
    }

    private sealed record NodeList(IReadOnlyList<string> Nodes, long At);
}
