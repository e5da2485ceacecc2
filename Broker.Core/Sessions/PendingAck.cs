using Broker.Routing;

namespace Broker.Sessions;

/// <summary>A delivery in a client ack mode, awaiting ACK or NACK: <paramref name="AckId"/> is the MESSAGE's <c>ack</c> header.</summary>
internal sealed record PendingAck(long AckId, ulong DeliveryTag, BrokerMessage Message, SessionSubscription Subscription);
