using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using Broker.Durability;
using Broker.Protocol;
using Broker.Routing;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace Broker.Relay.RabbitMq;

/// <summary>
/// <see cref="IMessageBroker"/> over RabbitMQ (AMQP 0-9-1, RabbitMQ.Client's async API): RabbitMQ does
/// the routing, fan-out and queueing; this node keeps a small pool of connections (<see cref="RelayLink"/>)
/// and spreads subscriptions and publishes over them. A publish completes when RabbitMQ has confirmed it; a
/// pipelined one (a SEND without a receipt) once it is on its way, its confirmation tracked here.
/// </summary>
internal sealed class RabbitMqRelay : IMessageBroker, IHealthCheck, IAsyncDisposable
{
    private readonly RabbitMqRelayOptions _options;
    private readonly BrokerMetrics _metrics;
    private readonly ILogger _logger;
    private readonly RelayLink[] _links;
    private readonly RelayQueueLimits _limits;
    private int _started;
    private long _startedAt;
    private int _disposed;
    private int _nextLink;
    private int _nextPublish;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, byte> _knownQueues = new(StringComparer.Ordinal);
    private const int MaxKnownQueues = 10_000;

    public RabbitMqRelay(IOptions<RabbitMqRelayOptions> options, IOptions<StompBrokerOptions> brokerOptions, IOptions<DurableSessionOptions> sessionOptions, BrokerMetrics metrics, ILoggerFactory loggerFactory)
    {
        _options = options.Value;
        _metrics = metrics;
        _logger = loggerFactory.CreateLogger("Broker.Relay.RabbitMq");
        var broker = brokerOptions.Value;
        _limits = new RelayQueueLimits(broker.MaxQueueLength, broker.MaxQueueBytes, broker.QueueOverflow, broker.QueueExpiry, _options.DurableQueueExpiry ?? sessionOptions.Value.Ttl);
        if (_options.Connections < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(options), _options.Connections, "Broker:Relay:RabbitMq:Connections must be at least 1.");
        }

        _links = new RelayLink[_options.Connections];
        for (var i = 0; i < _links.Length; i++)
        {
            _links[i] = new RelayLink(i, _options, _logger, _limits);
        }

        metrics.Observe("link.up", "relay", () => _links.Select(l => new Measurement<long>(l.IsConnected ? 1 : 0,
            new KeyValuePair<string, object?>("link", "rabbitmq"), new KeyValuePair<string, object?>("index", l.Index))));
    }

    /// <summary>Readiness: healthy while every connection to RabbitMQ is up, degraded while some are, unhealthy while none is.</summary>
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var up = _links.Count(l => l.IsConnected);
        var text = $"{up} of {_links.Length} connections to RabbitMQ at {_links[0].Endpoint} up";
        return Task.FromResult(up == _links.Length ? HealthCheckResult.Healthy(text) : up > 0 ? HealthCheckResult.Degraded(text) : HealthCheckResult.Unhealthy(text));
    }

    /// <summary>True while at least one connection to RabbitMQ is up.</summary>
    public bool IsConnected => Array.Exists(_links, l => l.IsConnected);

    /// <summary>Starts connecting (in the background: an unreachable RabbitMQ is retried, never fatal).</summary>
    public void Start()
    {
        if (Interlocked.Exchange(ref _started, 1) == 0)
        {
            _startedAt = Environment.TickCount64;
            Log.Starting(_logger, _links.Length, _links[0].Endpoint);
            foreach (var link in _links)
            {
                link.Start();
            }
        }
    }

    /// <summary>Waits until every connection is up (for start-up checks and tests).</summary>
    public async Task<bool> WaitConnectedAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        Start();
        var all = await Task.WhenAll(_links.Select(l => l.WaitConnectedAsync(timeout, cancellationToken))).ConfigureAwait(false);
        return Array.TrueForAll(all, c => c);
    }

    public string? ValidateDestination(string destination, bool forSubscribe) => RelayDestinations.Validate(destination, forSubscribe, _options.QueuePrefix);

    public async ValueTask PublishAsync(BrokerMessage message, CancellationToken cancellationToken = default)
    {
        Start();
        RelayMessages.CheckHeaders(message, _options.MaxHeaderBytes);
        var (exchange, routingKey, isQueue) = Target(message);
        var deadline = Environment.TickCount64 + (long)_options.UnavailableWait.TotalMilliseconds;
        var declared = false;
        while (true)
        {
            var (link, lane) = NextPublishLane(null);
            if (lane is null)
            {
                var remaining = deadline - Environment.TickCount64;
                if (remaining <= 0 || !await WaitAnyConnectedAsync(TimeSpan.FromMilliseconds(remaining), cancellationToken).ConfigureAwait(false))
                {
                    throw Unavailable(null);
                }

                continue;
            }

            await lane.Permits.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                // A /queue/ message is mandatory: with no queue to take it RabbitMQ returns it, and the
                // queue is declared (as the in-process broker creates a queue on first SEND). The token is
                // not passed on: cancelling a tracked publish corrupts the channel's confirm state in 7.x.
                var properties = RelayMessages.ToProperties(message, _options.PersistentMessages);
                await lane.Channel.BasicPublishAsync(exchange, routingKey, mandatory: isQueue, properties, message.Body, CancellationToken.None).ConfigureAwait(false);
                _metrics.Published(isQueue ? "queue" : "topic");
                if (isQueue)
                {
                    KnowQueue(routingKey);
                }

                return;
            }
            catch (PublishException ex) when (ex.IsReturn && isQueue && !declared)
            {
                declared = true;
                await link!.DeclareDestinationQueueAsync(routingKey).ConfigureAwait(false);
            }
            catch (PublishException ex) when (isQueue && !ex.IsReturn)
            {
                // Nacked: the queue is full and refuses publishes (x-overflow reject-publish). Which limit it reached
                // is told by its length; this path is the rare one, so the look costs nothing on the fast one.
                var messages = await link!.MessageCountAsync(routingKey).ConfigureAwait(false) ?? 0;
                throw Resources.LimitExceededException.QueueFull(_limits.LimitReached(messages), message.Destination);
            }
            catch (PublishException ex)
            {
                throw new StompProtocolException($"RabbitMQ refused the message for '{message.Destination}'", ex);
            }
            catch (Exception ex) when (ex is AlreadyClosedException or OperationInterruptedException or ObjectDisposedException or IOException)
            {
                // The connection went while publishing: try again on one that is up. The message may have
                // arrived before the confirm was lost, so it can arrive twice (at least once).
                if (Environment.TickCount64 >= deadline)
                {
                    throw Unavailable(ex);
                }

                await Task.Delay(20, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                lane.Permits.Release();
            }
        }
    }

    /// <summary>
    /// A SEND without a receipt: published on the publisher's own channel (so its messages stay in order) and
    /// not awaited; the confirmation is tracked here, and a failure retried as <see cref="PublishAsync"/> would
    /// before it is reported. The channel's permits bound what is outstanding: past them, this waits.
    /// </summary>
    public ValueTask<bool> PublishPipelinedAsync(BrokerMessage message, IPublisher publisher, CancellationToken cancellationToken = default)
    {
        Start();
        RelayMessages.CheckHeaders(message, _options.MaxHeaderBytes);
        var (exchange, routingKey, isQueue) = Target(message);

        // A /queue/ not yet seen may need declaring first, and an unreachable RabbitMQ needs the wait: both awaited.
        var (_, lane) = isQueue && !_knownQueues.ContainsKey(routingKey) ? (null, null) : NextPublishLane((uint)RuntimeHelpers.GetHashCode(publisher));
        if (lane is null)
        {
            return PublishThenTrueAsync(message, cancellationToken);
        }

        return lane.Permits.Wait(0, CancellationToken.None)
            ? new ValueTask<bool>(Pipeline(lane, exchange, routingKey, isQueue, message, publisher))
            : PipelineAfterPermitAsync(lane, exchange, routingKey, isQueue, message, publisher, cancellationToken);
    }

    private async ValueTask<bool> PublishThenTrueAsync(BrokerMessage message, CancellationToken cancellationToken)
    {
        await PublishAsync(message, cancellationToken).ConfigureAwait(false);
        return true;
    }

    private async ValueTask<bool> PipelineAfterPermitAsync(RelayLink.PublishLane lane, string exchange, string routingKey, bool isQueue, BrokerMessage message, IPublisher publisher, CancellationToken cancellationToken)
    {
        await lane.Permits.WaitAsync(cancellationToken).ConfigureAwait(false);
        return Pipeline(lane, exchange, routingKey, isQueue, message, publisher);
    }

    // Holds one of the lane's permits. BasicPublishAsync queues the message on the channel before it returns
    // (its confirm lock is taken in call order), so the next call of the same publisher goes out after it.
    private bool Pipeline(RelayLink.PublishLane lane, string exchange, string routingKey, bool isQueue, BrokerMessage message, IPublisher publisher)
    {
        var properties = RelayMessages.ToProperties(message, _options.PersistentMessages);
        var confirm = lane.Channel.BasicPublishAsync(exchange, routingKey, mandatory: isQueue, properties, message.Body, CancellationToken.None);
        if (confirm.IsCompletedSuccessfully)
        {
            lane.Permits.Release();
            _metrics.Published(isQueue ? "queue" : "topic");
            return true;
        }

        _ = TrackAsync(confirm, lane, message, publisher);
        return false;
    }

    private async Task TrackAsync(ValueTask confirm, RelayLink.PublishLane lane, BrokerMessage message, IPublisher publisher)
    {
        Exception? failure = null;
        try
        {
            await confirm.ConfigureAwait(false);
            _metrics.Published(message.Destination.StartsWith("/queue/", StringComparison.Ordinal) ? "queue" : "topic");
        }
        catch (Exception ex)
        {
            failure = ex;
        }
        finally
        {
            lane.Permits.Release();
        }

        if (failure is not null)
        {
            // Returned (a /queue/ deleted meanwhile), nacked, or cut off by a lost connection: publish again the
            // way an awaited SEND does (declaring, waiting for a connection); only what still fails is reported.
            Log.PipelinedPublishRetried(_logger, failure, message.Destination);
            if (failure is PublishException { IsReturn: true })
            {
                _knownQueues.TryRemove(Target(message).RoutingKey, out _);
            }

            try
            {
                await PublishAsync(message, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                publisher.Failed(message, ex);
                return;
            }
        }

        publisher.Confirmed(message);
    }

    private static (string Exchange, string RoutingKey, bool IsQueue) Target(BrokerMessage message)
    {
        var isQueue = Destinations.IsQueue(message.Destination);
        var routingKey = Destinations.Name(message.Destination);
        return (isQueue ? string.Empty : RelayDestinations.TopicExchange, routingKey, isQueue);
    }

    // /queue/ destinations a publish has reached, so later SENDs to them need no declaring and may pipeline.
    private void KnowQueue(string name)
    {
        if (_knownQueues.Count >= MaxKnownQueues)
        {
            _knownQueues.Clear();
        }

        _knownQueues.TryAdd(name, 0);
    }

    public async ValueTask<IBrokerSubscription> SubscribeAsync(SubscriptionRequest request, IMessageSink sink, CancellationToken cancellationToken = default)
    {
        Start();
        var link = await SubscribeLinkAsync(cancellationToken).ConfigureAwait(false);
        var subscription = new RelaySubscription(request, sink, link, _options, _limits);
        subscription.Start();
        link.Add(subscription);
        try
        {
            // Recovered only when it is known: the queue held what was sent while the client was away.
            subscription.Recovered = await link.AttachAsync(subscription).ConfigureAwait(false);
        }
        catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode is Constants.AccessRefused or Constants.PreconditionFailed or Constants.ResourceLocked)
        {
            subscription.Unsubscribe();
            // RabbitMQ's own reply text (vhost, user, arguments) is for the log, not for the client.
            var refusal = ex.ShutdownReason!.ReplyCode switch
            {
                Constants.AccessRefused => "access refused",
                Constants.PreconditionFailed => "precondition failed",
                _ => "resource locked",
            };
            throw new StompProtocolException($"RabbitMQ refused the subscription to '{request.Destination}': {refusal}", ex);
        }
        catch (Exception ex) when (ex is AlreadyClosedException or OperationInterruptedException or IOException or TimeoutException)
        {
            // The connection went meanwhile: the link attaches the subscription when it is back.
            Log.AttachFailed(_logger, ex, request.SessionId, request.SubscriptionId, request.Destination);
        }

        if (subscription.ConsumerTag is null)
        {
            Log.SubscribedWhileDisconnected(_logger, request.SessionId, request.SubscriptionId, request.Destination);
        }

        return subscription;
    }

    /// <summary>
    /// A durable session that will not resume: its topic subscriptions' queues and their drops queues are deleted now,
    /// in the background, rather than at their expiry (the drops queue's is half as late again). While no connection
    /// is up, or when a delete fails, they are left to expire.
    /// </summary>
    public void DeleteDurableSession(SessionRecord record)
    {
        var queues = record.Subscriptions.Where(s => Destinations.IsTopic(s.Destination))
            .Select(s => RelayDestinations.DurableQueueName(_options.QueuePrefix, record.Id, s.Id)).ToArray();
        if (queues.Length > 0 && Array.Find(_links, l => l.CanAttach) is { } link)
        {
            _ = link.DeleteDurableQueuesAsync(record.Id, queues);
        }
    }

    // A RECEIPT for SUBSCRIBE must mean the queue is bound, so that a SEND after it reaches the subscriber: the
    // subscription goes to a connected link (round robin among them), never to one that is reconnecting while
    // another already takes publishes. At start-up, before any link is up, it waits for one (up to UnavailableWait
    // after the start); while RabbitMQ is unreachable after that, it is attached when its link reconnects.
    private async ValueTask<RelayLink> SubscribeLinkAsync(CancellationToken cancellationToken)
    {
        var start = (uint)Interlocked.Increment(ref _nextLink);
        for (var waited = false; ; waited = true)
        {
            for (var i = 0; i < _links.Length; i++)
            {
                var link = _links[(int)((start + (uint)i) % (uint)_links.Length)];
                if (link.CanAttach)
                {
                    return link;
                }
            }

            var remaining = _startedAt + (long)_options.UnavailableWait.TotalMilliseconds - Environment.TickCount64;
            if (waited || remaining <= 0 || !await WaitAnyConnectedAsync(TimeSpan.FromMilliseconds(remaining), cancellationToken).ConfigureAwait(false))
            {
                return _links[(int)(start % (uint)_links.Length)];
            }
        }
    }

    // Registered both as itself and as IMessageBroker, so the container disposes it twice.
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        foreach (var link in _links)
        {
            await link.DisposeAsync().ConfigureAwait(false);
        }
    }

    // Round robin, or the link and channel an affinity picks (the next link up when that one is down).
    private (RelayLink? Link, RelayLink.PublishLane? Lane) NextPublishLane(uint? affinity)
    {
        var start = affinity ?? (uint)Interlocked.Increment(ref _nextPublish);
        for (var i = 0; i < _links.Length; i++)
        {
            var link = _links[(int)((start + (uint)i) % (uint)_links.Length)];
            if (link.Lane(affinity / (uint)_links.Length) is { } lane)
            {
                return (link, lane);
            }
        }

        return (null, null);
    }

    private async Task<bool> WaitAnyConnectedAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var waits = _links.Select(l => l.WaitConnectedAsync(timeout, linked.Token)).ToArray();
        var first = await Task.WhenAny(waits).ConfigureAwait(false);
        await linked.CancelAsync().ConfigureAwait(false);
        return await first.ConfigureAwait(false) || IsConnected;
    }

    // The session answers this with an ERROR frame (carrying the SEND's receipt id) and closes; the
    // client reconnects, to this node or another, and resumes its session.
    private StompProtocolException Unavailable(Exception? inner)
    {
        Log.PublishUnavailable(_logger, _links[0].Endpoint, _options.UnavailableWait);
        return new StompProtocolException($"broker unavailable: no connection to RabbitMQ at {_links[0].Endpoint} within {_options.UnavailableWait.TotalSeconds:0.#} s", inner ?? new IOException("not connected"));
    }
}
