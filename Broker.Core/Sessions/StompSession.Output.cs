using System.Buffers;
using System.Buffers.Text;
using Broker.Protocol;
using Microsoft.Extensions.Logging;

namespace Broker.Sessions;

public sealed partial class StompSession
{
    // A batch is flushed once it reaches this many bytes, so one slow peer cannot make us buffer without end.
    private const int FlushThreshold = 64 * 1024;

    private readonly Outbox<Outbound> _outbox = new();

    // The current batch's deliveries: their positions move on only once the batch is flushed.
    private readonly List<(SessionSubscription Subscription, Routing.BrokerMessage Message)> _batch = [];
    private long _pendingBytes;
    private volatile bool _slowConsumer;
    private long _lastWriteAt = Environment.TickCount64;
    private long _flushStartedAt;
    private ITimer? _timer;
    private long _tickMs = 250;

    /// <summary>Queues an item for the writer loop; false when the session is closed or the peer is a slow consumer.</summary>
    private bool Enqueue(in Outbound item)
    {
        if (_slowConsumer)
        {
            return false;
        }

        var size = item.Size;
        if (Interlocked.Add(ref _pendingBytes, size) > _options.MaxPendingBytes && item.Message is not null)
        {
            Interlocked.Add(ref _pendingBytes, -size);
            SlowConsumer($"limit exceeded: max-pending-bytes ({_options.MaxPendingBytes} bytes queued for this client)");
            return false;
        }

        if (!_outbox.TryWrite(item))
        {
            Interlocked.Add(ref _pendingBytes, -size);
            return false;
        }

        return true;
    }

    private void SlowConsumer(string reason)
    {
        if (_slowConsumer)
        {
            return;
        }

        Log.SlowConsumer(_logger, Id, reason);
        SendError("slow consumer: " + reason, null, null);
        _slowConsumer = true;
    }

    private async Task WriteLoopAsync()
    {
        var reader = _outbox;
        var output = _transport.Output;
        Outbound carried = default;
        var hasCarried = false;
        try
        {
            while (hasCarried || await reader.WaitToReadAsync().ConfigureAwait(false))
            {
                var binary = false;
                var written = 0L;
                var close = false;
                while (written < FlushThreshold)
                {
                    Outbound item;
                    if (hasCarried)
                    {
                        item = carried;
                        hasCarried = false;
                    }
                    else if (!reader.TryRead(out item))
                    {
                        break;
                    }
                    else
                    {
                        Interlocked.Add(ref _pendingBytes, -item.Size);
                    }

                    if (item.Message is { } message)
                    {
                        // A slow consumer's backlog is dropped: only its ERROR still goes out. Queue
                        // messages in auto mode were handed over for good, so they go back to the queue.
                        if (_slowConsumer || !item.Subscription!.Active)
                        {
                            Requeue(item);
                            continue;
                        }

                        // One WebSocket message is text or binary as a whole: flush before switching,
                        // so UTF-8 bodies stay in text messages and only the others go binary.
                        if (written > 0 && binary != !message.BodyIsText)
                        {
                            carried = item;
                            hasCarried = true;
                            break;
                        }

                        written += WriteMessage(output, item);
                        binary = !message.BodyIsText;
                        _services.Metrics.Delivered();
                    }
                    else if (item.Bytes is { } bytes)
                    {
                        output.Write(bytes);
                        written += bytes.Length;
                    }
                    else if (item.IsHeartbeat)
                    {
                        StompFrameWriter.WriteHeartbeat(output);
                        written++;
                    }
                    else
                    {
                        close = true;
                        break;
                    }
                }

                if (written > 0)
                {
                    Volatile.Write(ref _flushStartedAt, Environment.TickCount64);
                    var ok = await _transport.FlushAsync(binary, CancellationToken.None).ConfigureAwait(false);
                    Volatile.Write(ref _flushStartedAt, 0);
                    _lastWriteAt = Environment.TickCount64;
                    if (!ok)
                    {
                        break;
                    }

                    foreach (var (subscription, delivered) in _batch)
                    {
                        subscription.Delivered(delivered);
                    }

                    _batch.Clear();
                }

                if (close)
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException or InvalidOperationException or System.Net.WebSockets.WebSocketException)
        {
            // The peer is gone; the read loop ends too.
        }
        finally
        {
            _closing = true;
            _outbox.TryComplete();
            _transport.Input.CancelPendingRead();
        }
    }

    // Only queue messages (they carry no stream offset) go back; a topic message belongs to every
    // subscriber and is never published again.
    private void Requeue(in Outbound item)
    {
        if (item.Subscription!.AckMode == Routing.AckMode.Auto && item.Message!.Offset == 0)
        {
            _ = RequeueAsync(item.Message);
        }
    }

    private async Task RequeueAsync(Routing.BrokerMessage message)
    {
        try
        {
            await _services.Broker.PublishAsync(message).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Log.SessionFailed(_logger, ex, Id);
        }
    }

    // "MESSAGE\nsubscription:<id>\n" [ack:<n>\n] + the message's shared, once-serialised tail.
    private long WriteMessage(System.Buffers.IBufferWriter<byte> output, in Outbound item)
    {
        var subscription = item.Subscription!;
        output.Write(subscription.HeaderBytes);
        var length = (long)subscription.HeaderBytes.Length;
        if (item.AckId != 0 && Version == StompVersion.V12)
        {
            var span = output.GetSpan(32);
            "ack:"u8.CopyTo(span);
            Utf8Formatter.TryFormat(item.AckId, span[4..], out var digits);
            span[4 + digits] = (byte)'\n';
            output.Advance(5 + digits);
            length += 5 + digits;
        }

        if (item.Message!.Offset > 0)
        {
            _batch.Add((subscription, item.Message));
        }

        var tail = subscription.EncodedTail(item.Message);
        output.Write(tail);
        return length + tail.Length;
    }

    private void StartTimer() => _timer = TimeProvider.System.CreateTimer(static s => ((StompSession)s!).OnTimer(), this, TimeSpan.FromMilliseconds(250), TimeSpan.FromMilliseconds(250));

    // After CONNECT the tick follows the negotiated heart-beats (half the shortest interval), bounded for the send-timeout check.
    private void RescheduleTimer()
    {
        var period = (long)Math.Min(_options.SendTimeout.TotalMilliseconds / 2, 5000);
        if (_sendHeartbeatMs > 0)
        {
            period = Math.Min(period, _sendHeartbeatMs / 2);
        }

        if (_receiveHeartbeatMs > 0)
        {
            period = Math.Min(period, _receiveHeartbeatMs / 2);
        }

        period = Math.Max(period, 10);
        _tickMs = period;
        _timer?.Change(TimeSpan.FromMilliseconds(period), TimeSpan.FromMilliseconds(period));
    }

    private void StopTimer() => _timer?.Dispose();

    // A timer callback must never throw: an exception there would take the process down.
    private void OnTimer()
    {
        try
        {
            Tick();
        }
        catch (Exception ex)
        {
            Log.SessionFailed(_logger, ex, Id);
            try
            {
                _transport.Abort();
            }
            catch (ObjectDisposedException)
            {
            }
        }
    }

    private void Tick()
    {
        if (_closing)
        {
            return;
        }

        var now = Environment.TickCount64;
        // Until CONNECTED is queued (a resume may wait on the store), only the connect timeout applies.
        if (!_established)
        {
            if (now - _startedAt > _options.ConnectTimeout.TotalMilliseconds)
            {
                SendError("limit exceeded: connect-timeout (no CONNECT frame received in time)", null, null);
            }

            return;
        }

        var flushStarted = Volatile.Read(ref _flushStartedAt);
        if (flushStarted != 0 && now - flushStarted > _options.SendTimeout.TotalMilliseconds)
        {
            Log.SlowConsumer(_logger, Id, "limit exceeded: send-timeout");
            _slowConsumer = true;
            _closing = true;
            _transport.Abort();
            return;
        }

        TouchIfDue(now);

        // An idle connection gives back the outbox's array (kept between bursts while it is busy).
        if (Interlocked.Read(ref _pendingBytes) == 0 && now - _lastWriteAt > 1000)
        {
            _outbox.TrimIfEmpty();
        }

        // STOMP 1.2 "Heart-beating": allow a margin before declaring the client dead.
        var silence = now - Volatile.Read(ref _lastReadAt);
        if (_receiveHeartbeatMs > 0 && silence > _receiveHeartbeatMs * _options.HeartbeatTolerance)
        {
            Log.HeartbeatTimeout(_logger, Id, _transport.RemoteEndPoint?.ToString(), TimeSpan.FromMilliseconds(silence));
            SendError($"heart-beat timeout: nothing received for {silence} ms (expected every {_receiveHeartbeatMs} ms)", null, null);
            return;
        }

        if (_sendHeartbeatMs > 0 && now - _lastWriteAt >= _sendHeartbeatMs - _tickMs && Interlocked.Read(ref _pendingBytes) == 0)
        {
            _lastWriteAt = now;
            Enqueue(Outbound.Heartbeat);
        }
    }

    /// <summary>An item for the writer loop: a delivery, a serialised frame, a heart-beat, or the close marker.</summary>
    private readonly struct Outbound
    {
        public static readonly Outbound CloseMarker = default;
        public static readonly Outbound Heartbeat = new(isHeartbeat: true);

        public Outbound(Routing.BrokerMessage message, SessionSubscription subscription, long ackId)
        {
            Message = message;
            Subscription = subscription;
            AckId = ackId;
        }

        public Outbound(byte[] bytes) => Bytes = bytes;

        private Outbound(bool isHeartbeat) => IsHeartbeat = isHeartbeat;

        public Routing.BrokerMessage? Message { get; }

        public SessionSubscription? Subscription { get; }

        public long AckId { get; }

        public byte[]? Bytes { get; }

        public bool IsHeartbeat { get; }

        public int Size => Message is not null ? Message.Body.Length + 64 : Bytes?.Length ?? 1;
    }
}
