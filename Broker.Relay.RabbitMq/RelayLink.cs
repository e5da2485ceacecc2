using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RabbitMQ.Client.Exceptions;

namespace Broker.Relay.RabbitMq;

/// <summary>
/// One pooled AMQP connection and everything on it: a consumer channel shared by the subscriptions
/// assigned to this link, a few publisher-confirm channels, and a channel for declaring queues.
/// It reconnects by itself (no automatic recovery from the client library: the link re-declares and
/// re-consumes every live subscription itself, exclusive queues included), with a doubling backoff.
/// Acknowledgements are queued and sent by one loop, tagged with the connection generation they
/// belong to: a tag from a connection that is gone is dropped, since RabbitMQ requeued its delivery.
/// </summary>
internal sealed class RelayLink : IAsyncDisposable
{
    private readonly RabbitMqRelayOptions _options;
    private readonly TimeSpan _queueExpiry;
    private readonly ConnectionFactory _factory;
    private readonly ILogger _logger;
    private readonly int _index;
    private readonly ConcurrentDictionary<RelaySubscription, byte> _subscriptions = new();
    private readonly System.Threading.Channels.Channel<AckOp> _acks =
        System.Threading.Channels.Channel.CreateUnbounded<AckOp>(new() { SingleReader = true });
    private readonly SemaphoreSlim _consumeGate = new(1, 1);
    private readonly SemaphoreSlim _topologyGate = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();

    private IConnection? _connection;
    private IChannel? _consumerChannel;
    private IChannel? _topologyChannel;
    private PublishLane[] _publishLanes = [];
    private int _nextPublish;
    private long _generation;
    private volatile bool _connected; // channels open: subscriptions can attach
    private volatile bool _ready; // connected and every subscription re-attached: publishing goes on
    private TaskCompletionSource _lost = NewSignal();
    private TaskCompletionSource _up = NewSignal();
    private Task? _run;
    private Task? _ackLoop;

    public RelayLink(int index, RabbitMqRelayOptions options, ILogger logger, TimeSpan queueExpiry = default)
    {
        _queueExpiry = queueExpiry;
        _index = index;
        _options = options;
        _logger = logger;
        _factory = new ConnectionFactory
        {
            Uri = new Uri(options.Uri),
            AutomaticRecoveryEnabled = false,
            TopologyRecoveryEnabled = false,
            RequestedHeartbeat = options.Heartbeat,
            ContinuationTimeout = options.RequestTimeout,
            RequestedConnectionTimeout = options.RequestTimeout,
            ClientProvidedName = $"broker-relay-{Environment.MachineName}-{Environment.ProcessId}-{index}",
        };
    }

    /// <summary>Connected, with every subscription of this link consuming again.</summary>
    public bool IsConnected => _ready;

    public int Index => _index;

    /// <summary>Where the link connects, without credentials (for logs and errors).</summary>
    public string Endpoint => $"{_factory.HostName}:{_factory.Port}{_factory.VirtualHost}";

    public void Start()
    {
        _ackLoop = Task.Run(AckLoopAsync);
        _run = Task.Run(RunAsync);
    }

    /// <summary>Completes when the link is connected (and its subscriptions attached), or after <paramref name="timeout"/>.</summary>
    public async Task<bool> WaitConnectedAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        if (_ready)
        {
            return true;
        }

        try
        {
            await Volatile.Read(ref _up).Task.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
        }

        return _ready;
    }

    /// <summary>
    /// A publisher-confirm channel of this connection, or null when not connected: the one <paramref name="affinity"/>
    /// picks (a publisher that pipelines stays on one channel, which keeps its messages in order), or round robin.
    /// After a reconnect, only once the subscriptions are attached again, so this node's subscribers see what follows.
    /// </summary>
    public PublishLane? Lane(uint? affinity = null)
    {
        var lanes = Volatile.Read(ref _publishLanes);
        if (!_ready || lanes.Length == 0)
        {
            return null;
        }

        var index = affinity ?? (uint)Interlocked.Increment(ref _nextPublish);
        var lane = lanes[(int)(index % (uint)lanes.Length)];
        return lane.Channel.IsOpen ? lane : null;
    }

    /// <summary>Whether <paramref name="generation"/> is the connection that is up now.</summary>
    public bool IsCurrent(long generation) => _connected && generation == Interlocked.Read(ref _generation);

    public void Add(RelaySubscription subscription) => _subscriptions.TryAdd(subscription, 0);

    /// <summary>Queues an acknowledgement for the channel of <paramref name="generation"/>.</summary>
    public void Settle(long generation, ulong amqpTag, AckAction action) => _acks.Writer.TryWrite(new AckOp(generation, amqpTag, action));

    /// <summary>
    /// Declares the subscription's queue and starts consuming it on this connection. Returns whether the
    /// queue already existed (so messages sent while the client was away are in it); false when the
    /// link is down (the subscription is attached when it reconnects).
    /// </summary>
    public async Task<bool> AttachAsync(RelaySubscription subscription)
    {
        await subscription.AttachGate.WaitAsync(_stopping.Token).ConfigureAwait(false);
        try
        {
            var generation = Interlocked.Read(ref _generation);
            var channel = _consumerChannel;
            if (!subscription.IsLive || !_connected || channel is null || (subscription.Generation == generation && subscription.ConsumerTag is not null))
            {
                return false;
            }

            var (queue, existed) = await DeclareAsync(subscription).ConfigureAwait(false);
            var consumer = new RelayConsumer(channel, subscription, generation, this);
            string tag;
            await _consumeGate.WaitAsync(_stopping.Token).ConfigureAwait(false);
            try
            {
                // Per-consumer prefetch: basic.qos applies to the consumers started after it on the channel.
                await channel.BasicQosAsync(0, subscription.Prefetch, global: false).ConfigureAwait(false);
                tag = await channel.BasicConsumeAsync(queue, autoAck: false, consumerTag: string.Empty, noLocal: false, exclusive: false, arguments: null, consumer).ConfigureAwait(false);
            }
            finally
            {
                _consumeGate.Release();
            }

            subscription.Generation = generation;
            subscription.ConsumerTag = tag;
            Log.Attached(_logger, subscription.Request.SessionId, subscription.Request.SubscriptionId, queue, existed);
            return existed;
        }
        finally
        {
            subscription.AttachGate.Release();
        }
    }

    /// <summary>Stops consuming for a subscription the session let go of; its unacknowledged deliveries go back to the queue.</summary>
    public void Release(RelaySubscription subscription)
    {
        _subscriptions.TryRemove(subscription, out _);
        _ = DetachAsync(subscription);
    }

    private async Task DetachAsync(RelaySubscription subscription)
    {
        try
        {
            await subscription.AttachGate.WaitAsync(_stopping.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        try
        {
            var channel = _consumerChannel;
            if (_connected && channel is not null && subscription.ConsumerTag is { } tag && subscription.Generation == Interlocked.Read(ref _generation))
            {
                // Cancel first, so the requeued deliveries cannot come straight back to this consumer.
                await channel.BasicCancelAsync(tag).ConfigureAwait(false);
            }

            subscription.ConsumerTag = null;
            subscription.RequeueUnacked();
            if (subscription.IsEnded && subscription.Durable && _connected)
            {
                await WithTopologyChannelAsync(c => c.QueueDeleteAsync(subscription.FixedQueueName!, ifUnused: false, ifEmpty: false)).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !_stopping.IsCancellationRequested)
        {
            // The connection went away meanwhile: RabbitMQ requeues what was unacknowledged, and an
            // abandoned durable queue expires by itself (x-expires).
            subscription.RequeueUnacked();
            Log.DetachFailed(_logger, ex, subscription.Request.SessionId, subscription.Request.SubscriptionId);
        }
        finally
        {
            subscription.AttachGate.Release();
        }
    }

    private async Task<(string Queue, bool Existed)> DeclareAsync(RelaySubscription subscription)
    {
        var name = subscription.FixedQueueName;
        if (name is null)
        {
            // A subscription that is not kept across connections: a server-named queue that lives as long
            // as this connection and this consumer.
            return await WithTopologyChannelAsync(async c =>
            {
                var ok = await c.QueueDeclareAsync(string.Empty, durable: false, exclusive: true, autoDelete: true, Arguments(subscription, durable: false)).ConfigureAwait(false);
                await c.QueueBindAsync(ok.QueueName, RelayDestinations.TopicExchange, subscription.Key).ConfigureAwait(false);
                return (ok.QueueName, false);
            }).ConfigureAwait(false);
        }

        var existed = await ExistsAsync(name).ConfigureAwait(false);
        return await WithTopologyChannelAsync(async c =>
        {
            if (!existed)
            {
                await c.QueueDeclareAsync(name, durable: true, exclusive: false, autoDelete: false, Arguments(subscription, subscription.Durable)).ConfigureAwait(false);
            }

            if (!subscription.IsQueue)
            {
                await c.QueueBindAsync(name, RelayDestinations.TopicExchange, subscription.Key).ConfigureAwait(false);
            }

            return (name, existed);
        }).ConfigureAwait(false);
    }

    /// <summary>Declares a <c>/queue/</c> destination's queue (durable, shared by competing consumers) when a publish found none.</summary>
    public async Task DeclareDestinationQueueAsync(string name, int maxQueueLength)
    {
        try
        {
            await WithTopologyChannelAsync(async c =>
            {
                await c.QueueDeclareAsync(name, durable: true, exclusive: false, autoDelete: false, DestinationQueueArguments(maxQueueLength)).ConfigureAwait(false);
                return true;
            }).ConfigureAwait(false);
        }
        catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == Constants.PreconditionFailed)
        {
            // Made meanwhile by someone else, with other arguments: it exists, which is all the publish needs.
        }
    }

    // A /queue/ destination's queue, the same whether a SEND or a SUBSCRIBE declares it: bounded like the in-process
    // queues (Broker:MaxQueueLength; RabbitMQ drops the oldest message when full, as they do) and deleted after
    // Broker:QueueExpiry without consumers (x-expires; RabbitMQ does not count publishes as use).
    private Dictionary<string, object?> DestinationQueueArguments(int maxQueueLength)
    {
        var arguments = new Dictionary<string, object?> { ["x-max-length"] = maxQueueLength };
        if (_queueExpiry > TimeSpan.Zero)
        {
            arguments["x-expires"] = (long)_queueExpiry.TotalMilliseconds;
        }

        return arguments;
    }

    // Bounded like the in-process queues (RabbitMQ drops the oldest message when full, as they do).
    private Dictionary<string, object?> Arguments(RelaySubscription subscription, bool durable)
    {
        if (subscription.IsQueue)
        {
            return DestinationQueueArguments(subscription.MaxQueueLength);
        }

        var arguments = new Dictionary<string, object?> { ["x-max-length"] = subscription.MaxQueueLength };
        if (durable)
        {
            arguments["x-expires"] = (long)subscription.DurableExpiry.TotalMilliseconds;
            // One consumer at a time: a client resuming on another node before its old connection is
            // noticed dead takes over in order instead of sharing the messages with a dead peer.
            arguments["x-single-active-consumer"] = true;
        }

        return arguments;
    }

    // A passive declare of a missing queue closes its channel (404), so it runs on the topology channel,
    // which is opened again on next use.
    private async Task<bool> ExistsAsync(string name)
    {
        try
        {
            await WithTopologyChannelAsync(c => c.QueueDeclarePassiveAsync(name)).ConfigureAwait(false);
            return true;
        }
        catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == Constants.NotFound)
        {
            return false;
        }
    }

    private async Task<T> WithTopologyChannelAsync<T>(Func<IChannel, Task<T>> operation)
    {
        await _topologyGate.WaitAsync(_stopping.Token).ConfigureAwait(false);
        try
        {
            var channel = _topologyChannel;
            if (channel is null || !channel.IsOpen)
            {
                if (channel is not null)
                {
                    await channel.DisposeAsync().ConfigureAwait(false);
                }

                var connection = _connection ?? throw new AlreadyClosedException(new ShutdownEventArgs(ShutdownInitiator.Library, 0, "not connected"));
                channel = await connection.CreateChannelAsync().ConfigureAwait(false);
                _topologyChannel = channel;
            }

            return await operation(channel).ConfigureAwait(false);
        }
        finally
        {
            _topologyGate.Release();
        }
    }

    private async Task RunAsync()
    {
        var delay = _options.ReconnectDelay;
        var attempt = 0;
        while (!_stopping.IsCancellationRequested)
        {
            try
            {
                await ConnectAsync().ConfigureAwait(false);
                Log.Connected(_logger, _index, Endpoint, attempt);
                attempt = 0;
                delay = _options.ReconnectDelay;
                await ResubscribeAsync().ConfigureAwait(false);
                _ready = true;
                Volatile.Read(ref _up).TrySetResult();
                await Volatile.Read(ref _lost).Task.WaitAsync(_stopping.Token).ConfigureAwait(false);
                Log.ConnectionLost(_logger, _index, Endpoint, _connection?.CloseReason?.ToString() ?? "a channel was closed");
            }
            catch (Exception ex) when (!_stopping.IsCancellationRequested)
            {
                // A clear line on the first failure and every tenth after it; the retries in between at Debug.
                attempt++;
                var reason = ex.GetBaseException().Message;
                if (attempt == 1 || attempt % 10 == 0)
                {
                    Log.ConnectFailed(_logger, _index, Endpoint, attempt, _options.MaxReconnectDelay.TotalMilliseconds, reason);
                }
                else
                {
                    Log.ConnectRetryFailed(_logger, _index, Endpoint, attempt, delay.TotalMilliseconds, reason);
                }
            }
            catch (Exception)
            {
                // Stopping.
            }
            finally
            {
                await DisconnectAsync().ConfigureAwait(false);
            }

            if (_stopping.IsCancellationRequested)
            {
                break;
            }

            try
            {
                await Task.Delay(attempt == 0 ? _options.ReconnectDelay : delay, _stopping.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }

            if (attempt > 0)
            {
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, _options.MaxReconnectDelay.Ticks));
            }
        }
    }

    private async Task ConnectAsync()
    {
        Volatile.Write(ref _lost, NewSignal());
        var connection = await _factory.CreateConnectionAsync(_stopping.Token).ConfigureAwait(false);
        _connection = connection;
        connection.ConnectionShutdownAsync += OnShutdownAsync;

        // One dispatch at a time on the consumer channel keeps each subscription's deliveries in order.
        var consumer = await connection.CreateChannelAsync(new CreateChannelOptions(false, false, consumerDispatchConcurrency: 1), _stopping.Token).ConfigureAwait(false);
        consumer.ChannelShutdownAsync += OnShutdownAsync;
        var publish = new PublishLane[Math.Max(1, _options.PublishChannelsPerConnection)];
        for (var i = 0; i < publish.Length; i++)
        {
            // With tracking, BasicPublishAsync completes when RabbitMQ confirms the message. The library's
            // default limiter delays publishes (up to a second) past half its 128 permits; the lane's own
            // permits bound what is outstanding instead, without delays.
            var channel = await connection.CreateChannelAsync(
                new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true, outstandingPublisherConfirmationsRateLimiter: null),
                _stopping.Token).ConfigureAwait(false);
            channel.ChannelShutdownAsync += OnShutdownAsync;
            publish[i] = new PublishLane(channel, Math.Max(1, _options.MaxUnconfirmedPerChannel));
        }

        _consumerChannel = consumer;
        Volatile.Write(ref _publishLanes, publish);
        Interlocked.Increment(ref _generation);
        _connected = true;
    }

    // Any channel closed by the peer or the library (not by us) means the link starts over.
    private Task OnShutdownAsync(object? sender, ShutdownEventArgs args)
    {
        if (args.Initiator != ShutdownInitiator.Application)
        {
            Volatile.Read(ref _lost).TrySetResult();
        }

        return Task.CompletedTask;
    }

    private async Task ResubscribeAsync()
    {
        var attached = 0;
        foreach (var subscription in _subscriptions.Keys)
        {
            if (!_connected)
            {
                return;
            }

            try
            {
                await AttachAsync(subscription).ConfigureAwait(false);
                attached++;
            }
            catch (Exception ex) when (!_stopping.IsCancellationRequested)
            {
                Log.AttachFailed(_logger, ex, subscription.Request.SessionId, subscription.Request.SubscriptionId, subscription.Request.Destination);
            }
        }

        if (attached > 0)
        {
            Log.Resubscribed(_logger, _index, attached);
        }
    }

    private async Task DisconnectAsync()
    {
        var wasReady = _ready;
        _ready = false;
        _connected = false;
        if (wasReady)
        {
            Volatile.Write(ref _up, NewSignal());
        }

        var generation = Interlocked.Read(ref _generation);
        foreach (var subscription in _subscriptions.Keys)
        {
            subscription.OnLinkLost(generation);
        }

        var connection = _connection;
        _connection = null;
        _consumerChannel = null;
        _topologyChannel = null;
        Volatile.Write(ref _publishLanes, []);
        if (connection is null)
        {
            return;
        }

        connection.ConnectionShutdownAsync -= OnShutdownAsync;
        try
        {
            await connection.AbortAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
            await connection.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Log.CloseFailed(_logger, ex, _index);
        }
    }

    // Settlements of the current connection go out in order; acks are coalesced (AckCoalescer) into
    // cumulative ones where no other delivery of the shared channel is in the way, nacks go at once.
    private async Task AckLoopAsync()
    {
        var reader = _acks.Reader;
        var coalescer = new AckCoalescer();
        long coalescerGeneration = -1;
        Task<bool>? waiting = null;
        try
        {
            while (true)
            {
                if (!reader.TryPeek(out _))
                {
                    waiting ??= reader.WaitToReadAsync(_stopping.Token).AsTask();
                    if (coalescer.HasPending)
                    {
                        var delay = coalescer.PendingDeadline - Environment.TickCount64;
                        if (delay > 0 && await Task.WhenAny(waiting, Task.Delay((int)delay, _stopping.Token)).ConfigureAwait(false) != waiting)
                        {
                            await SendStragglersAsync(coalescer, coalescerGeneration).ConfigureAwait(false);
                            continue;
                        }
                    }

                    if (!await waiting.ConfigureAwait(false))
                    {
                        return;
                    }

                    waiting = null;
                }

                while (reader.TryRead(out var op))
                {
                    var channel = _consumerChannel;
                    var generation = Interlocked.Read(ref _generation);
                    if (!_connected || channel is null || op.Generation != generation)
                    {
                        continue; // that connection is gone and RabbitMQ requeued the delivery
                    }

                    if (coalescerGeneration != generation)
                    {
                        coalescer = new AckCoalescer();
                        coalescerGeneration = generation;
                    }

                    if (op.Action == AckAction.Ack)
                    {
                        if (!coalescer.TryAck(op.Tag))
                        {
                            await SendAsync(channel, op.Tag, multiple: false, AckAction.Ack).ConfigureAwait(false);
                        }
                    }
                    else
                    {
                        coalescer.Settled(op.Tag);
                        await SendAsync(channel, op.Tag, multiple: false, AckAction.Requeue).ConfigureAwait(false);
                    }
                }

                if (coalescerGeneration == Interlocked.Read(ref _generation) && _consumerChannel is { } current)
                {
                    var cumulative = coalescer.TakeCumulative(LatestDelivered(coalescerGeneration));
                    if (cumulative != 0)
                    {
                        await SendAsync(current, cumulative, multiple: true, AckAction.Ack).ConfigureAwait(false);
                    }

                    if (coalescer.HasPending && Environment.TickCount64 >= coalescer.PendingDeadline)
                    {
                        await SendStragglersAsync(coalescer, coalescerGeneration).ConfigureAwait(false);
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task SendStragglersAsync(AckCoalescer coalescer, long generation)
    {
        var tags = coalescer.TakeStragglers();
        if (_consumerChannel is not { } channel || generation != Interlocked.Read(ref _generation))
        {
            return;
        }

        foreach (var tag in tags)
        {
            await SendAsync(channel, tag, multiple: false, AckAction.Ack).ConfigureAwait(false);
        }
    }

    private static async Task SendAsync(IChannel channel, ulong tag, bool multiple, AckAction action)
    {
        try
        {
            if (action == AckAction.Ack)
            {
                await channel.BasicAckAsync(tag, multiple).ConfigureAwait(false);
            }
            else
            {
                await channel.BasicNackAsync(tag, multiple, requeue: true).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is AlreadyClosedException or OperationInterruptedException or ObjectDisposedException or IOException)
        {
            // The connection is going; the reconnect loop notices.
        }
    }

    // The consumer channel's latest delivery tag, with the connection generation it belongs to in the top
    // 16 bits (one atomic write per delivery; a dispatch of an older connection never counts for a newer one).
    private long _latestDelivered;

    private void Delivered(long generation, ulong tag)
    {
        if (generation == Interlocked.Read(ref _generation))
        {
            Volatile.Write(ref _latestDelivered, ((generation & 0xFFFF) << 48) | (long)(tag & 0xFFFF_FFFF_FFFF));
        }
    }

    private ulong LatestDelivered(long generation)
    {
        var latest = Volatile.Read(ref _latestDelivered);
        return ((latest >> 48) & 0xFFFF) == (generation & 0xFFFF) ? (ulong)(latest & 0xFFFF_FFFF_FFFF) : 0;
    }

    public async ValueTask DisposeAsync()
    {
        if (_stopping.IsCancellationRequested)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_run is not null)
        {
            await _run.ConfigureAwait(false);
        }

        if (_ackLoop is not null)
        {
            await _ackLoop.ConfigureAwait(false);
        }

    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>A publisher-confirm channel and the permits that bound its publishes awaiting confirmation.</summary>
    public sealed class PublishLane(IChannel channel, int permits)
    {
        public IChannel Channel { get; } = channel;

        public SemaphoreSlim Permits { get; } = new(permits, permits);
    }

    private readonly record struct AckOp(long Generation, ulong Tag, AckAction Action);

    /// <summary>Hands a subscription's deliveries over from the shared consumer channel.</summary>
    private sealed class RelayConsumer(IChannel channel, RelaySubscription subscription, long generation, RelayLink link) : AsyncDefaultBasicConsumer(channel)
    {
        public override Task HandleBasicDeliverAsync(string consumerTag, ulong deliveryTag, bool redelivered, string exchange, string routingKey,
            IReadOnlyBasicProperties properties, ReadOnlyMemory<byte> body, CancellationToken cancellationToken = default)
        {
            link.Delivered(generation, deliveryTag);
            subscription.OnDelivery(generation, deliveryTag, routingKey, properties, body);
            return Task.CompletedTask;
        }

        // RabbitMQ cancelled the consumer (its queue was deleted): declare and consume again.
        protected override Task OnCancelAsync(string[] consumerTags, CancellationToken cancellationToken = default)
        {
            if (subscription.IsLive && link._connected && subscription.Generation == generation && generation == Interlocked.Read(ref link._generation))
            {
                subscription.ConsumerTag = null;
                _ = Task.Run(async () =>
                {
                    try
                    {
                        await link.AttachAsync(subscription).ConfigureAwait(false);
                    }
                    catch (Exception ex)
                    {
                        Log.AttachFailed(link._logger, ex, subscription.Request.SessionId, subscription.Request.SubscriptionId, subscription.Request.Destination);
                    }
                }, CancellationToken.None);
            }

            return Task.CompletedTask;
        }
    }
}
