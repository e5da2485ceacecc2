using Broker.Routing;
using RabbitMQ.Client;

namespace Broker.Relay.RabbitMq;

/// <summary>
/// One STOMP subscription consuming one RabbitMQ queue on its link's shared consumer channel.
/// Every delivery stays unacknowledged in RabbitMQ until the client is done with it: in the client
/// ack modes until its ACK, in auto mode until the MESSAGE has been written to the client
/// (<see cref="Written"/>). So a delivery the client never got goes back to the queue when the
/// subscription is released or the connection to RabbitMQ drops, and a durable subscription loses
/// nothing. Deliveries are numbered per subscription (<see cref="BrokerMessage.Offset"/>); that number
/// is the delivery tag the session sees, mapped here to the AMQP tag of the channel it came on.
/// A durable subscription consumes on a channel of its own (<see cref="OwnChannel"/>): closing that channel is
/// how it lets go, so RabbitMQ puts its unacknowledged deliveries back and hands the queue to the next
/// (single active) consumer in one step, in order.
/// </summary>
internal sealed class RelaySubscription : IBrokerSubscription
{
    private const int Live = 0;
    private const int Detached = 1;
    private const int Ended = 2;

    private readonly IMessageSink _sink;
    private readonly Lock _gate = new();
    private readonly LinkedList<Unacked> _unacked = new(); // in delivery order
    private readonly string _epoch = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8));
    private readonly bool _wildcard;
    private long _sequence;
    private int _state;
    private string? _lastRoutingKey;
    private string? _lastDestination;

    public RelaySubscription(SubscriptionRequest request, IMessageSink sink, RelayLink link, RabbitMqRelayOptions options, RelayQueueLimits limits)
    {
        Request = request;
        _sink = sink;
        Link = link;
        IsQueue = Destinations.IsQueue(request.Destination);
        Key = Destinations.Name(request.Destination);
        _wildcard = !IsQueue && Destinations.IsWildcard(Key);
        Durable = !IsQueue && request.Durable;
        FixedQueueName = IsQueue ? Key : Durable ? RelayDestinations.DurableQueueName(options.QueuePrefix, request.SessionId, request.SubscriptionId) : null;
        DropsQueueName = Durable ? RelayDestinations.DropsQueueName(FixedQueueName!) : null;
        Prefetch = (ushort)Math.Clamp(request.Prefetch > 0 ? request.Prefetch : options.DefaultPrefetch, 1, ushort.MaxValue);
        Limits = limits;
    }

    public SubscriptionRequest Request { get; }

    public RelayLink Link { get; }

    /// <summary>A <c>/queue/</c> subscription (else a <c>/topic/</c> one).</summary>
    public bool IsQueue { get; }

    /// <summary>The queue name (<c>/queue/</c>) or the topic key or pattern (<c>/topic/</c>).</summary>
    public string Key { get; }

    /// <summary>A topic subscription of a durable session: its own durable queue, kept while the client is away.</summary>
    public bool Durable { get; }

    /// <summary>The queue consumed: the <c>/queue/</c> name or the durable subscription's queue; null for a server-named exclusive queue.</summary>
    public string? FixedQueueName { get; }

    /// <summary>A durable subscription's drops queue, where its queue dead-letters what it drops; null for the others.</summary>
    public string? DropsQueueName { get; }

    /// <summary>The link found the drops queue gone while renewing it, and leaves it so (the next resume sees that).</summary>
    public bool DropsQueueGone { get; set; }

    public ushort Prefetch { get; }

    public RelayQueueLimits Limits { get; }

    public bool Recovered { get; set; }

    /// <summary>Serialises attaching and detaching (they await AMQP requests).</summary>
    public SemaphoreSlim AttachGate { get; } = new(1, 1);

    /// <summary>The link generation the current consumer belongs to, and its consumer tag (null when not consuming).</summary>
    public long Generation { get; set; } = -1;

    public string? ConsumerTag { get; set; }

    /// <summary>The channel this subscription consumes on alone (a durable one), or null: the link's shared consumer channel.</summary>
    public IChannel? OwnChannel { get; set; }

    public bool IsLive => Volatile.Read(ref _state) == Live;

    public bool IsEnded => Volatile.Read(ref _state) == Ended;

    /// <summary>Tells the session where delivery starts: this subscription's own numbering, from 0.</summary>
    public void Start() => _sink.Start(new StreamPosition(_epoch, 0));

    // On the link's consumer channel, one delivery at a time.
    public void OnDelivery(long generation, IChannel? own, ulong amqpTag, bool redelivered, string routingKey, IReadOnlyBasicProperties properties, ReadOnlyMemory<byte> body)
    {
        if (!IsLive)
        {
            // On a channel of its own the delivery waits for the channel's close, which puts everything back in
            // order; a requeue now would come straight back to this consumer, still the queue's active one.
            if (own is null)
            {
                Link.Settle(generation, amqpTag, AckAction.Requeue);
            }

            return;
        }

        // Dispatched as its connection is being torn down: RabbitMQ delivers it again on the next one.
        if (!Link.IsCurrent(generation))
        {
            return;
        }

        var message = RelayMessages.FromDelivery(Destination(routingKey), properties, body);
        message.Epoch = _epoch;
        if (redelivered)
        {
            // RabbitMQ delivered it before (to a consumer that let go of it): the MESSAGE says redelivered:true.
            message.Redeliveries = 1;
        }

        ulong sequence;
        lock (_gate)
        {
            sequence = (ulong)++_sequence;
            message.Offset = (long)sequence;
            _unacked.AddLast(new Unacked(sequence, amqpTag, generation, own));
        }

        // A refused delivery (the session is closing or over a limit) stays unacknowledged: it goes back
        // to the queue when the session releases this subscription.
        _sink.TryDeliver(message, sequence);
    }

    /// <summary>The connection this subscription consumed on is gone: RabbitMQ has put its unacknowledged deliveries back.</summary>
    public void OnLinkLost(long generation)
    {
        lock (_gate)
        {
            for (var node = _unacked.First; node is not null;)
            {
                var next = node.Next;
                if (node.Value.Generation <= generation)
                {
                    _unacked.Remove(node);
                }

                node = next;
            }

            if (Generation == generation)
            {
                ConsumerTag = null;
                OwnChannel = null; // closed with its connection
            }
        }
    }

    public void Written(BrokerMessage message)
    {
        if (Request.AckMode == AckMode.Auto && message.Epoch == _epoch)
        {
            // Written in delivery order: everything up to this one is done with.
            Settle((ulong)message.Offset, multiple: true, AckAction.Ack);
        }
    }

    public void Ack(ulong deliveryTag, bool multiple) => Settle(deliveryTag, multiple, AckAction.Ack);

    public void Nack(ulong deliveryTag, bool multiple) => Settle(deliveryTag, multiple, AckAction.Requeue);

    /// <summary>Detaches from a connection that went away; a durable subscription's queue keeps its messages.</summary>
    public void Dispose() => Release(Detached);

    /// <summary>UNSUBSCRIBE or DISCONNECT: a durable subscription's queue is deleted.</summary>
    public void Unsubscribe() => Release(Ended);

    private void Release(int state)
    {
        if (Interlocked.CompareExchange(ref _state, state, Live) == Live)
        {
            Link.Release(this);
        }
    }

    /// <summary>
    /// Puts every delivery not yet settled back into the queue (the subscription is going away). Those that came
    /// on a channel of its own are only forgotten: closing that channel puts them back, in order.
    /// </summary>
    public void RequeueUnacked()
    {
        lock (_gate)
        {
            foreach (var entry in _unacked)
            {
                if (entry.Own is null)
                {
                    Link.Settle(entry.Generation, entry.AmqpTag, AckAction.Requeue);
                }
            }

            _unacked.Clear();
        }
    }

    // A shared channel serves many consumers, so AMQP's own 'multiple' would settle other subscriptions'
    // deliveries too: there each delivery is settled on its own. On a channel of its own, one 'multiple'
    // settles a run (every earlier delivery on that channel is in the run: the run is all up to the tag).
    private void Settle(ulong sequence, bool multiple, AckAction action)
    {
        lock (_gate)
        {
            Unacked? run = null;
            for (var node = _unacked.First; node is not null && node.Value.Sequence <= sequence;)
            {
                var next = node.Next;
                if (multiple || node.Value.Sequence == sequence)
                {
                    var entry = node.Value;
                    _unacked.Remove(node);
                    if (multiple && entry.Own is not null)
                    {
                        if (run is { } open && open.Own != entry.Own)
                        {
                            Link.Settle(open.Generation, open.AmqpTag, action, open.Own, multiple: true);
                        }

                        run = entry;
                    }
                    else
                    {
                        Link.Settle(entry.Generation, entry.AmqpTag, action, entry.Own);
                    }

                    if (!multiple)
                    {
                        return;
                    }
                }

                node = next;
            }

            if (run is { } last)
            {
                Link.Settle(last.Generation, last.AmqpTag, action, last.Own, multiple: true);
            }
        }
    }

    private string Destination(string routingKey)
    {
        if (!_wildcard)
        {
            return Request.Destination;
        }

        // Consecutive deliveries often share a key: reuse the string.
        if (routingKey != _lastRoutingKey)
        {
            _lastDestination = Destinations.Topic(routingKey);
            _lastRoutingKey = routingKey;
        }

        return _lastDestination!;
    }

    private readonly record struct Unacked(ulong Sequence, ulong AmqpTag, long Generation, IChannel? Own);
}

internal enum AckAction : byte
{
    Ack,
    Requeue,
    Close,
}
