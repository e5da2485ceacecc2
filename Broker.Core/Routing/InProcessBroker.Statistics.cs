namespace Broker.Routing;

internal sealed partial class InProcessBroker
{
    /// <summary>Every topic, queue and wildcard pattern held now, with its counts. Takes each destination's lock briefly; not for the message path.</summary>
    internal List<DestinationStatistics> Statistics()
    {
        var result = new List<DestinationStatistics>(_topics.TopicCount + _queues.Count);
        foreach (var topic in _topics.Topics)
        {
            var (subscribers, history, lastOffset) = topic.Statistics();
            result.Add(new DestinationStatistics(Destinations.Topic(topic.Key), "topic", subscribers, History: history, LastOffset: lastOffset));
        }

        foreach (var (name, queue) in _queues)
        {
            var (ready, consumers, unacked) = queue.Statistics();
            result.Add(new DestinationStatistics(name, "queue", consumers, QueueDepth: ready, Unacked: unacked));
        }

        var patterns = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var wildcard in _topics.Wildcards)
        {
            patterns[wildcard.Key] = patterns.GetValueOrDefault(wildcard.Key) + 1;
        }

        foreach (var (pattern, subscribers) in patterns)
        {
            result.Add(new DestinationStatistics(Destinations.Topic(pattern), "wildcard", subscribers));
        }

        return result;
    }
}
