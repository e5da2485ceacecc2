namespace Broker.Routing;

/// <summary>An entry of a <see cref="SubscriberSlots{T}"/>, which keeps its index there (-1: in none).</summary>
internal interface ISlotted
{
    int Slot { get; set; }
}

/// <summary>
/// A topic's exact-key subscribers on this node (in-process <see cref="Topic"/> and the cluster's
/// <c>ClusterTopic</c>), changed and read only under the topic's lock. An entry knows its slot, so adding
/// and removing are O(1) (swap with the last) and the array grows by doubling: a copy per change would be
/// O(n²) work and garbage as tens of thousands of clients subscribe to one topic. A removal from inside
/// <see cref="ForEach{TState}"/> (same thread, the lock is re-entrant) works on a copy, so the loop that
/// is running never sees entries move.
/// </summary>
internal sealed class SubscriberSlots<T>
    where T : class, ISlotted
{
    private T[] _entries = [];
    private bool _delivering;

    public int Count { get; private set; }

    public void Add(T entry)
    {
        if (Count == _entries.Length)
        {
            Array.Resize(ref _entries, Math.Max(4, _entries.Length * 2));
        }

        entry.Slot = Count;
        _entries[Count++] = entry;
    }

    /// <summary>Removes <paramref name="entry"/>; false when it was not here (removed before).</summary>
    public bool Remove(T entry)
    {
        var slot = entry.Slot;
        if ((uint)slot >= (uint)Count || _entries[slot] != entry)
        {
            return false;
        }

        if (_delivering)
        {
            _entries = (T[])_entries.Clone();
        }

        var last = --Count;
        _entries[slot] = _entries[last];
        _entries[slot].Slot = slot;
        _entries[last] = null!;
        entry.Slot = -1;
        if (_entries.Length > 16 && Count < _entries.Length / 4)
        {
            Array.Resize(ref _entries, _entries.Length / 2);
        }

        return true;
    }

    /// <summary>Calls <paramref name="action"/> for each entry there is when it starts (a static lambda: no allocation).</summary>
    public void ForEach<TState>(TState state, Action<T, TState> action)
    {
        var outer = _delivering;
        _delivering = true;
        try
        {
            var entries = _entries;
            var count = Count;
            for (var i = 0; i < count; i++)
            {
                action(entries[i], state);
            }
        }
        finally
        {
            _delivering = outer;
        }
    }
}
