using System.Collections.Concurrent;
using Broker.Resources;

namespace Broker.Routing;

/// <summary>
/// Topic routing with per-destination history. Each exact key someone subscribes to is a <see cref="Topic"/>
/// that numbers its messages, keeps a bounded history and fans out under its own lock, so a destination's
/// subscribers see its messages in offset order and a resumed subscription can be replayed from
/// its last position with no gap and no duplicate. Wildcard subscriptions live in a
/// <see cref="TopicTrie{T}"/> that publishes walk without locking, under the topic's lock so that
/// they too see one topic's messages in offset order. A key nobody subscribes to exactly has no
/// <see cref="Topic"/> and gets none from a SEND: only patterns can match it, and nothing is kept for it
/// (no one could resume it), so a publisher naming ever new keys costs nothing that stays.
/// History bytes count against the memory budget, and history is the first thing given up when the
/// budget goes above its high watermark.
/// </summary>
internal sealed class TopicRouter
{
    private readonly HistoryOptions _history;
    private readonly TimeProvider _time;
    private readonly MemoryBudget? _budget;
    private readonly ConcurrentDictionary<string, Topic> _topics = new(StringComparer.Ordinal);
    private readonly TopicTrie<TopicSubscription> _wildcards = new();

    private static readonly Action<TopicSubscription, BrokerMessage> s_deliver = static (subscription, message) => subscription.Deliver(message);

    public TopicRouter(HistoryOptions history, TimeProvider time, MemoryBudget? budget = null)
    {
        _history = history;
        _time = time;
        _budget = budget;
        budget?.OnAboveHighWatermark(ShedHistory);
    }

    public int TopicCount => _topics.Count;

    /// <summary>True when <paramref name="key"/> is an exact key this router holds a <see cref="Topic"/> for.</summary>
    public bool Contains(string key) => _topics.ContainsKey(key);

    /// <summary>The exact-key topics now held (a live view, for statistics).</summary>
    internal ICollection<Topic> Topics => _topics.Values;

    /// <summary>The wildcard subscriptions now held (for statistics).</summary>
    internal ICollection<TopicSubscription> Wildcards => _wildcardSet.Keys;

    // The same subscriptions as the trie, as a set to enumerate (the trie is for matching only).
    private readonly ConcurrentDictionary<TopicSubscription, byte> _wildcardSet = new();

    public void Publish(BrokerMessage message, string key)
    {
        while (true)
        {
            if (!_topics.TryGetValue(key, out var topic))
            {
                _wildcards.Match(key, message, s_deliver);
                return;
            }

            if (topic.TryPublish(message, _wildcards))
            {
                return;
            }

            // The topic was evicted between lookup and lock: look again.
        }
    }

    /// <param name="durable">The subscriber's session can resume: the topic keeps history for it (see <see cref="Topic"/>).</param>
    public TopicSubscription Subscribe(string key, IMessageSink sink, StreamPosition? resumeFrom, bool durable = true)
    {
        if (Destinations.IsWildcard(key))
        {
            sink.Start(null);
            var wildcard = new TopicSubscription(this, null, key, sink, recovered: false);
            wildcard.Binding = _wildcards.Add(key, wildcard);
            _wildcardSet.TryAdd(wildcard, 0);
            return wildcard;
        }

        while (true)
        {
            if (GetTopic(key).TrySubscribe(this, sink, resumeFrom, durable) is { } subscription)
            {
                return subscription;
            }
        }
    }

    public void RemoveWildcard(TopicSubscription subscription)
    {
        _wildcards.Remove(subscription.Binding!);
        _wildcardSet.TryRemove(subscription, out _);
    }

    /// <summary>Drops topics with no subscribers whose history has aged out; their epoch ends with them.</summary>
    public int Sweep()
    {
        var evicted = 0;
        foreach (var (key, topic) in _topics)
        {
            if (topic.TryEvict())
            {
                _topics.TryRemove(new KeyValuePair<string, Topic>(key, topic));
                evicted++;
            }
        }

        return evicted;
    }

    /// <summary>Gives up every topic's replay history (memory is short); returns the bytes given back.</summary>
    public long ShedHistory()
    {
        var bytes = 0L;
        foreach (var topic in _topics.Values)
        {
            bytes += topic.ClearHistory();
        }

        return bytes;
    }

    private Topic GetTopic(string key) => _topics.GetOrAdd(key, static (k, self) => new Topic(k, self._history, self._time, self._budget), this);
}

/// <summary>Bounds on each topic's history: messages, age and bytes (as <see cref="MessageSize"/> counts them).</summary>
public sealed record HistoryOptions(int Size, TimeSpan MaxAge, long MaxBytes = long.MaxValue);

/// <summary>
/// One exact topic key: its subscribers, its offsets and its bounded history. History exists for durable
/// subscribers to resume, so a topic keeps messages only while it has a durable subscriber or had one within
/// <see cref="HistoryOptions.MaxAge"/> (one that dropped may come back that long); its history array is made on
/// the first message kept and grows to <see cref="HistoryOptions.Size"/>, and it holds at most
/// <see cref="HistoryOptions.MaxBytes"/>: the oldest go first. The same bytes count against the memory budget.
/// </summary>
internal sealed class Topic(string key, HistoryOptions options, TimeProvider time, MemoryBudget? budget = null)
{
    private static readonly Action<TopicSubscription, BrokerMessage> s_deliver = static (subscription, message) => subscription.Deliver(message);

    private readonly Lock _gate = new();
    private (BrokerMessage Message, long Timestamp, long Size)[] _history = [];
    private int _head;
    private int _count;
    private long _historyBytes;
    private int _durableSubscribers;
    private bool _hadDurable;
    private long _lastDurableAt;
    private long _lastOffset;
    private bool _evicted;
    // Exact-key subscribers, changed and read only under _gate.
    private readonly SubscriberSlots<TopicSubscription> _subscribers = new();

    public string Key { get; } = key;

    /// <summary>Changes whenever history is lost: a new process, or this topic evicted and made again.</summary>
    public string Epoch { get; } = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8));

    /// <summary>Exact-key subscribers, messages in history and the last offset given out (for statistics).</summary>
    internal (int Subscribers, int History, long LastOffset) Statistics()
    {
        lock (_gate)
        {
            return (_subscribers.Count, _count, _lastOffset);
        }
    }

    public bool TryPublish(BrokerMessage message, TopicTrie<TopicSubscription> wildcards)
    {
        lock (_gate)
        {
            if (_evicted)
            {
                return false;
            }

            message.Epoch = Epoch;
            message.Offset = ++_lastOffset;
            Append(message);
            _subscribers.ForEach(message, s_deliver);
            wildcards.Match(Key, message, s_deliver);

            return true;
        }
    }

    // Subscribe live and replay under the same lock that publishing takes: no message can fall between
    // the replayed history and the live stream, and none can arrive twice.
    public TopicSubscription? TrySubscribe(TopicRouter router, IMessageSink sink, StreamPosition? resumeFrom, bool durable)
    {
        lock (_gate)
        {
            if (_evicted)
            {
                return null;
            }

            var recovered = false;
            if (resumeFrom is not null && resumeFrom.Epoch == Epoch && resumeFrom.Offset <= _lastOffset)
            {
                TrimExpired();
                var oldest = _count == 0 ? _lastOffset + 1 : OffsetAt(0);
                if (resumeFrom.Offset + 1 >= oldest)
                {
                    recovered = true;
                    sink.Start(resumeFrom);
                    for (var i = 0; i < _count; i++)
                    {
                        var entry = _history[(_head + i) % _history.Length];
                        if (entry.Message.Offset > resumeFrom.Offset)
                        {
                            sink.TryDeliver(entry.Message, 0);
                        }
                    }
                }
            }

            if (!recovered)
            {
                sink.Start(new StreamPosition(Epoch, _lastOffset));
            }

            var subscription = new TopicSubscription(router, this, Key, sink, recovered) { Durable = durable };
            if (durable)
            {
                _durableSubscribers++;
                _hadDurable = true;
                _lastDurableAt = time.GetTimestamp();
            }

            _subscribers.Add(subscription);
            return subscription;
        }
    }

    public void Remove(TopicSubscription subscription)
    {
        lock (_gate)
        {
            if (_subscribers.Remove(subscription) && subscription.Durable && --_durableSubscribers == 0)
            {
                _lastDurableAt = time.GetTimestamp();
            }
        }
    }

    public bool TryEvict()
    {
        lock (_gate)
        {
            TrimExpired();
            if (_subscribers.Count > 0 || _count > 0)
            {
                return false;
            }

            _evicted = true;
            return true;
        }
    }

    /// <summary>Drops the whole history; returns the bytes given back.</summary>
    public long ClearHistory()
    {
        lock (_gate)
        {
            var bytes = 0L;
            while (_count > 0)
            {
                bytes += DropOldest();
            }

            ReleaseEmptyHistory();
            return bytes;
        }
    }

    private long OffsetAt(int index) => _history[(_head + index) % _history.Length].Message.Offset;

    /// <summary>Bytes of history held (for tests and accounting).</summary>
    internal long HistoryBytes
    {
        get
        {
            lock (_gate)
            {
                return _historyBytes;
            }
        }
    }

    private void Append(BrokerMessage message)
    {
        var now = time.GetTimestamp();
        var size = MessageSize.Of(message);
        if (options.Size <= 0 || size > options.MaxBytes ||
            (_durableSubscribers == 0 && (!_hadDurable || time.GetElapsedTime(_lastDurableAt, now) > options.MaxAge)))
        {
            TrimExpired();
            return;
        }

        while (_count > 0 && (_count == options.Size || _historyBytes + size > options.MaxBytes))
        {
            DropOldest();
        }

        if (_count == _history.Length)
        {
            Grow();
        }

        _history[(_head + _count) % _history.Length] = (message, now, size);
        _count++;
        _historyBytes += size;
        budget?.Add(MemoryComponent.TopicHistory, size);
        TrimExpired();
    }

    // Doubles the ring (from 8) up to options.Size, keeping the entries in order from index 0.
    private void Grow()
    {
        var grown = new (BrokerMessage, long, long)[Math.Min(options.Size, Math.Max(8, _history.Length * 2))];
        for (var i = 0; i < _count; i++)
        {
            grown[i] = _history[(_head + i) % _history.Length];
        }

        _history = grown;
        _head = 0;
    }

    // Called under _gate with history kept: removes the oldest entry, gives its bytes back (to the topic's bound and the budget).
    private long DropOldest()
    {
        var size = _history[_head].Size;
        _history[_head] = default;
        _head = (_head + 1) % _history.Length;
        _count--;
        _historyBytes -= size;
        budget?.Subtract(MemoryComponent.TopicHistory, size);
        return size;
    }

    private void TrimExpired()
    {
        var now = time.GetTimestamp();
        while (_count > 0 && time.GetElapsedTime(_history[_head].Timestamp, now) > options.MaxAge)
        {
            DropOldest();
        }

        ReleaseEmptyHistory();
    }

    // Nothing kept and nobody to keep it for: the topic costs no more than its name.
    private void ReleaseEmptyHistory()
    {
        if (_count == 0 && _durableSubscribers == 0 && _history.Length > 0)
        {
            _history = [];
            _head = 0;
        }
    }
}

/// <summary>A subscriber to a topic key or pattern. Topic deliveries are not retained per subscriber, so acks only settle.</summary>
internal sealed class TopicSubscription : IBrokerSubscription, ISlotted
{
    private readonly TopicRouter _router;
    private readonly Topic? _topic;
    private readonly IMessageSink _sink;
    private int _disposed;

    public TopicSubscription(TopicRouter router, Topic? topic, string key, IMessageSink sink, bool recovered)
    {
        _router = router;
        _topic = topic;
        _sink = sink;
        Key = key;
        Recovered = recovered;
    }

    public string Key { get; }

    /// <summary>The subscriber's session can resume (its topic keeps history for it).</summary>
    internal bool Durable { get; init; }

    /// <summary>A wildcard subscription's place in the router's trie (null for an exact key).</summary>
    internal TopicTrie<TopicSubscription>.Binding? Binding { get; set; }

    /// <summary>This subscription's index in its topic's subscriber array (guarded by the topic's lock).</summary>
    public int Slot { get; set; } = -1;

    public bool Recovered { get; }

    public bool Deliver(BrokerMessage message) => _sink.TryDeliver(message, 0);

    public void Ack(ulong deliveryTag, bool multiple)
    {
    }

    public void Nack(ulong deliveryTag, bool multiple)
    {
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            if (_topic is null)
            {
                _router.RemoveWildcard(this);
            }
            else
            {
                _topic.Remove(this);
            }
        }
    }
}
