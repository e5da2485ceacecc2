using System.Buffers;
using System.Buffers.Text;
using Broker.Protocol;
using Broker.Routing;

namespace Broker.Sessions;

// The writer loop: one per connection. Producers (broker threads delivering, the read loop, the keep-alive
// tick) queue Outbound items; the loop writes them in batches and flushes once per batch.
public sealed partial class StompSession
{
    /// <summary>Queues an item for the writer loop; false when the session is closed or the peer is a slow consumer.</summary>
    private bool Enqueue(in Outbound item)
    {
        if (IsSlowConsumer)
        {
            return false;
        }

        // Every frame counts, RECEIPTs included: a client asking for receipts it never reads is a slow consumer too.
        var size = item.Size;
        if (Interlocked.Add(ref _pendingBytes, size) > _options.MaxPendingBytes)
        {
            Interlocked.Add(ref _pendingBytes, -size);
            SlowConsumer("max-pending-bytes", $"limit exceeded: max-pending-bytes ({_options.MaxPendingBytes} bytes queued for this client)");
            return false;
        }

        if (!_outbox.TryWrite(item))
        {
            Interlocked.Add(ref _pendingBytes, -size);
            return false;
        }

        return true;
    }

    /// <summary>Queues an item past the slow-consumer check (the ERROR that closes the session).</summary>
    private void WriteToOutbox(in Outbound item)
    {
        Interlocked.Add(ref _pendingBytes, item.Size);
        if (!_outbox.TryWrite(item))
        {
            Interlocked.Add(ref _pendingBytes, -item.Size);
        }
    }

    private void SlowConsumer(string limit, string reason)
    {
        if (TryClaimClose(CloseReason.SlowConsumer))
        {
            _services.Metrics.LimitExceeded(limit);
            Log.SlowConsumer(_logger, Id, reason);
            CloseWithError("slow consumer: " + reason, null, null);
        }
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
                var frames = false;
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
                        if (IsSlowConsumer || !item.Subscription!.Active)
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
                        frames = true;
                        binary = !message.BodyIsText;
                        _services.Metrics.Delivered(Destinations.IsQueue(message.Destination) ? "queue" : "topic");
                    }
                    else if (item.Bytes is { } bytes)
                    {
                        output.Write(bytes);
                        written += bytes.Length;
                        frames = true;
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
                    // Frames (heart-beats are not) tell the idle compaction that the broker is not idle.
                    if (frames)
                    {
                        _services.Activity.Mark();
                    }

                    WatchFlush();
                    var ok = await _transport.FlushAsync(binary, CancellationToken.None).ConfigureAwait(false);
                    _services.Metrics.BytesSent(written);
                    Volatile.Write(ref _flushStartedAt, 0);
                    Volatile.Write(ref _lastWriteAt, _keepAlive.NowMs());
                    if (!ok)
                    {
                        break;
                    }

                    if (_batch is { Count: > 0 } batch)
                    {
                        foreach (var (subscription, delivered) in batch)
                        {
                            subscription.Delivered(delivered);
                        }

                        batch.Clear();
                    }
                }

                if (close)
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (IsPeerGone(ex) || ex is InvalidOperationException)
        {
            // The peer is gone (InvalidOperationException: a write after the transport completed its output); the read loop ends too.
        }
        finally
        {
            BeginClose(CloseReason.PeerGone);
            _outbox.TryComplete();
            _transport.Input.CancelPendingRead();
        }
    }

    // Only queue messages (they carry no stream offset) go back; a topic message belongs to every
    // subscriber and is never published again.
    private void Requeue(in Outbound item)
    {
        if (item.Subscription!.AckMode == AckMode.Auto && item.Message!.Offset == 0 && !Destinations.IsTopic(item.Message.Destination))
        {
            _ = RequeueAsync(item.Message);
        }
    }

    private async Task RequeueAsync(BrokerMessage message)
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

    // "MESSAGE\nsubscription:<id>\n" [ack:<n>\n] [redelivered:true\n] + the message's shared, once-serialised tail.
    private long WriteMessage(IBufferWriter<byte> output, in Outbound item)
    {
        var subscription = item.Subscription!;
        using var trace = BrokerTelemetry.StartDeliver(item.Message!, subscription.Id);
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

        if (item.Message!.Redeliveries > 0)
        {
            output.Write("redelivered:true\n"u8);
            length += 17;
        }

        if (item.Message!.Offset > 0)
        {
            (_batch ??= []).Add((subscription, item.Message));
        }

        var tail = subscription.EncodedTail(item.Message);
        output.Write(tail);
        return length + tail.Length;
    }
}
