namespace Broker.Sessions;

// Time-driven work, done when the KeepAliveMonitor visits the session at its next deadline: the connect
// timeout, the send timeout, the durable-session touch, heart-beats in and out. Each visit returns the
// next deadline; reads and writes only stamp times, and a visit that finds a deadline moved files it again.
public sealed partial class StompSession
{
    /// <summary>Called by the monitor when a deadline of this session has come: acts, and returns the next one (or <see cref="KeepAliveMonitor.Never"/>).</summary>
    internal long OnKeepAlive(long now)
    {
        // Runs on the monitor's timer: an exception must not escape (it would take the process down).
        try
        {
            return CheckDeadlines(now);
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

            return KeepAliveMonitor.Never;
        }
    }

    private long CheckDeadlines(long now)
    {
        var state = State;
        if (state >= SessionState.Closing)
        {
            return KeepAliveMonitor.Never;
        }

        // Until CONNECTED is queued (a resume may wait on the store), only the connect timeout applies.
        if (state == SessionState.Connecting)
        {
            var connectDeadline = _startedAt + (long)_options.ConnectTimeout.TotalMilliseconds;
            if (now < connectDeadline)
            {
                return connectDeadline;
            }

            SendError("limit exceeded: connect-timeout (no CONNECT frame received in time)", null, null, CloseReason.Timeout);
            return KeepAliveMonitor.Never;
        }

        var next = KeepAliveMonitor.Never;
        var flushStarted = Volatile.Read(ref _flushStartedAt);
        if (flushStarted != 0)
        {
            var sendDeadline = flushStarted + (long)_options.SendTimeout.TotalMilliseconds;
            if (now >= sendDeadline)
            {
                if (BeginClose(CloseReason.SlowConsumer))
                {
                    _services.Metrics.LimitExceeded("send-timeout");
                    Log.SlowConsumer(_logger, Id, "limit exceeded: send-timeout");
                    _transport.Abort();
                }

                return KeepAliveMonitor.Never;
            }

            next = sendDeadline;
        }

        if (_persistence is not null)
        {
            next = Math.Min(next, TouchIfDue(now));
        }

        var idle = Interlocked.Read(ref _pendingBytes) == 0;
        var lastWrite = Volatile.Read(ref _lastWriteAt);

        // An idle connection gives back the outbox's array (kept between bursts while it is busy).
        if (_outbox.HoldsArray)
        {
            if (idle && now - lastWrite >= IdleTrimMs)
            {
                _outbox.TrimIfEmpty();
            }
            else
            {
                next = Math.Min(next, (idle ? lastWrite : now) + IdleTrimMs);
            }
        }

        // STOMP 1.2 "Heart-beating": allow a margin (HeartbeatTolerance intervals) before declaring the client dead.
        if (_receiveHeartbeatMs > 0)
        {
            // A flow-controlled publisher is not read from, so its silence says nothing (FlowControl part).
            var silence = _flowControlled ? 0 : now - Volatile.Read(ref _lastReadAt);
            var allowed = (long)(_receiveHeartbeatMs * _options.HeartbeatTolerance);
            if (silence > allowed)
            {
                Log.HeartbeatTimeout(_logger, Id, _transport.RemoteEndPoint?.ToString(), TimeSpan.FromMilliseconds(silence));
                SendError($"heart-beat timeout: nothing received for {silence} ms (expected every {_receiveHeartbeatMs} ms)", null, null, CloseReason.Timeout);
                return KeepAliveMonitor.Never;
            }

            next = Math.Min(next, now - silence + allowed + 1);
        }

        // A heart-beat is due when nothing was written for an interval; sent up to a tick early, never late.
        if (_sendHeartbeatMs > 0)
        {
            var due = lastWrite + _sendHeartbeatMs - _keepAlive.TickMs;
            if (now >= due)
            {
                if (idle)
                {
                    Volatile.Write(ref _lastWriteAt, now);
                    Enqueue(Outbound.Heartbeat);
                    due = now + _sendHeartbeatMs - _keepAlive.TickMs;
                }
                else
                {
                    due = now + _keepAlive.TickMs; // output is under way: it serves as the heart-beat
                }
            }

            next = Math.Min(next, due);
        }

        return next;
    }

    // A flush needs a visit: for the send timeout while it is under way, and to trim the outbox once the
    // connection is idle again. Filed only when no visit is due sooner, so a busy connection files one a second.
    private void WatchFlush()
    {
        var started = _keepAlive.NowMs();
        Volatile.Write(ref _flushStartedAt, started);
        var visit = started + Math.Min((long)_options.SendTimeout.TotalMilliseconds, IdleTrimMs);
        if (Volatile.Read(ref _keepAliveEntry.Due) > visit)
        {
            _keepAlive.Schedule(this, visit);
        }
    }
}
