using System.Collections.Concurrent;

namespace Broker.Cluster;

/// <summary>
/// Control requests this node sent and waits to hear back about, by id (SignalR's Redis <c>AckHandler</c> shape).
/// Bounded by <c>Broker:Cluster:MaxPendingControlRequests</c> (limit <c>cluster-control-pending</c>): past it a
/// request is not sent and its caller falls back at once. Each entry leaves when its reply comes or its wait ends.
/// </summary>
internal sealed class ControlReplies(int limit)
{
    public const string LimitName = "cluster-control-pending";

    private readonly ConcurrentDictionary<long, TaskCompletionSource<ControlMessage>> _pending = new();
    private long _nextId;
    private int _count;

    public int Count => Volatile.Read(ref _count);

    public int Limit { get; } = limit;

    /// <summary>A new entry, or false when <see cref="Limit"/> are pending.</summary>
    public bool TryAdd(out long id, out Task<ControlMessage> reply)
    {
        if (Interlocked.Increment(ref _count) > Limit)
        {
            Interlocked.Decrement(ref _count);
            id = 0;
            reply = Task.FromResult<ControlMessage>(null!);
            return false;
        }

        id = Interlocked.Increment(ref _nextId);
        var source = new TaskCompletionSource<ControlMessage>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[id] = source;
        reply = source.Task;
        return true;
    }

    /// <summary>A reply arrived: its waiter gets it (a reply to a request no longer waited for is dropped).</summary>
    public void Complete(ControlMessage reply)
    {
        if (_pending.TryGetValue(reply.Id, out var source))
        {
            source.TrySetResult(reply);
        }
    }

    public void Remove(long id)
    {
        if (_pending.TryRemove(id, out _))
        {
            Interlocked.Decrement(ref _count);
        }
    }
}
