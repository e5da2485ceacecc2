using Broker.Routing;

namespace Broker.Sessions;

/// <summary>An item for a session's writer loop: a delivery, a serialised frame, a heart-beat, or the close marker.</summary>
internal readonly struct Outbound : IOutboxItem
{
    public static readonly Outbound CloseMarker = default;
    public static readonly Outbound Heartbeat = new(isHeartbeat: true);

    public Outbound(BrokerMessage message, SessionSubscription subscription, long ackId)
    {
        Message = message;
        Subscription = subscription;
        AckId = ackId;
    }

    public Outbound(byte[] bytes) => Bytes = bytes;

    private Outbound(bool isHeartbeat) => IsHeartbeat = isHeartbeat;

    public BrokerMessage? Message { get; }

    public SessionSubscription? Subscription { get; }

    public long AckId { get; }

    public byte[]? Bytes { get; }

    public bool IsHeartbeat { get; }

    public int Size => Message is not null ? Message.Body.Length + 64 : Bytes?.Length ?? 1;
}
