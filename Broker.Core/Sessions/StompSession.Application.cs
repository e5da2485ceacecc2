using Broker.Application;
using Broker.Durability;
using Broker.Protocol;
using Broker.Routing;

namespace Broker.Sessions;

// The application API's way into a session (README "Application API"): SENDs and SUBSCRIBEs to /app/ destinations
// go to handlers (Broker.Application.StompApplication), session events and interceptors, session control. The
// mechanics live in Broker.Application; this part only opens the session to them.
public sealed partial class StompSession
{
    /// <summary>The session's application side, once it is connected (null before).</summary>
    internal SessionApplication? Application => Volatile.Read(ref _application);

    internal StompSessionServices Services => _services;

    /// <summary>The transport's authenticated user (the WebSocket request's), if any.</summary>
    internal System.Security.Claims.ClaimsPrincipal? TransportUser => _transport.User;

    /// <summary>The client's address, if the transport knows it.</summary>
    internal System.Net.IPAddress? RemoteAddress => _transport.RemoteAddress;

    /// <summary>The session holds a token (durable sessions are on), so a drop leaves it resumable.</summary>
    internal bool IsDurable => _persistence is not null && _tokenHash.Length > 0;

    /// <summary>Once closed: its final state was handed to the store as resumable (not ended for good, not taken over).</summary>
    internal bool IsResumableAfterClose => IsDurable && !EndsForGood && !_handingOver && _finalState is not null;

    /// <summary>Once closed: the state last handed to the store.</summary>
    internal SessionRecord? FinalState => _finalState;

    /// <summary>When the session began: its first connection (also for a resumed one), else this connection's start.</summary>
    internal DateTimeOffset CreatedAt =>
        _createdAt != default ? _createdAt : _keepAlive.Time.GetUtcNow() - TimeSpan.FromMilliseconds(_keepAlive.NowMs() - _startedAt);

    // A session that ends for good: its subscriptions and durable record go, as after DISCONNECT.
    private bool EndsForGood => ClosedBecause is CloseReason.Disconnect or CloseReason.Terminated;

    /// <summary>CONNECT was accepted and the connection is not closing: the id and the principal are final.</summary>
    internal bool IsEstablished => State == SessionState.Connected;

    /// <summary>
    /// A copy of what the session is now, for the application and the operator (events, session control, the admin API);
    /// once closed, with the subscriptions it had at the end; the connection's fields only while connected.
    /// </summary>
    internal StompSessionInfo Describe()
    {
        StompSubscriptionInfo[] subscriptions;
        var closed = State == SessionState.Closed;
        if (closed && _finalState is { } final)
        {
            subscriptions = [.. final.Subscriptions.Select(s => new StompSubscriptionInfo(s.Id, s.Destination) { Ack = s.AckMode })];
        }
        else
        {
            lock (_subscriptionsGate)
            {
                subscriptions = [.. _subscriptions.Values.Select(s => new StompSubscriptionInfo(s.Id, s.Destination) { Ack = s.AckMode })];
            }
        }

        var now = _keepAlive.Time.GetUtcNow();
        var ticks = _keepAlive.NowMs();
        var connected = State == SessionState.Connected;
        return new StompSessionInfo(Id, Principal, _services.NodeId, connected, IsDurable, CreatedAt,
            now - TimeSpan.FromMilliseconds(ticks - Volatile.Read(ref _lastReadAt)), subscriptions, _metadata)
        {
            Version = connected ? Version.ToHeaderValue() : null,
            Remote = connected ? _transport.RemoteEndPoint?.ToString() : null,
            ConnectedAt = connected ? now - TimeSpan.FromMilliseconds(ticks - _startedAt) : null,
            PendingBytes = connected ? _outbox.PendingBytes : null,
        };
    }

    /// <summary>
    /// Ends the session for good: the client gets an ERROR with <paramref name="reason"/>, the connection closes, its
    /// subscriptions end and its durable record is deleted, so its token no longer resumes.
    /// </summary>
    internal void Terminate(string reason) => Close(CloseReason.Terminated, reason);

    /// <summary>A RECEIPT for a frame handled off the read loop (an application handler's).</summary>
    internal void SendReceipt(string receiptId) => EnqueueFrame(StompCommand.Receipt, w => w.Header(StompHeaders.ReceiptId, receiptId), body: null);

    // CONNECTED is queued: the application side starts (and sees a close that came meanwhile).
    private void AttachApplication(bool resumed, bool recovered)
    {
        var application = _services.Application.Connected(this, resumed, recovered);
        Volatile.Write(ref _application, application);
        if (IsClosing)
        {
            application.Closing();
        }
    }

    // STOMP 1.2 "DISCONNECT": handlers still running finish first (up to DisconnectDrainTimeout), so their replies and
    // RECEIPTs go out before DISCONNECT's RECEIPT.
    private ValueTask DisconnectAsync()
    {
        if (Application is not { Running: > 0 } application)
        {
            Disconnect();
            return ValueTask.CompletedTask;
        }

        return DrainThenDisconnectAsync(application);
    }

    private async ValueTask DrainThenDisconnectAsync(SessionApplication application)
    {
        await application.WhenIdleAsync(_services.Application.Options.DisconnectDrainTimeout).ConfigureAwait(false);
        if (!IsClosing)
        {
            Disconnect();
        }
    }
}
