using System.Buffers;
using Broker.Protocol;
using Broker.Routing;

namespace Broker.Sessions;

/// <summary>
/// A subscription of one session, and the sink the broker delivers its messages to. Deliveries go to the
/// session (<see cref="StompSession.Deliver"/>); this holds what is per subscription: names, the ack mode, the
/// pre-serialised start of its MESSAGE frames, and the position written so far (for resume).
/// </summary>
internal sealed class SessionSubscription : IMessageSink
{
    private readonly StompSession _session;
    private readonly bool _ownDestination;
    private string? _epoch;
    private long _offset;
    private IBrokerSubscription? _handle;
    private BrokerMessage? _writtenBeforeHandle;
    private volatile bool _active = true;

    public SessionSubscription(StompSession session, string id, string destination, AckMode ackMode, int prefetch)
    {
        _session = session;
        Id = id;
        Destination = destination;
        AckMode = ackMode;
        Prefetch = prefetch;
        Pending = ackMode == AckMode.Auto ? null : new();
        Route = destination;
        var encoded = new ArrayBufferWriter<byte>(id.Length + 16);
        var writer = new StompFrameWriter(encoded, session.Version).Command(StompCommand.Message);
        writer.Header(StompHeaders.Subscription, id);
        if (Destinations.IsUser(destination))
        {
            // The broker knows this session's own queue; the client sees what it subscribed to.
            Route = UserDestinations.ResolveSubscribe(destination, session.Id);
            writer.Header(StompHeaders.Destination, destination);
            _ownDestination = true;
        }

        HeaderBytes = encoded.WrittenSpan.ToArray();
    }

    public string Id { get; }

    /// <summary>What the client subscribed to (and what the store keeps).</summary>
    public string Destination { get; }

    /// <summary>The destination the broker delivers from: <see cref="Destination"/>, or for a user destination this session's own queue.</summary>
    public string Route { get; }

    public AckMode AckMode { get; }

    public int Prefetch { get; }

    /// <summary>Restored on resume and not yet re-subscribed by the client.</summary>
    public bool Restored { get; set; }

    /// <summary>False once the subscription ended: deliveries are refused, queued ones dropped (or requeued).</summary>
    public bool Active
    {
        get => _active;
        set => _active = value;
    }

    /// <summary>Deliveries awaiting ACK or NACK, oldest first, in the client ack modes (null in auto); guarded by the session's ack gate.</summary>
    public LinkedList<PendingAck>? Pending { get; }

    /// <summary>"MESSAGE\nsubscription:&lt;id&gt;\n", escaped for the session's version: the per-subscriber start of each MESSAGE.</summary>
    public byte[] HeaderBytes { get; }

    /// <summary>The position of the last MESSAGE written, in the stream the broker started this subscription in.</summary>
    public (string? Epoch, long Offset) Written => (_epoch, Volatile.Read(ref _offset));

    public IBrokerSubscription? Handle
    {
        get => Volatile.Read(ref _handle);
        set
        {
            Volatile.Write(ref _handle, value);
            if (value is not null && Interlocked.Exchange(ref _writtenBeforeHandle, null) is { } written)
            {
                value.Written(written);
            }
        }
    }

    public void Start(StreamPosition? after)
    {
        _epoch = after?.Epoch;
        _offset = after?.Offset ?? 0;
    }

    public bool TryDeliver(BrokerMessage message, ulong deliveryTag) => _session.Deliver(this, message, deliveryTag);

    /// <summary>Called by the writer loop when a MESSAGE has been written: the position moves on.</summary>
    public void Delivered(BrokerMessage message)
    {
        if (message.Offset > 0 && message.Epoch == _epoch)
        {
            Volatile.Write(ref _offset, message.Offset);
            if (Handle is { } handle)
            {
                handle.Written(message);
            }
            else
            {
                // Written before the broker's SubscribeAsync returned the handle: kept for the setter to
                // report (the latest is enough, as writes are in order), unless the handle came meanwhile.
                Interlocked.Exchange(ref _writtenBeforeHandle, message);
                if (Handle is { } late && Interlocked.Exchange(ref _writtenBeforeHandle, null) is { } written)
                {
                    late.Written(written);
                }
            }
        }
    }

    /// <summary>The MESSAGE after <see cref="HeaderBytes"/> and the ack header: the message's shared tail, less its destination when this subscription writes its own.</summary>
    public ReadOnlySpan<byte> EncodedTail(BrokerMessage message) =>
        _ownDestination ? message.EncodedTailAfterDestination(_session.Version) : message.EncodedTail(_session.Version);
}
