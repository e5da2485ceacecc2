namespace Broker.Routing;

/// <summary>One destination as the admin API shows it; a value is null where the broker does not know it.</summary>
/// <param name="Kind"><c>topic</c>, <c>queue</c> or <c>wildcard</c> (a topic pattern only subscribers hold).</param>
/// <param name="Subscribers">Live subscriptions (a queue's consumers).</param>
/// <param name="QueueDepth">A queue's ready messages.</param>
/// <param name="Unacked">A queue's deliveries awaiting an ack.</param>
/// <param name="History">A topic's messages kept for replay.</param>
/// <param name="LastOffset">A topic's messages published so far (its last offset).</param>
internal sealed record DestinationStatistics(string Destination, string Kind, int Subscribers, int? QueueDepth = null, int? Unacked = null, int? History = null, long? LastOffset = null);
