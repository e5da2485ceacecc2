using System.Threading.Tasks.Sources;
using Broker.Resources;

namespace Broker.Sessions;

/// <summary>An item an <see cref="Outbox{T}"/> counts: its size in bytes, and what it holds against the memory budget.</summary>
internal interface IOutboxItem
{
    /// <summary>Bytes queued for this client (what max-pending-bytes counts): the whole frame.</summary>
    int Size { get; }

    /// <summary>Queued: the bytes to count against the budget now (a part shared with other outboxes only by its first holder).</summary>
    int Hold();

    /// <summary>Read or dropped: the bytes to give back (the shared part only by its last holder).</summary>
    int Release();
}

/// <summary>
/// The queue between the threads that hand a session frames (broker threads, the read loop, the timer)
/// and its one writer loop: many producers, one consumer, unbounded (the session bounds it by bytes).
/// Unlike an unbounded <see cref="System.Threading.Channels.Channel{T}"/>, whose queue keeps a
/// 32-slot segment for life, an empty outbox holds no buffer: an idle connection costs nothing here,
/// which matters at tens of thousands of connections; and one item alone (a heart-beat, a RECEIPT, a message
/// now and then) waits in a field of its own, so a quiet connection's occasional frame allocates no array
/// either (the array is made when a second item joins it). The waiting reader is one reusable
/// <see cref="IValueTaskSource{TResult}"/>, resumed off the producer's thread. Every item queued counts
/// against the memory budget until it is read or discarded, whichever path queued it; what several
/// outboxes share (one message fanned out) is counted once, by <see cref="IOutboxItem.Hold"/>.
/// </summary>
internal sealed class Outbox<T>(MemoryBudget? budget = null) : IValueTaskSource<bool>
    where T : IOutboxItem
{
    private const int InitialCapacity = 8;
    private const int KeepCapacity = 64;
    private readonly Lock _gate = new();
    private ManualResetValueTaskSourceCore<bool> _waiter = new() { RunContinuationsAsynchronously = true };
    private T[] _items = [];

    // The one item queued while _items is empty (then _count is 1).
    private T _single = default!;
    private int _head;
    private int _count;
    private long _bytes;
    private bool _waiting;
    private bool _completed;

    /// <summary>Queues an item; false once <see cref="TryComplete"/> was called.</summary>
    public bool TryWrite(T item)
    {
        bool wake;
        lock (_gate)
        {
            if (_completed)
            {
                return false;
            }

            if (_items.Length == 0 && _count == 0)
            {
                _single = item;
            }
            else
            {
                if (_count == _items.Length || _items.Length == 0)
                {
                    Grow();
                }

                _items[(_head + _count) % _items.Length] = item;
            }

            _count++;
            _bytes += item.Size;
            wake = _waiting;
            _waiting = false;
        }

        budget?.Add(MemoryComponent.Outboxes, item.Hold());
        if (wake)
        {
            _waiter.SetResult(true);
        }

        return true;
    }

    public bool TryRead(out T item)
    {
        lock (_gate)
        {
            if (_count == 0)
            {
                item = default!;
                return false;
            }

            if (_items.Length == 0)
            {
                item = _single;
                _single = default!;
                _count = 0;
            }
            else
            {
                item = _items[_head];
                _items[_head] = default!;
                _head = (_head + 1) % _items.Length;
                _count--;
                if (_count == 0)
                {
                    // Drained: start again at the front, and give a large array back after a burst.
                    _head = 0;
                    if (_items.Length > KeepCapacity)
                    {
                        _items = [];
                    }
                }
            }

            _bytes -= item.Size;
        }

        budget?.Subtract(MemoryComponent.Outboxes, item.Release());
        return true;
    }

    /// <summary>Bytes of the items queued now.</summary>
    public long PendingBytes
    {
        get
        {
            lock (_gate)
            {
                return _bytes;
            }
        }
    }

    /// <summary>Completes the outbox and drops what is still queued (the writer loop has ended), giving its bytes back.</summary>
    public void Discard()
    {
        T[] items;
        T single;
        int head, count;
        lock (_gate)
        {
            _completed = true;
            (items, single, head, count) = (_items, _single, _head, _count);
            _bytes = 0;
            _items = [];
            _single = default!;
            _head = 0;
            _count = 0;
        }

        if (budget is not null)
        {
            var bytes = 0L;
            if (items.Length == 0 && count == 1)
            {
                bytes += single.Release();
            }

            for (var i = 0; i < count && items.Length > 0; i++)
            {
                bytes += items[(head + i) % items.Length].Release();
            }

            budget.Subtract(MemoryComponent.Outboxes, bytes);
        }
    }

    /// <summary>True while the outbox keeps an item array (a racy read: a hint for when to trim).</summary>
    public bool HoldsArray => Volatile.Read(ref _items).Length != 0;

    /// <summary>Gives the item array back when nothing is queued (called for idle connections).</summary>
    public void TrimIfEmpty()
    {
        lock (_gate)
        {
            if (_count == 0)
            {
                _items = [];
                _head = 0;
            }
        }
    }

    /// <summary>True when an item can be read; false when the outbox is completed and empty.</summary>
    public ValueTask<bool> WaitToReadAsync()
    {
        lock (_gate)
        {
            if (_count > 0)
            {
                return new ValueTask<bool>(true);
            }

            if (_completed)
            {
                return new ValueTask<bool>(false);
            }

            _waiter.Reset();
            _waiting = true;
            return new ValueTask<bool>(this, _waiter.Version);
        }
    }

    /// <summary>No more writes; the reader still reads what is queued, then sees the end.</summary>
    public bool TryComplete()
    {
        bool wake;
        lock (_gate)
        {
            if (_completed)
            {
                return false;
            }

            _completed = true;
            wake = _waiting;
            _waiting = false;
        }

        if (wake)
        {
            _waiter.SetResult(false);
        }

        return true;
    }

    private void Grow()
    {
        var larger = new T[Math.Max(InitialCapacity, _items.Length * 2)];
        if (_items.Length == 0)
        {
            // The one item waiting in its own field goes first.
            larger[0] = _single;
            _single = default!;
        }

        for (var i = 0; i < _count && _items.Length > 0; i++)
        {
            larger[i] = _items[(_head + i) % _items.Length];
        }

        _items = larger;
        _head = 0;
    }

    bool IValueTaskSource<bool>.GetResult(short token) => _waiter.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<bool>.GetStatus(short token) => _waiter.GetStatus(token);

    void IValueTaskSource<bool>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _waiter.OnCompleted(continuation, state, token, flags);
}
