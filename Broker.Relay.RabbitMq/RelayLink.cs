using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RabbitMQ.Client.Exceptions;

namespace Broker.Relay.RabbitMq;

/// <summary>
/// One pooled AMQP connection and everything on it: a consumer channel shared by the subscriptions
/// assigned to this link, a channel of its own for each durable subscription (up to
/// <see cref="RabbitMqRelayOptions.MaxDurableChannelsPerConnection"/>), a few publisher-confirm channels, and a
/// channel for declaring queues (a refused declare closes only that one, which is opened again on next use).
/// It reconnects by itself (no automatic recovery from the client library: the link re-declares and
/// re-consumes every live subscription itself, exclusive queues included), with a doubling backoff.
/// Acknowledgements are queued and sent by one loop, tagged with the connection generation they
/// belong to: a tag from a connection that is gone is dropped, since RabbitMQ requeued its delivery.
/// </summary>
internal sealed class RelayLink : IAsyncDisposable
{
    private readonly RabbitMqRelayOptions _options;
    private readonly RelayQueueLimits _limits;
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
    private int _ownChannels; // durable subscriptions' channels open on the current connection
    private volatile bool _connected; // channels open: subscriptions can attach
    private volatile bool _ready; // connected and every subscription re-attached: publishing goes on
    private TaskCompletionSource _lost = NewSignal();
    private TaskCompletionSource _up = NewSignal();
    private Task? _run;
    private Task? _ackLoop;
    private Task? _renewLoop;

    public RelayLink(int index, RabbitMqRelayOptions options, ILogger logger, RelayQueueLimits limits)
    {
        _limits = limits;
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

    /// <summary>Channels open: a subscription attached now is bound before <see cref="AttachAsync"/> returns.</summary>
    public bool CanAttach => _connected;

    /// <summary>Where the link connects, without credentials (for logs and errors).</summary>
    public string Endpoint => $"{_factory.HostName}:{_factory.Port}{_factory.VirtualHost}";

    public void Start()
    {
        _ackLoop = Task.Run(AckLoopAsync);
        _renewLoop = Task.Run(RenewDropsQueuesAsync);
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

    /// <summary>Queues an acknowledgement for the shared consumer channel of <paramref name="generation"/>, or for a subscription's own channel.</summary>
    public void Settle(long generation, ulong amqpTag, AckAction action, IChannel? own = null, bool multiple = false) =>
        _acks.Writer.TryWrite(new AckOp(generation, amqpTag, action, own, multiple, null));

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

            var (queue, existed, takeMark) = await DeclareAsync(subscription).ConfigureAwait(false);
            var own = subscription.Durable ? await OpenOwnChannelAsync(subscription, generation).ConfigureAwait(false) : null;
            string tag;
            try
            {
                tag = await ConsumeAsync(own ?? channel, own, queue, subscription, generation).ConfigureAwait(false);
            }
            catch
            {
                if (own is not null)
                {
                    Interlocked.Decrement(ref _ownChannels);
                    await CloseQuietlyAsync(own).ConfigureAwait(false);
                }

                throw;
            }

            subscription.Generation = generation;
            subscription.OwnChannel = own;
            subscription.ConsumerTag = tag;
            if (takeMark)
            {
                // Consuming first: whatever the queue drops from now on either is marked already or leaves a mark
                // for the next resume, so no drop falls between the look and the consume. Taken even when the length
                // already says recovered:false, so that the next resume is not told of this drop again.
                var unmarked = await TakeDropMarkAsync(subscription, queue).ConfigureAwait(false);
                existed = existed && unmarked;
            }

            Log.Attached(_logger, subscription.Request.SessionId, subscription.Request.SubscriptionId, queue, existed);
            return existed;
        }
        finally
        {
            subscription.AttachGate.Release();
        }
    }

    private async Task<string> ConsumeAsync(IChannel channel, IChannel? own, string queue, RelaySubscription subscription, long generation)
    {
        var consumer = new RelayConsumer(channel, own, subscription, generation, this);
        if (own is not null)
        {
            await own.BasicQosAsync(0, subscription.Prefetch, global: false).ConfigureAwait(false);
            return await own.BasicConsumeAsync(queue, autoAck: false, consumerTag: string.Empty, noLocal: false, exclusive: false, arguments: null, consumer).ConfigureAwait(false);
        }

        await _consumeGate.WaitAsync(_stopping.Token).ConfigureAwait(false);
        try
        {
            // Per-consumer prefetch: basic.qos applies to the consumers started after it on the channel.
            await channel.BasicQosAsync(0, subscription.Prefetch, global: false).ConfigureAwait(false);
            return await channel.BasicConsumeAsync(queue, autoAck: false, consumerTag: string.Empty, noLocal: false, exclusive: false, arguments: null, consumer).ConfigureAwait(false);
        }
        finally
        {
            _consumeGate.Release();
        }
    }

    // A durable subscription's queue has a single active consumer, and a resume on another node may already be
    // waiting as the next one. Cancelling a consumer on a shared channel would hand the queue over while its
    // unacknowledged deliveries are still out (they come back later, behind newer messages); closing a channel
    // of its own requeues them and hands over in one step, so the next consumer gets them first, in order.
    // Past MaxDurableChannelsPerConnection (or the connection's channel_max) it shares the consumer channel.
    private async Task<IChannel?> OpenOwnChannelAsync(RelaySubscription subscription, long generation)
    {
        var connection = _connection;
        var max = Math.Min(_options.MaxDurableChannelsPerConnection, connection is null || connection.ChannelMax == 0 ? int.MaxValue : connection.ChannelMax - _publishLanes.Length - 4);
        if (connection is null || Interlocked.Increment(ref _ownChannels) > max)
        {
            Interlocked.Decrement(ref _ownChannels);
            Log.SharedChannelForDurable(_logger, subscription.Request.SessionId, subscription.Request.SubscriptionId, max);
            return null;
        }

        try
        {
            var channel = await connection.CreateChannelAsync(new CreateChannelOptions(false, false, consumerDispatchConcurrency: 1), _stopping.Token).ConfigureAwait(false);
            channel.ChannelShutdownAsync += (_, args) => OnOwnChannelShutdownAsync(subscription, channel, generation, args);
            return channel;
        }
        catch
        {
            Interlocked.Decrement(ref _ownChannels);
            throw;
        }
    }

    // RabbitMQ closed a durable subscription's own channel (not the connection, not us): consume again on a new one.
    private Task OnOwnChannelShutdownAsync(RelaySubscription subscription, IChannel channel, long generation, ShutdownEventArgs args)
    {
        if (args.Initiator != ShutdownInitiator.Application && subscription.OwnChannel == channel && _connected && generation == Interlocked.Read(ref _generation))
        {
            Interlocked.Decrement(ref _ownChannels);
            subscription.OwnChannel = null;
            subscription.ConsumerTag = null;
            subscription.RequeueUnacked();
            Reattach(subscription);
        }

        return Task.CompletedTask;
    }

    private void Reattach(RelaySubscription subscription) => _ = Task.Run(async () =>
    {
        try
        {
            await AttachAsync(subscription).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Log.AttachFailed(_logger, ex, subscription.Request.SessionId, subscription.Request.SubscriptionId, subscription.Request.Destination);
        }
    }, CancellationToken.None);

    private static async Task CloseQuietlyAsync(IChannel channel)
    {
        try
        {
            await channel.CloseAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is AlreadyClosedException or OperationInterruptedException or ObjectDisposedException or IOException or TimeoutException or OperationCanceledException)
        {
            // Closed already, or the connection is going: RabbitMQ requeues either way.
        }

        await channel.DisposeAsync().ConfigureAwait(false);
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
            var current = subscription.Generation == Interlocked.Read(ref _generation);
            if (subscription.OwnChannel is { } own)
            {
                // Closed behind the acknowledgements already queued (so those are not delivered again); the
                // close requeues the rest and hands the queue to the next consumer in one step.
                subscription.OwnChannel = null;
                subscription.ConsumerTag = null;
                subscription.RequeueUnacked();
                var closed = NewSignal();
                _acks.Writer.TryWrite(new AckOp(subscription.Generation, 0, AckAction.Close, own, false, closed));
                await closed.Task.WaitAsync(_stopping.Token).ConfigureAwait(false);
                if (current)
                {
                    Interlocked.Decrement(ref _ownChannels);
                }
            }
            else if (_connected && channel is not null && subscription.ConsumerTag is { } tag && current)
            {
                // Cancel first, so the requeued deliveries cannot come straight back to this consumer.
                await channel.BasicCancelAsync(tag).ConfigureAwait(false);
            }

            subscription.ConsumerTag = null;
            subscription.RequeueUnacked();
            if (subscription.IsEnded && subscription.Durable && _connected)
            {
                await DeleteWithDropsQueueAsync(subscription.FixedQueueName!).ConfigureAwait(false);
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

    // Existed: the queue was there and, by its length, dropped nothing. TakeMark: it is a durable subscription's first
    // attach here (the one a resume reports) to a queue that was there, so its drops queue is to be looked at once
    // the consumer is on; a re-attach after a reconnect leaves the mark for the next resume.
    private async Task<(string Queue, bool Existed, bool TakeMark)> DeclareAsync(RelaySubscription subscription)
    {
        var name = subscription.FixedQueueName;
        if (name is null)
        {
            // A subscription that is not kept across connections: a server-named queue that lives as long
            // as this connection and this consumer.
            return await WithTopologyChannelAsync(async c =>
            {
                var ok = await c.QueueDeclareAsync(string.Empty, durable: false, exclusive: true, autoDelete: true, _limits.SubscriptionQueue()).ConfigureAwait(false);
                await c.QueueBindAsync(ok.QueueName, RelayDestinations.TopicExchange, subscription.Key).ConfigureAwait(false);
                return (ok.QueueName, false, false);
            }).ConfigureAwait(false);
        }

        var messages = await MessageCountAsync(name).ConfigureAwait(false);
        bool existed;
        var takeMark = false;
        if (subscription.Durable)
        {
            // Nothing consumed it while the client was away, so below its length limit it dropped nothing by length;
            // its drops queue tells the rest (drops by bytes, and by length too).
            existed = messages is { } count && !_limits.MayHaveDropped(count);
            takeMark = messages is not null && subscription.Generation < 0;
            if (messages is null)
            {
                // The drops queue first, so that nothing the new queue drops is lost on the way.
                await DeclareQueueAsync(subscription.DropsQueueName!, _limits.DropsQueue()).ConfigureAwait(false);
                await DeclareQueueAsync(name, _limits.DurableSubscriptionQueue(subscription.DropsQueueName!)).ConfigureAwait(false);
            }
        }
        else
        {
            existed = messages is not null;
            if (messages is null)
            {
                await DeclareQueueAsync(name, _limits.DestinationQueue()).ConfigureAwait(false);
            }
        }

        if (!subscription.IsQueue)
        {
            await WithTopologyChannelAsync(async c =>
            {
                await c.QueueBindAsync(name, RelayDestinations.TopicExchange, subscription.Key).ConfigureAwait(false);
                return true;
            }).ConfigureAwait(false);
        }

        return (name, existed, takeMark);
    }

    // True when a durable subscription's drops queue holds no mark, taking the mark when there is one (the next drop
    // leaves a new one). queue.purge tells how many it took in one step and pulls no message body into this process;
    // on a missing queue it closes the topology channel (404), which is opened again on next use. RabbitMQ dead-letters
    // a classic queue's drops without confirms (at most once): on one node the queue hands the dead letter to the drops
    // queue before it answers the consume, so a drop before the consume is seen here; see README for what remains.
    private async Task<bool> TakeDropMarkAsync(RelaySubscription subscription, string name)
    {
        var drops = subscription.DropsQueueName!;
        try
        {
            if (await WithTopologyChannelAsync(c => c.QueuePurgeAsync(drops)).ConfigureAwait(false) == 0)
            {
                return true;
            }

            Log.DroppedWhileAway(_logger, subscription.Request.SessionId, subscription.Request.SubscriptionId, name);
            return false;
        }
        catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == Constants.NotFound)
        {
        }

        // No drops queue: it expired or was deleted (a drop meanwhile left no mark), or the queue was declared before
        // drops queues were (it has no dead-letter target, and only its length tells). A refused declare with today's
        // arguments cannot tell these apart from a queue this version declared with other limits (another node's
        // settings, or changed ones), which does mark its drops: nothing is promised either way. Declared again, for
        // next time; the log says what the declare suggests.
        var marksDrops = await HasArgumentsAsync(name, _limits.DurableSubscriptionQueue(drops)).ConfigureAwait(false);
        await DeclareQueueAsync(drops, _limits.DropsQueue()).ConfigureAwait(false);
        if (marksDrops)
        {
            Log.DropsQueueMissing(_logger, subscription.Request.SessionId, subscription.Request.SubscriptionId, drops);
        }
        else
        {
            Log.QueueWithoutDropMarks(_logger, subscription.Request.SessionId, subscription.Request.SubscriptionId, name, drops);
        }

        return false;
    }

    // Whether queue 'name' was declared with these arguments: a declare with the same ones changes nothing; with
    // others it is refused (PRECONDITION_FAILED, closing the topology channel only).
    private async Task<bool> HasArgumentsAsync(string name, Dictionary<string, object?> arguments)
    {
        try
        {
            await WithTopologyChannelAsync(c => c.QueueDeclareAsync(name, durable: true, exclusive: false, autoDelete: false, arguments)).ConfigureAwait(false);
            return true;
        }
        catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == Constants.PreconditionFailed)
        {
            return false;
        }
    }

    // A drops queue has no consumer, so RabbitMQ counts it unused from its last declare while its subscription's queue
    // is kept by the consumer: while a durable subscription is attached here, a passive declare renews its drops queue.
    // One that is gone is left gone: the next resume finds no mark queue and says recovered:false, as it must.
    // Each declare takes the topology gate on its own and gives it back (SemaphoreSlim hands a released gate to the
    // longest waiter), so a SUBSCRIBE's or a resume's declare waits behind one passive declare, never a whole round.
    // A failure ends only its round; the loop ends only when the link stops.
    private async Task RenewDropsQueuesAsync()
    {
        try
        {
            while (true)
            {
                await Task.Delay(_limits.DropsRenewInterval, _stopping.Token).ConfigureAwait(false);
                var started = Environment.TickCount64;
                var renewed = 0;
                foreach (var subscription in _subscriptions.Keys)
                {
                    if (!_connected)
                    {
                        break; // declared again, and renewed, when the subscriptions attach again
                    }

                    if (subscription is not { DropsQueueName: { } drops, IsLive: true, ConsumerTag: not null, DropsQueueGone: false })
                    {
                        continue;
                    }

                    try
                    {
                        await WithTopologyChannelAsync(c => c.QueueDeclarePassiveAsync(drops)).ConfigureAwait(false);
                        renewed++;
                    }
                    catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == Constants.NotFound)
                    {
                        // Let go of meanwhile (UNSUBSCRIBE, DISCONNECT: its queues were deleted while this waited for
                        // the topology channel), or gone by itself.
                        if (subscription.IsLive)
                        {
                            subscription.DropsQueueGone = true;
                            Log.DropsQueueMissing(_logger, subscription.Request.SessionId, subscription.Request.SubscriptionId, drops);
                        }
                    }
                    catch (Exception ex) when (!_stopping.IsCancellationRequested)
                    {
                        // The connection is going, or a request timed out or was cancelled (the reconnect loop notices,
                        // and the subscriptions declare their queues again when they attach); the next round tries again.
                        Log.RenewFailed(_logger, ex, _index);
                        break;
                    }
                }

                if (renewed > 0)
                {
                    Log.Renewed(_logger, _index, renewed, Environment.TickCount64 - started);
                }
            }
        }
        catch (Exception) when (_stopping.IsCancellationRequested)
        {
            // Stopping: the delay was cancelled, or a request failed as the connection closed.
        }
    }

    // A queue made meanwhile by someone else with other arguments (another node with other settings, or an
    // operator's) is refused with PRECONDITION_FAILED, which closes the topology channel (opened again on next
    // use; the consumer and publish channels are not touched): it exists, which is what the caller needs.
    private async Task DeclareQueueAsync(string name, Dictionary<string, object?> arguments)
    {
        try
        {
            await WithTopologyChannelAsync(async c =>
            {
                await c.QueueDeclareAsync(name, durable: true, exclusive: false, autoDelete: false, arguments).ConfigureAwait(false);
                return true;
            }).ConfigureAwait(false);
        }
        catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == Constants.PreconditionFailed)
        {
            Log.QueueArgumentsDiffer(_logger, name, ex.ShutdownReason.ReplyText);
        }
    }

    /// <summary>Deletes the queues of an ended durable session's subscriptions, each with its drops queue; a failure leaves the rest to expire.</summary>
    public async Task DeleteDurableQueuesAsync(string sessionId, IReadOnlyList<string> queues)
    {
        try
        {
            foreach (var queue in queues)
            {
                await DeleteWithDropsQueueAsync(queue).ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            // Not connected, or stopping: they expire by themselves.
            if (!_stopping.IsCancellationRequested)
            {
                Log.SessionQueuesNotDeleted(_logger, ex, sessionId);
            }
        }
    }

    // A durable subscription's queue, then its drops queue (so that nothing it drops on the way is marked in a queue
    // already gone, to outlive it).
    private async Task DeleteWithDropsQueueAsync(string queue)
    {
        await WithTopologyChannelAsync(c => c.QueueDeleteAsync(queue, ifUnused: false, ifEmpty: false)).ConfigureAwait(false);
        await WithTopologyChannelAsync(c => c.QueueDeleteAsync(RelayDestinations.DropsQueueName(queue), ifUnused: false, ifEmpty: false)).ConfigureAwait(false);
    }

    /// <summary>Declares a <c>/queue/</c> destination's queue (durable, shared by competing consumers) when a publish found none.</summary>
    public Task DeclareDestinationQueueAsync(string name) => DeclareQueueAsync(name, _limits.DestinationQueue());

    /// <summary>
    /// The ready messages in queue <paramref name="name"/>, or null when there is no such queue. A passive declare of
    /// a missing queue closes its channel (404), so it runs on the topology channel, which is opened again on next use.
    /// </summary>
    public async Task<uint?> MessageCountAsync(string name)
    {
        try
        {
            return (await WithTopologyChannelAsync(c => c.QueueDeclarePassiveAsync(name)).ConfigureAwait(false)).MessageCount;
        }
        catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == Constants.NotFound)
        {
            return null;
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
        Volatile.Write(ref _ownChannels, 0);
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
                    if (op.Own is { } own)
                    {
                        await SettleOwnAsync(own, op, _connected && op.Generation == generation).ConfigureAwait(false);
                        continue;
                    }

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

    // A durable subscription's own channel: nothing else is on it, so acks go as they are ('multiple' included),
    // and a close queued behind them goes after them (it is not awaited here: the close-ok is RabbitMQ's to send).
    private static async Task SettleOwnAsync(IChannel own, AckOp op, bool current)
    {
        if (op.Action == AckAction.Close)
        {
            _ = Task.Run(async () =>
            {
                await CloseQuietlyAsync(own).ConfigureAwait(false);
                op.Done!.TrySetResult();
            }, CancellationToken.None);
        }
        else if (current && own.IsOpen)
        {
            await SendAsync(own, op.Tag, op.Multiple, op.Action).ConfigureAwait(false);
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

        if (_renewLoop is not null)
        {
            await _renewLoop.ConfigureAwait(false);
        }

    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>A publisher-confirm channel and the permits that bound its publishes awaiting confirmation.</summary>
    public sealed class PublishLane(IChannel channel, int permits)
    {
        public IChannel Channel { get; } = channel;

        public SemaphoreSlim Permits { get; } = new(permits, permits);
    }

    /// <summary>A settlement for the shared consumer channel (<paramref name="Own"/> null) or a subscription's own channel; or that channel's close.</summary>
    private readonly record struct AckOp(long Generation, ulong Tag, AckAction Action, IChannel? Own, bool Multiple, TaskCompletionSource? Done);

    /// <summary>Hands a subscription's deliveries over from the shared consumer channel.</summary>
    private sealed class RelayConsumer(IChannel channel, IChannel? own, RelaySubscription subscription, long generation, RelayLink link) : AsyncDefaultBasicConsumer(channel)
    {
        public override Task HandleBasicDeliverAsync(string consumerTag, ulong deliveryTag, bool redelivered, string exchange, string routingKey,
            IReadOnlyBasicProperties properties, ReadOnlyMemory<byte> body, CancellationToken cancellationToken = default)
        {
            if (own is null)
            {
                link.Delivered(generation, deliveryTag);
            }

            subscription.OnDelivery(generation, own, deliveryTag, redelivered, routingKey, properties, body);
            return Task.CompletedTask;
        }

        // RabbitMQ cancelled the consumer (its queue was deleted): declare and consume again.
        protected override Task OnCancelAsync(string[] consumerTags, CancellationToken cancellationToken = default)
        {
            if (subscription.IsLive && link._connected && subscription.Generation == generation && generation == Interlocked.Read(ref link._generation) && subscription.OwnChannel == own)
            {
                subscription.ConsumerTag = null;
                if (own is not null)
                {
                    // Its queue is gone, and with it what the channel held: a new channel for the new queue.
                    subscription.OwnChannel = null;
                    Interlocked.Decrement(ref link._ownChannels);
                    subscription.RequeueUnacked();
                    _ = CloseQuietlyAsync(own);
                }

                link.Reattach(subscription);
            }

            return Task.CompletedTask;
        }
    }
}
