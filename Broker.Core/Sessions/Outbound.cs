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

    // A delivery is counted as its message's body plus a fixed overhead: the message (body and cached
    // encoding, shared by every subscriber it fans out to) and this delivery's own slot and headers.
    private const int SharedOverhead = 32;
    private const int DeliveryOverhead = 32;

    public int Size => Message is not null ? Message.Body.Length + SharedOverhead + DeliveryOverhead : Bytes?.Length ?? 1;

    // The memory budget counts the shared message once, however many outboxes hold it (BrokerMessage.HoldInOutbox).
    public int Hold() => Message is { } message ? DeliveryOverhead + (message.HoldInOutbox() ? message.Body.Length + SharedOverhead : 0) : Size;

    public int Release() => Message is { } message ? DeliveryOverhead + (message.ReleaseFromOutbox() ? message.Body.Length + SharedOverhead : 0) : Size;
}
