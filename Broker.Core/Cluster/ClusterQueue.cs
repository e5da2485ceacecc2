using Broker.Routing;
using StackExchange.Redis;
using StreamPosition = Broker.Routing.StreamPosition;

namespace Broker.Cluster;

/// <summary>
/// One <c>/queue/</c> destination on this node while it has consumers here. The queue itself is a Redis
/// stream read through one consumer group by every node: Redis hands each message to one node (XREADGROUP),
/// keeps it pending until that node acknowledges it (XACK, then XDEL, so the stream holds only messages not
/// yet settled and <see cref="StompBrokerOptions.MaxQueueLength"/> bounds it cluster-wide), and lets another
/// node take over what a dead node held (XAUTOCLAIM after <see cref="RedisClusterOptions.QueueRedeliveryTimeout"/>;
/// live nodes renew their deliveries, <see cref="ClusterScripts.TouchQueue"/>). This node reads only as many
/// messages as its consumers have room for and hands them out round robin as <see cref="MessageQueue"/> does;
/// a NACK or a consumer leaving gives the message to another consumer here, or back to the cluster
/// (<see cref="ClusterScripts.ReleaseQueue"/>) when none here can take it. A publish tells the consumers'
/// nodes on the queue's channel, so nobody polls; a timer still reads now and then in case a notice was lost.
/// </summary>
internal sealed class ClusterQueue(RedisClusterBroker broker, string name)
{
    private readonly Lock _gate = new();
    private readonly ConsumerRing<ClusterQueueConsumer> _consumers = new();
    private readonly LinkedList<QueueEntry> _ready = new();
    private bool _evicted;
    private bool _pumping;
    private bool _pumpAgain;
    private bool _claimWanted = true;
    private Task<bool>? _open;
    private ChannelMessageQueue? _notices;

    public string Name { get; } = name;

    public RedisKey Stream { get; } = broker.Keys.QueueStream(name);

    public RedisKey Meta { get; } = broker.Keys.QueueMeta(name);

    /// <summary>The queue's epoch in Redis, once opened: a resumed consumer is recovered when it left the same one.</summary>
    public string? Epoch { get; private set; }

    public async ValueTask<ClusterQueueConsumer?> TryAddConsumerAsync(IMessageSink sink, AckMode ackMode, int prefetch, StreamPosition? resumeFrom)
    {
        lock (_gate)
        {
            if (_evicted)
            {
                return null;
            }
        }

        await EnsureOpenAsync().ConfigureAwait(false);
        ClusterQueueConsumer consumer;
        lock (_gate)
        {
            if (_evicted)
            {
                return null;
            }

            consumer = new ClusterQueueConsumer(this, sink, ackMode, prefetch, broker.Options.QueueReadBatch)
            {
                // The messages wait in Redis while no consumer is attached: a consumer that left this epoch misses none.
                Recovered = Epoch is not null && resumeFrom?.Epoch == Epoch,
            };
            sink.Start(new StreamPosition(Epoch ?? "x" + ClusterKeys.NewEpoch(), 0));
            _consumers.Add(consumer);
        }

        RequestPump(claim: true);
        return consumer;
    }

    public Task<bool> EnsureOpenAsync()
    {
        lock (_gate)
        {
            if (_open is null || (_open.IsCompleted && !_open.Result))
            {
                _open = OpenAsync();
            }

            return _open;
        }
    }

    private async Task<bool> OpenAsync()
    {
        var epoch = await broker.TryOpenQueueAsync(this).ConfigureAwait(false);
        if (epoch is null)
        {
            return false;
        }

        var notices = await broker.TrySubscribeAsync(broker.Keys.QueueChannel(Name)).ConfigureAwait(false);
        lock (_gate)
        {
            Epoch = epoch;
            if (_evicted)
            {
                if (notices is not null)
                {
                    _ = RedisClusterBroker.UnsubscribeAsync(notices);
                }

                return false;
            }

            _notices = notices;
        }

        notices?.OnMessage(m => RequestPump(claim: m.Message == "r"));
        return notices is not null;
    }

    public bool NeedsOpen
    {
        get
        {
            lock (_gate)
            {
                return !_evicted && _open is { IsCompleted: true, Result: false };
            }
        }
    }

    /// <summary>Reads messages for this node's consumers, if they have room; one read at a time.</summary>
    public void RequestPump(bool claim)
    {
        lock (_gate)
        {
            _claimWanted |= claim;
            if (_pumping)
            {
                _pumpAgain = true;
                return;
            }

            _pumping = true;
        }

        _ = PumpAsync();
    }

    private async Task PumpAsync()
    {
        while (true)
        {
            int want;
            bool claim;
            lock (_gate)
            {
                want = Math.Min(RoomLocked() - _ready.Count, broker.Options.QueueReadBatch);
                if (want <= 0 || _evicted || Epoch is null || !broker.IsAvailable)
                {
                    _pumping = false;
                    _pumpAgain = false;
                    return;
                }

                claim = _claimWanted;
                _claimWanted = false;
                _pumpAgain = false;
            }

            var entries = await broker.TryReadQueueAsync(this, want, claim).ConfigureAwait(false);
            List<string>? settled = null;
            List<string>? released = null;
            lock (_gate)
            {
                if (entries is null)
                {
                    if (claim)
                    {
                        _claimWanted = true;
                    }

                    _pumping = false;
                    return;
                }

                foreach (var (id, message) in entries)
                {
                    if (message is null)
                    {
                        (settled ??= []).Add(id); // unreadable: settled so it does not come back forever
                    }
                    else
                    {
                        _ready.AddLast(new QueueEntry(id, message));
                    }
                }

                Dispatch(ref settled, ref released);
                if (entries.Count < want && !_pumpAgain)
                {
                    _pumping = false;
                }
            }

            Settle(settled, released);
            lock (_gate)
            {
                if (!_pumping)
                {
                    return;
                }
            }
        }
    }

    // Under _gate: what the consumers here can take now.
    private int RoomLocked()
    {
        var room = 0;
        foreach (var consumer in _consumers)
        {
            room += consumer.Room;
        }

        return room;
    }

    // Under _gate: ready messages to consumers with room, round robin; auto-ack deliveries are settled at once,
    // and what no consumer here can take goes back to the cluster.
    private void Dispatch(ref List<string>? settled, ref List<string>? released)
    {
        while (_ready.First is { } first && _consumers.NextWithRoom() is { } chosen)
        {
            _ready.RemoveFirst();
            if (!chosen.TryDeliver(first.Value))
            {
                _ready.AddFirst(first.Value);
                chosen.Refusing = true;
            }
            else if (chosen.AckMode == AckMode.Auto)
            {
                (settled ??= []).Add(first.Value.Id);
            }
        }

        if (_ready.Count > 0)
        {
            foreach (var entry in _ready)
            {
                (released ??= []).Add(entry.Id);
            }

            _ready.Clear();
        }
    }

    private void Settle(List<string>? settled, List<string>? released)
    {
        if (settled is not null)
        {
            broker.AckQueue(this, settled);
        }

        if (released is not null)
        {
            broker.ReleaseQueue(this, released);
        }
    }

    // ACK / NACK of a consumer: client mode settles this and every earlier delivery of the consumer.
    internal void Settle(ClusterQueueConsumer consumer, ulong tag, bool multiple, bool requeue)
    {
        List<string>? settled = null;
        List<string>? released = null;
        lock (_gate)
        {
            var taken = consumer.Unacked.Take(tag, multiple);

            if (!requeue)
            {
                foreach (var entry in taken)
                {
                    (settled ??= []).Add(entry.Id);
                }
            }
            else if (_consumers.Count == 1)
            {
                // Its rejecter is the only consumer here: back to the cluster, where another node's may take it.
                foreach (var entry in taken)
                {
                    (released ??= []).Add(entry.Id);
                }
            }
            else
            {
                Requeue(consumer, taken);
            }

            Dispatch(ref settled, ref released);
        }

        Settle(settled, released);
        RequestPump(claim: false);
    }

    internal void Remove(ClusterQueueConsumer consumer)
    {
        List<string>? settled = null;
        List<string>? released = null;
        lock (_gate)
        {
            if (!_consumers.Remove(consumer))
            {
                return;
            }

            Requeue(null, consumer.Unacked.TakeAll());
            Dispatch(ref settled, ref released);
        }

        Settle(settled, released);
    }

    // Under _gate: back to the head, in order; a NACKed message goes to the next consumer first, not its rejecter.
    private void Requeue(ClusterQueueConsumer? rejecter, List<QueueEntry> entries)
    {
        for (var i = entries.Count - 1; i >= 0; i--)
        {
            _ready.AddFirst(entries[i]);
        }

        if (rejecter is not null && entries.Count > 0)
        {
            _consumers.PassOver(rejecter);
        }
    }

    /// <summary>Whether this node holds deliveries or consumers of the queue (so its deliveries need renewing).</summary>
    public bool IsActive
    {
        get
        {
            lock (_gate)
            {
                return _consumers.Count > 0;
            }
        }
    }

    public bool TryEvict(out ChannelMessageQueue? notices)
    {
        lock (_gate)
        {
            notices = null;
            if (_consumers.Count > 0 || _ready.Count > 0)
            {
                return false;
            }

            _evicted = true;
            notices = _notices;
            return true;
        }
    }
}

/// <summary>A message this node read from a queue: its stream id and the message.</summary>
internal sealed record QueueEntry(string Id, BrokerMessage Message);

/// <summary>One consumer of a <see cref="ClusterQueue"/> on this node.</summary>
internal sealed class ClusterQueueConsumer(ClusterQueue queue, IMessageSink sink, AckMode ackMode, int prefetch, int batch) : IBrokerSubscription, IRingConsumer
{
    public bool Recovered { get; init; }

    public AckMode AckMode { get; } = ackMode;

    internal UnackedDeliveries<QueueEntry> Unacked { get; } = new();

    internal bool Refusing { get; set; }

    public bool HasRoom => !Refusing && (AckMode == AckMode.Auto || prefetch <= 0 || Unacked.Count < prefetch);

    /// <summary>How many messages to read for this consumer now (a batch where it sets no limit).</summary>
    internal int Room => Refusing ? 0 : AckMode == AckMode.Auto || prefetch <= 0 ? batch : Math.Max(0, prefetch - Unacked.Count);

    // Under the queue's lock.
    internal bool TryDeliver(QueueEntry entry) => Unacked.TryDeliver(sink, entry.Message, entry, AckMode == AckMode.Auto);

    public void Ack(ulong deliveryTag, bool multiple) => queue.Settle(this, deliveryTag, multiple, requeue: false);

    public void Nack(ulong deliveryTag, bool multiple) => queue.Settle(this, deliveryTag, multiple, requeue: true);

    public void Dispose() => queue.Remove(this);
}
