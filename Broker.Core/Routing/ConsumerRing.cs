namespace Broker.Routing;

/// <summary>A queue consumer as <see cref="ConsumerRing{T}"/> sees it.</summary>
internal interface IRingConsumer
{
    /// <summary>Whether it can take another message now.</summary>
    bool HasRoom { get; }
}

/// <summary>
/// A queue's competing consumers and the round-robin cursor over them, shared by the in-process
/// <see cref="MessageQueue"/> and the cluster's queue. Not thread-safe: used under the queue's lock.
/// </summary>
internal sealed class ConsumerRing<T>
    where T : class, IRingConsumer
{
    private readonly List<T> _consumers = [];
    private int _next;

    public int Count => _consumers.Count;

    public void Add(T consumer) => _consumers.Add(consumer);

    /// <summary>Takes the consumer out, keeping the cursor on the one that was next; false when it was not here.</summary>
    public bool Remove(T consumer)
    {
        var index = _consumers.IndexOf(consumer);
        if (index < 0)
        {
            return false;
        }

        _consumers.RemoveAt(index);
        if (_next > index)
        {
            _next--;
        }

        return true;
    }

    /// <summary>The next consumer with room, round robin (the cursor moves past it); null when none has room.</summary>
    public T? NextWithRoom()
    {
        for (var i = 0; i < _consumers.Count; i++)
        {
            var candidate = _consumers[(_next + i) % _consumers.Count];
            if (candidate.HasRoom)
            {
                _next = (_next + i + 1) % _consumers.Count;
                return candidate;
            }
        }

        return null;
    }

    /// <summary>What <paramref name="rejecter"/> gave back goes to the consumer after it first, not straight back to it.</summary>
    public void PassOver(T rejecter)
    {
        if (_consumers.Count > 1 && _consumers.IndexOf(rejecter) is var index and >= 0)
        {
            _next = index + 1;
        }
    }

    public List<T>.Enumerator GetEnumerator() => _consumers.GetEnumerator();
}
