namespace Broker.Routing;

/// <summary>
/// A queue consumer's deliveries awaiting ACK or NACK, oldest first, each with the ack tag it went out with (the
/// in-process <see cref="QueueConsumer"/> and the cluster's <c>ClusterQueueConsumer</c>). Used under the queue's lock.
/// </summary>
internal sealed class UnackedDeliveries<T>
{
    private readonly LinkedList<(ulong Tag, T Entry)> _deliveries = new();
    private ulong _lastTag;

    public int Count => _deliveries.Count;

    /// <summary>
    /// Gives <paramref name="message"/> to <paramref name="sink"/> with the next tag and, unless <paramref name="autoAck"/>,
    /// keeps <paramref name="entry"/> until it is settled; false when the sink refused it.
    /// </summary>
    public bool TryDeliver(IMessageSink sink, BrokerMessage message, T entry, bool autoAck)
    {
        var tag = ++_lastTag;
        if (!sink.TryDeliver(message, tag))
        {
            return false;
        }

        if (!autoAck)
        {
            _deliveries.AddLast((tag, entry));
        }

        return true;
    }

    /// <summary>Removes what an ACK or NACK of <paramref name="tag"/> settles: that delivery and, when <paramref name="multiple"/>, every earlier one. Oldest first.</summary>
    public List<T> Take(ulong tag, bool multiple)
    {
        var taken = new List<T>();
        for (var node = _deliveries.First; node is not null;)
        {
            var next = node.Next;
            if (node.Value.Tag == tag || (multiple && node.Value.Tag < tag))
            {
                _deliveries.Remove(node);
                taken.Add(node.Value.Entry);
            }

            node = next;
        }

        return taken;
    }

    /// <summary>Removes every delivery (the consumer left). Oldest first.</summary>
    public List<T> TakeAll()
    {
        var taken = new List<T>(_deliveries.Count);
        foreach (var (_, entry) in _deliveries)
        {
            taken.Add(entry);
        }

        _deliveries.Clear();
        return taken;
    }
}
