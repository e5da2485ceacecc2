using System.Buffers.Text;
using System.IO.Pipelines;
using Broker.Protocol;

namespace Broker.Sessions;

public sealed partial class StompSession
{
    // STOMP 1.2 "CONNECT or STOMP Frame", "Protocol Negotiation", "Heart-beating".
    private async ValueTask ConnectAsync(StompFrame frame)
    {
        if (!StompVersions.TryNegotiate(frame.GetString(StompHeaders.AcceptVersion), StompVersion.V12, out var version))
        {
            SendUnsupportedVersion();
            return;
        }

        Version = version;
        _reader.Version = version;

        var (clientSends, clientWants) = ParseHeartbeat(frame);
        var (serverSends, serverWants) = NegotiateHeartbeats(clientSends, clientWants);
        _sendHeartbeatMs = serverSends == 0 || clientWants == 0 ? 0 : Math.Max(serverSends, clientWants);
        _receiveHeartbeatMs = clientSends == 0 || serverWants == 0 ? 0 : Math.Max(clientSends, serverWants);

        var login = frame.GetString(StompHeaders.Login);
        var request = new StompConnectRequest(login, frame.GetString(StompHeaders.Passcode), frame.GetString(StompHeaders.Host), _transport.User, _transport.RemoteEndPoint) { RemoteAddress = _transport.RemoteAddress };
        // Canceled when the session closes meanwhile (a limit, connect-timeout, shutdown), so that no closed connection
        // waits for its authenticator or the login throttle; made only for this wait.
        var closing = new CancellationTokenSource();
        Volatile.Write(ref _connectCanceller, closing);
        if (IsClosing)
        {
            closing.Cancel();
        }

        StompAuthResult result;
        try
        {
            result = await _services.Authenticator.AuthenticateAsync(request, closing.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (closing.IsCancellationRequested)
        {
            return;
        }
        finally
        {
            Volatile.Write(ref _connectCanceller, null);
        }

        if (IsClosing)
        {
            // Refused or timed out while the authenticator ran (the read loop's limit, connect-timeout, shutdown).
            return;
        }

        result = _services.AnonymousAccess.Apply(result, _transport.RemoteEndPoint);
        if (!result.Succeeded)
        {
            Log.AuthenticationFailed(_logger, Id, login, _transport.RemoteEndPoint?.ToString());
            throw new StompProtocolException(result.Failure!);
        }

        Principal = result.Principal;
        await _services.Application.ConnectingAsync(this, frame).ConfigureAwait(false);
        if (IsClosing)
        {
            return;
        }

        // Authenticated: the before-CONNECT frame limit no longer applies.
        _reader.Connected();
        _transport.Connected();
        _services.Authorization.Attach(this, result, _transport.User);
        var (token, resumed, recovered) = await EstablishAsync(frame.GetString("session-token"u8)).ConfigureAwait(false);
        _services.Registry.IndexUser(this);
        EnqueueFrame(StompCommand.Connected, w =>
        {
            w.Header(StompHeaders.Version, version.ToHeaderValue());
            w.Header(StompHeaders.HeartBeat, $"{serverSends},{serverWants}");
            w.Header(StompHeaders.Server, _options.ServerName);
            w.Header(StompHeaders.Session, Id);
            if (Principal is not null)
            {
                w.Header("user-name"u8, Principal);
            }

            if (token is not null)
            {
                w.Header("session-token"u8, token);
                w.Header("resumed"u8, resumed ? "true" : "false");
                w.Header("recovered"u8, recovered ? "true" : "false");
            }
        }, body: null);
        ReleaseHeld();
        Interlocked.CompareExchange(ref _state, (int)SessionState.Connected, (int)SessionState.Connecting);
        // The first visit finds the negotiated heart-beats (and the touch) and files their deadlines.
        _keepAlive.Schedule(this, _keepAlive.NowMs() + _keepAlive.TickMs);
        Log.Connected(_logger, Id, _transport.RemoteEndPoint?.ToString(), Principal ?? "anonymous", version.ToHeaderValue());
        AttachApplication(resumed, recovered);
    }

    // While a CONNECT waits (the authenticator, the login throttle, the session store), the read loop reads on, so
    // what the client sends behind it is neither left to the transport to buffer (Kestrel's TCP pipe takes up to its
    // pause threshold, 1 MiB or more, per connection) nor unbounded: past max-frame-size-before-connect unread bytes,
    // ERROR. Once the session is closing (that ERROR, connect-timeout, shutdown) input is discarded, and the connection
    // is closed as soon as the writer has sent the ERROR, without waiting for the authenticator (whose token the close
    // cancels). Whatever happens, this returns only once the CONNECT is done, so the session is never torn down under
    // a running ConnectAsync. Returns what followed the CONNECT, not yet consumed, for the read loop to parse (with the
    // peer's end of input, if it came); null when the session ends.
    // unread: what the read that brought the CONNECT holds behind it.
    private async Task<ReadResult?> ReadWhileConnectingAsync(Task connecting, PipeReader input, long unread)
    {
        _ = connecting.ContinueWith(static (_, s) => ((StompSession)s!).WakeReader(), this, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        try
        {
            return await ReadUntilConnectedAsync(connecting, input, unread).ConfigureAwait(false);
        }
        catch (Exception) when (!connecting.IsCompleted)
        {
            // The connection failed under the wait (a reset, an abort, a TLS error): close, let the CONNECT finish
            // (its own failure no longer matters), then let the read loop's caller see this exception.
            BeginClose(CloseReason.PeerGone);
            await connecting.ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default).ConfigureAwait(false);
            throw;
        }
    }

    private async Task<ReadResult?> ReadUntilConnectedAsync(Task connecting, PipeReader input, long unread)
    {
        var limit = (long)Math.Min(_options.MaxFrameSize, _options.MaxFrameSizeBeforeConnect);
        if (unread > limit)
        {
            // Queues the ERROR and cancels the next read, so what is already buffered is discarded at once.
            RefuseBehindConnect(unread, limit);
        }

        Task? writerWake = null;
        while (true)
        {
            var result = await input.ReadAsync().ConfigureAwait(false);
            Volatile.Write(ref _lastReadAt, _keepAlive.NowMs());
            if (connecting.IsCompleted && !IsClosing)
            {
                if (result.IsCanceled)
                {
                    WokenByConnect();
                }

                // An authentication failure throws here, and the read loop's caller answers it.
                await connecting.ConfigureAwait(false);
                return result;
            }

            if (IsClosing)
            {
                input.AdvanceTo(result.Buffer.End);
                writerWake ??= _writeLoop!.ContinueWith(static (_, s) => ((PipeReader)s!).CancelPendingRead(), input, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
                if (result.IsCompleted || _writeLoop!.IsCompleted)
                {
                    // Close once the writer has sent the ERROR (or given up on a peer that does not read); the session
                    // is torn down once the CONNECT is done (ConnectAsync stops at its next step, as the session is closing).
                    if (await Task.WhenAny(_writeLoop!, Task.Delay(_options.SendTimeout, CancellationToken.None)).ConfigureAwait(false) != _writeLoop)
                    {
                        _transport.Abort();
                    }

                    await _transport.CloseAsync().ConfigureAwait(false);
                    await connecting.ConfigureAwait(false);
                    return null;
                }

                continue;
            }

            unread = result.Buffer.Length;
            if (unread > limit)
            {
                RefuseBehindConnect(unread, limit);
                input.AdvanceTo(result.Buffer.End);
                continue;
            }

            if (result.IsCompleted)
            {
                // The peer has finished sending (it may still read): the CONNECT finishes, then what it sent behind
                // it is handled as usual, and the end of its input after that.
                await connecting.ConfigureAwait(false);
                if (!IsClosing)
                {
                    return result;
                }

                input.AdvanceTo(result.Buffer.End);
                return null;
            }

            input.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }
    }

    private void RefuseBehindConnect(long unread, long limit)
    {
        _services.Metrics.LimitExceeded(StompReaderLimits.MaxFrameSizeBeforeConnectName);
        SendError($"limit exceeded: {StompReaderLimits.MaxFrameSizeBeforeConnectName} ({unread} bytes sent behind a CONNECT not yet answered > {limit})", null, null);
    }

    // The pending CONNECT is done: wake the read loop's read (a flag first, so it knows the cancel is not a close).
    private void WakeReader()
    {
        Volatile.Write(ref _connectWake, 1);
        _transport.Input.CancelPendingRead();
    }

    // True when a canceled read was the wake of WakeReader, and clears it.
    private bool WokenByConnect() => Interlocked.Exchange(ref _connectWake, 0) == 1 && !IsClosing;

    // STOMP 1.2 "Protocol Negotiation": the ERROR lists the versions this server speaks.
    private void SendUnsupportedVersion()
    {
        if (!BeginClose(CloseReason.Error))
        {
            return;
        }

        _services.Metrics.Error();
        Log.ProtocolError(_logger, Id, "unsupported protocol version");
        EnqueueFrame(StompCommand.Error, w =>
        {
            w.Header(StompHeaders.Version, "1.0,1.1,1.2");
            w.Header(StompHeaders.Message, "unsupported protocol version");
            w.Header(StompHeaders.ContentType, "text/plain");
        }, "Supported protocol versions are 1.0 1.1 1.2"u8.ToArray());
        _outbox.TryWrite(Outbound.CloseMarker);
    }

    // STOMP 1.2 "Heart-beating": CONNECTED's heart-beat is "sx,sy"; server→client runs every max(sx,cy) and
    // client→server every max(cx,sy), each only when both are non-zero. The server honours what the client asks
    // for down to HeartbeatMinimum (sx = cy, sy = cx), so a client wanting a heart-beat every second gets one; a
    // client asking for none or for less than the minimum gets HeartbeatSend / HeartbeatReceive. Either set to 0
    // turns that direction off whatever the client asks.
    private (long ServerSends, long ServerWants) NegotiateHeartbeats(long clientSends, long clientWants)
    {
        var minimum = (long)_options.HeartbeatMinimum.TotalMilliseconds;
        var send = (long)_options.HeartbeatSend.TotalMilliseconds;
        var receive = (long)_options.HeartbeatReceive.TotalMilliseconds;
        return (
            send == 0 ? 0 : clientWants >= minimum ? clientWants : send,
            receive == 0 ? 0 : clientSends >= minimum ? clientSends : receive);
    }

    // heart-beat: "cx,cy" — what the client can send, what it wants to receive. Absent means 0,0.
    private static (long Sends, long Wants) ParseHeartbeat(StompFrame frame)
    {
        if (!frame.TryGetHeader(StompHeaders.HeartBeat, out var value))
        {
            return (0, 0);
        }

        var comma = value.IndexOf((byte)',');
        if (comma < 0 ||
            !Utf8Parser.TryParse(value[..comma].Trim((byte)' '), out long sends, out var a) || a != value[..comma].Trim((byte)' ').Length || sends < 0 ||
            !Utf8Parser.TryParse(value[(comma + 1)..].Trim((byte)' '), out long wants, out var b) || b != value[(comma + 1)..].Trim((byte)' ').Length || wants < 0)
        {
            throw new StompProtocolException("invalid heart-beat header: expected two non-negative integers 'cx,cy'");
        }

        return (sends, wants);
    }
}
