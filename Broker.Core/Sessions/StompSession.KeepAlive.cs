namespace Broker.Sessions;

// Time-driven work: the connect timeout, the send timeout, the durable-session touch and heart-beats.
public sealed partial class StompSession
{
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
        var state = State;
        if (state >= SessionState.Closing)
        {
            return;
        }

        var now = Environment.TickCount64;
        // Until CONNECTED is queued (a resume may wait on the store), only the connect timeout applies.
        if (state == SessionState.Connecting)
        {
            if (now - _startedAt > _options.ConnectTimeout.TotalMilliseconds)
            {
                SendError("limit exceeded: connect-timeout (no CONNECT frame received in time)", null, null, CloseReason.Timeout);
            }

            return;
        }

        var flushStarted = Volatile.Read(ref _flushStartedAt);
        if (flushStarted != 0 && now - flushStarted > _options.SendTimeout.TotalMilliseconds)
        {
            if (BeginClose(CloseReason.SlowConsumer))
            {
                Log.SlowConsumer(_logger, Id, "limit exceeded: send-timeout");
                _transport.Abort();
            }

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
            SendError($"heart-beat timeout: nothing received for {silence} ms (expected every {_receiveHeartbeatMs} ms)", null, null, CloseReason.Timeout);
            return;
        }

        if (_sendHeartbeatMs > 0 && now - _lastWriteAt >= _sendHeartbeatMs - _tickMs && Interlocked.Read(ref _pendingBytes) == 0)
        {
            _lastWriteAt = now;
            Enqueue(Outbound.Heartbeat);
        }
    }
}
