using System.Buffers;
using System.Buffers.Text;
using Broker.Protocol;
using Broker.Routing;

namespace Broker.Sessions;

public sealed partial class StompSession
{
    // Owned by the read loop; the gate only lets other threads (SetMetadata's snapshot) read it safely.
    private readonly Dictionary<string, SessionSubscription> _subscriptions = new(StringComparer.Ordinal);
    private readonly Lock _subscriptionsGate = new();
    private readonly Lock _ackGate = new();
    private readonly Dictionary<long, LinkedListNode<PendingAck>> _pendingAcks = [];
    private long _lastAckId;

    // STOMP 1.2 "SEND": destination required; user headers travel to MESSAGE.
    private ValueTask SendAsync(StompFrame frame)
    {
        var destination = RequireHeader(frame, StompHeaders.Destination);
        if (ValidateSendDestination(destination) is { } problem)
        {
            throw new StompProtocolException(problem);
        }

        var message = new BrokerMessage(destination, _services.NextMessageId(), UserHeaders(frame), frame.Body.ToArray());
        if (frame.GetString(StompHeaders.Transaction) is { } transaction)
        {
            AddToTransaction(transaction, new TransactionAction(message, null, false));
            SendReceiptIfRequested();
            return ValueTask.CompletedTask;
        }

        if (_currentReceipt is null && !UserDestinations.IsUserDestination(message.Destination))
        {
            return PublishPipelined(message);
        }

        // Published another way (awaited, maybe on another channel): after the pipelined ones, to keep the order.
        if (Volatile.Read(ref _unconfirmed) > 0)
        {
            return AwaitConfirmationsThenPublish(message);
        }

        var publish = RouteAsync(message);
        if (publish.IsCompletedSuccessfully)
        {
            SendReceiptIfRequested();
            return ValueTask.CompletedTask;
        }

        return AwaitPublishThenReceipt(publish);
    }

    private async ValueTask AwaitConfirmationsThenPublish(BrokerMessage message)
    {
        await AwaitConfirmationsAsync().ConfigureAwait(false);
        if (!_closing)
        {
            await RouteAsync(message).ConfigureAwait(false);
            SendReceiptIfRequested();
        }
    }

    private async ValueTask AwaitPublishThenReceipt(ValueTask publish)
    {
        await publish.ConfigureAwait(false);
        SendReceiptIfRequested();
    }

    private static List<KeyValuePair<string, string>> UserHeaders(StompFrame frame)
    {
        var headers = new List<KeyValuePair<string, string>>(frame.HeaderCount);
        for (var i = 0; i < frame.HeaderCount; i++)
        {
            var name = frame.HeaderName(i);
            if (IsReservedHeader(name))
            {
                continue;
            }

            // STOMP 1.2 "Repeated Header Entries": repeats travel in order (the first is the value).
            headers.Add(new(System.Text.Encoding.UTF8.GetString(name), System.Text.Encoding.UTF8.GetString(frame.HeaderValue(i))));
        }

        return headers;
    }

    // Headers the broker sets or that belong to the SEND itself, never copied from SEND to MESSAGE.
    private static bool IsReservedHeader(ReadOnlySpan<byte> name) =>
        name.SequenceEqual(StompHeaders.Destination) || name.SequenceEqual(StompHeaders.ContentLength) ||
        name.SequenceEqual(StompHeaders.Receipt) || name.SequenceEqual(StompHeaders.Transaction) ||
        name.SequenceEqual(StompHeaders.MessageId) || name.SequenceEqual(StompHeaders.Subscription) ||
        name.SequenceEqual(StompHeaders.Ack) || name.SequenceEqual("redelivered"u8);

    // STOMP 1.2 "SUBSCRIBE": id unique per connection; ack auto | client | client-individual.
    private async ValueTask SubscribeAsync(StompFrame frame)
    {
        var destination = RequireHeader(frame, StompHeaders.Destination);
        var id = Version == StompVersion.V10 ? frame.GetString(StompHeaders.Id) ?? destination : RequireHeader(frame, StompHeaders.Id);
        var ackMode = (frame.GetString(StompHeaders.Ack) ?? "auto") switch
        {
            "auto" => AckMode.Auto,
            "client" => AckMode.Client,
            "client-individual" => AckMode.ClientIndividual,
            var other => throw new StompProtocolException($"invalid ack mode '{other}': use auto, client or client-individual"),
        };
        var prefetch = _options.DefaultPrefetch;
        if (frame.TryGetHeader("prefetch-count"u8, out var prefetchText) &&
            (!Utf8Parser.TryParse(prefetchText, out prefetch, out var used) || used != prefetchText.Length || prefetch < 0))
        {
            throw new StompProtocolException("invalid prefetch-count header");
        }

        if (_subscriptions.TryGetValue(id, out var existing))
        {
            if (!existing.Restored)
            {
                throw new StompProtocolException($"subscription id '{id}' is already in use on this connection");
            }

            // A resumed client re-sending SUBSCRIBE (stomp.js apps do, in onConnect) attaches to the
            // restored subscription: no second subscription, no duplicate message.
            existing.Restored = false;
            if (existing.Destination == destination && existing.AckMode == ackMode)
            {
                SendReceiptIfRequested();
                return;
            }

            lock (_subscriptionsGate)
            {
                _subscriptions.Remove(id);
            }

            Release(existing, end: true);
        }

        if (_subscriptions.Count >= _options.MaxSubscriptionsPerConnection)
        {
            throw StompProtocolException.LimitExceeded("max-subscriptions", _subscriptions.Count + 1, _options.MaxSubscriptionsPerConnection);
        }

        if (ValidateSubscribeDestination(destination) is { } problem)
        {
            throw new StompProtocolException(problem);
        }

        var subscription = new SessionSubscription(this, id, destination, ackMode, prefetch);
        lock (_subscriptionsGate)
        {
            _subscriptions.Add(id, subscription);
        }

        subscription.Handle = await _services.Broker.SubscribeAsync(new SubscriptionRequest(Id, id, subscription.Route, ackMode, prefetch, Durable: _persistence is not null), subscription).ConfigureAwait(false);
        SaveSnapshot();
        SendReceiptIfRequested();
    }

    // STOMP 1.2 "UNSUBSCRIBE".
    private void Unsubscribe(StompFrame frame)
    {
        var id = Version == StompVersion.V10 ? frame.GetString(StompHeaders.Id) ?? RequireHeader(frame, StompHeaders.Destination) : RequireHeader(frame, StompHeaders.Id);
        SessionSubscription? subscription;
        lock (_subscriptionsGate)
        {
            _subscriptions.Remove(id, out subscription);
        }

        if (subscription is null)
        {
            throw new StompProtocolException($"no subscription with id '{id}'");
        }

        Release(subscription, end: true);
        SaveSnapshot();
    }

    private void ReleaseSubscriptions()
    {
        foreach (var subscription in _subscriptions.Values)
        {
            // DISCONNECT ends the session for good; a dropped connection leaves it resumable.
            Release(subscription, end: _disconnected);
        }

        lock (_subscriptionsGate)
        {
            _subscriptions.Clear();
        }
    }

    // Unacknowledged queue messages go back to the queue for other consumers.
    private void Release(SessionSubscription subscription, bool end)
    {
        subscription.Active = false;
        lock (_ackGate)
        {
            foreach (var pending in subscription.Pending)
            {
                _pendingAcks.Remove(pending.AckId);
            }

            subscription.Pending.Clear();
        }

        if (end)
        {
            subscription.Handle?.Unsubscribe();
        }
        else
        {
            subscription.Handle?.Dispose();
        }
    }

    // STOMP 1.2 "ACK"/"NACK": 1.2 names the MESSAGE's ack header in id; 1.1 and 1.0 name message-id (+ subscription in 1.1).
    private void AckOrNack(StompFrame frame)
    {
        var nack = frame.Command == StompCommand.Nack;
        if (nack && Version == StompVersion.V10)
        {
            throw new StompProtocolException("NACK is not part of STOMP 1.0");
        }

        var target = ResolveAck(frame);
        if (frame.GetString(StompHeaders.Transaction) is { } transaction)
        {
            AddToTransaction(transaction, new TransactionAction(null, target, nack));
            return;
        }

        Settle(target, nack);
    }

    private PendingAck ResolveAck(StompFrame frame)
    {
        lock (_ackGate)
        {
            if (Version == StompVersion.V12)
            {
                var id = RequireHeader(frame, StompHeaders.Id);
                if (long.TryParse(id, System.Globalization.NumberStyles.None, null, out var ackId) && _pendingAcks.TryGetValue(ackId, out var node))
                {
                    return node.Value;
                }

                throw new StompProtocolException($"{Name(frame.Command)} for unknown or already acknowledged message '{id}'");
            }

            var messageId = RequireHeader(frame, StompHeaders.MessageId);
            var subscriptionId = Version == StompVersion.V11 ? RequireHeader(frame, StompHeaders.Subscription) : frame.GetString(StompHeaders.Subscription);
            foreach (var subscription in _subscriptions.Values)
            {
                if (subscriptionId is not null && subscription.Id != subscriptionId)
                {
                    continue;
                }

                foreach (var pending in subscription.Pending)
                {
                    if (pending.Message.MessageId == messageId)
                    {
                        return pending;
                    }
                }
            }

            throw new StompProtocolException($"{Name(frame.Command)} for unknown or already acknowledged message '{messageId}'");
        }
    }

    // client mode settles this and every earlier delivery of the subscription; client-individual only this one.
    private void Settle(PendingAck target, bool nack)
    {
        var subscription = target.Subscription;
        var multiple = subscription.AckMode == AckMode.Client;
        lock (_ackGate)
        {
            if (!_pendingAcks.TryGetValue(target.AckId, out var node))
            {
                throw new StompProtocolException("message already acknowledged");
            }

            if (multiple)
            {
                while (subscription.Pending.First is { } first && first.Value.AckId <= target.AckId)
                {
                    subscription.Pending.RemoveFirst();
                    _pendingAcks.Remove(first.Value.AckId);
                }
            }
            else
            {
                subscription.Pending.Remove(node);
                _pendingAcks.Remove(target.AckId);
            }
        }

        // Outside _ackGate: the broker may deliver (and so take _ackGate) from inside these calls.
        if (nack)
        {
            subscription.Handle?.Nack(target.DeliveryTag, multiple);
        }
        else
        {
            subscription.Handle?.Ack(target.DeliveryTag, multiple);
        }
    }

    private sealed record PendingAck(long AckId, ulong DeliveryTag, BrokerMessage Message, SessionSubscription Subscription);

    /// <summary>A subscription of this session, and the sink the broker delivers its messages to.</summary>
    private sealed class SessionSubscription : IMessageSink
    {
        private readonly StompSession _session;

        private readonly bool _ownDestination;
        private string? _epoch;
        private long _offset;

        public SessionSubscription(StompSession session, string id, string destination, AckMode ackMode, int prefetch)
        {
            _session = session;
            Id = id;
            Destination = destination;
            AckMode = ackMode;
            Prefetch = prefetch;
            Route = destination;
            var encoded = new ArrayBufferWriter<byte>(id.Length + 16);
            var writer = new StompFrameWriter(encoded, session.Version).Command(StompCommand.Message);
            writer.Header(StompHeaders.Subscription, id);
            if (UserDestinations.IsUserDestination(destination))
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

        public void Start(StreamPosition? position)
        {
            _epoch = position?.Epoch;
            _offset = position?.Offset ?? 0;
        }

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

        /// <summary>
        /// Where a resumed subscription continues: after the last message written, or, in the client
        /// ack modes, before the oldest unacknowledged one so it is delivered again.
        /// </summary>
        public (string? Epoch, long Position) ResumePosition()
        {
            var position = Volatile.Read(ref _offset);
            if (AckMode != AckMode.Auto)
            {
                lock (_session._ackGate)
                {
                    foreach (var pending in Pending)
                    {
                        if (pending.Message.Offset > 0 && pending.Message.Epoch == _epoch)
                        {
                            position = Math.Min(position, pending.Message.Offset - 1);
                        }
                    }
                }
            }

            return (_epoch, position);
        }

        /// <summary>The MESSAGE after <see cref="HeaderBytes"/> and the ack header: the message's shared tail, less its destination when this subscription writes its own.</summary>
        public ReadOnlySpan<byte> EncodedTail(BrokerMessage message) =>
            _ownDestination ? message.EncodedTailAfterDestination(_session.Version) : message.EncodedTail(_session.Version);

        /// <summary>"MESSAGE\nsubscription:&lt;id&gt;\n", escaped for the session's version: the per-subscriber start of each MESSAGE.</summary>
        public byte[] HeaderBytes { get; }

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

        private IBrokerSubscription? _handle;
        private BrokerMessage? _writtenBeforeHandle;

        public volatile bool Active = true;

        public LinkedList<PendingAck> Pending { get; } = new();

        public bool TryDeliver(BrokerMessage message, ulong deliveryTag)
        {
            if (!Active || _session._closing)
            {
                return false;
            }

            long ackId = 0;
            if (AckMode != AckMode.Auto)
            {
                lock (_session._ackGate)
                {
                    if (!Active)
                    {
                        return false;
                    }

                    if (Pending.Count >= _session._options.MaxUnackedPerSubscription)
                    {
                        _session.SlowConsumer($"limit exceeded: max-unacked ({Pending.Count} messages of subscription '{Id}' not acknowledged)");
                        return false;
                    }

                    ackId = ++_session._lastAckId;
                    _session._pendingAcks[ackId] = Pending.AddLast(new PendingAck(ackId, deliveryTag, message, this));
                }
            }

            return _session.HoldOrEnqueue(new Outbound(message, this, ackId));
        }
    }
}
