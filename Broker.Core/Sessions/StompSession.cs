using System.Buffers;
using System.IO.Pipelines;
using Broker.Durability;
using Broker.Protocol;
using Broker.Routing;
using Microsoft.Extensions.Logging;

namespace Broker.Sessions;

/// <summary>
/// One STOMP connection's protocol state machine. A single read loop parses frames and handles them in
/// order; deliveries from the broker are queued to one writer loop. This file holds every field and the
/// session's state; each other part is one operation along a message's path: Connect (CONNECT, negotiation),
/// Publish (SEND, routing, pipelining), Subscriptions (SUBSCRIBE, UNSUBSCRIBE, deliveries), Acks (ACK, NACK),
/// Transactions, Resume (durable sessions), KeepAlive (timeouts and heart-beats) and Output (the writer loop).
/// </summary>
public sealed partial class StompSession
{
    // A batch is flushed once it reaches this many bytes, so one slow peer cannot make us buffer without end.
    private const int FlushThreshold = 64 * 1024;

    // A connection that wrote nothing for this long gives its outbox's array back.
    private const long IdleTrimMs = 1000;

    // Replaced, never changed in place (see SetMetadata), so every session can start with the same empty one.
    private static readonly Dictionary<string, string> NoMetadata = new(StringComparer.Ordinal);

    // What _finished is once the session ended before anyone waited for it (see Finished).
    private static readonly TaskCompletionSource s_finished = Completed();

    // What every session shares.
    private readonly IStompTransport _transport;
    private readonly StompSessionServices _services;
    private readonly StompBrokerOptions _options;
    private readonly ILogger _logger;

    // State: a SessionState and, once closing, the CloseReason (both int-backed; read across threads).
    private int _state;
    private int _closeReason;
    private TaskCompletionSource? _finished;

    // Read loop (Connect, Publish, Subscriptions, Acks, Transactions run on it, one frame at a time).
    private readonly StompFrameReader _reader;
    private string? _currentReceipt;

    // 1 while a CancelPendingRead is on its way to wake the read loop because its pending CONNECT finished (Connect part).
    private int _connectWake;

    // Cancels the authenticator's wait when the session closes during it (Connect part); null outside that wait.
    private CancellationTokenSource? _connectCanceller;

    // Keep-alive (KeepAlive part; visited by the KeepAliveMonitor): times in the monitor's milliseconds.
    private readonly KeepAliveMonitor _keepAlive;
    private KeepAliveEntry _keepAliveEntry = KeepAliveEntry.None;
    private readonly long _startedAt;
    private long _lastReadAt;
    private long _sendHeartbeatMs;
    private long _receiveHeartbeatMs;

    // Publish: SENDs handed to the broker without waiting, not yet confirmed.
    private int _unconfirmed;
    private TaskCompletionSource? _confirmedAll;
    private SessionPublisher? _publisher;

    // Subscriptions: owned by the read loop; the gate only lets other threads (snapshots, user routing) read them.
    private readonly Dictionary<string, SessionSubscription> _subscriptions = new(StringComparer.Ordinal);
    private readonly Lock _subscriptionsGate = new();

    // Acks: deliveries awaiting ACK/NACK in the client ack modes, by the ack id sent in MESSAGE (made on the first).
    private readonly Lock _ackGate = new();
    private Dictionary<long, LinkedListNode<PendingAck>>? _pendingAcks;
    private long _lastAckId;

    // Transactions: made on the first BEGIN, as most connections never use one.
    private Dictionary<string, List<TransactionAction>>? _transactions;

    // Resume (durable sessions): persistence is null when they are off.
    private SessionPersistence? _persistence;
    private byte[] _tokenHash = [];
    private DateTimeOffset _createdAt;
    private Dictionary<string, string> _metadata = NoMetadata;
    private long _lastTouchAt;
    private Lock? _holdGate;
    private List<Outbound>? _held;
    private volatile bool _holding;
    private volatile bool _handingOver;
    private SessionRecord? _finalState;

    // Application API (Application part): made once CONNECTED is queued; cancels its handlers when the session closes.
    private Application.SessionApplication? _application;

    // Output: the writer loop, its queue, and the current batch's deliveries (their positions move on once flushed).
    private readonly Outbox<Outbound> _outbox;
    private Task? _writeLoop;
    private List<(SessionSubscription Subscription, BrokerMessage Message)>? _batch;
    private long _pendingBytes;
    private long _lastWriteAt;
    private long _flushStartedAt;

    // FlowControl: what this session holds for its client besides its outbox (read loop only), and flow control.
    // _transactionBytes: what every open transaction holds, bounded by max-transaction-bytes and counted in the budget.
    private long _partialFrameBytes;
    private long _transactionBytes;

    // The frame a read ended in the middle of: the reader resumes decoding into it, so it stays with this session
    // rather than going back to the shared FrameCache, where another session would decode over it (read loop only).
    private StompFrame? _partialFrame;
    private volatile bool _flowControlled;
    private TaskCompletionSource? _closingSignal;

    internal StompSession(IStompTransport transport, StompSessionServices services)
    {
        _transport = transport;
        _services = services;
        _options = services.Options;
        _logger = services.Logger;
        _reader = new StompFrameReader(services.ReaderLimits);
        _keepAlive = services.KeepAlive;
        _outbox = new(services.Memory);
        _startedAt = _lastReadAt = _lastWriteAt = _keepAlive.NowMs();
        Id = StompSessionServices.NewSessionId();
    }

    /// <summary>The public session id (sent in CONNECTED's <c>session</c> header).</summary>
    public string Id { get; private set; }

    /// <summary>The authenticated principal's name; null before CONNECT or when anonymous.</summary>
    public string? Principal { get; private set; }

    /// <summary>The negotiated protocol version.</summary>
    public StompVersion Version { get; private set; } = StompVersion.V12;

    /// <summary>Application data kept with the durable session.</summary>
    public IReadOnlyDictionary<string, string> Metadata => _metadata;

    internal SessionState State => (SessionState)Volatile.Read(ref _state);

    /// <summary>Why the session closed; null while it is open.</summary>
    internal CloseReason? ClosedBecause => Volatile.Read(ref _closeReason) is var reason and not 0 ? (CloseReason)reason : null;

    internal ReadOnlySpan<byte> TokenHash => _tokenHash;

    /// <summary>Where the keep-alive monitor has filed this session (the monitor's, under its lock).</summary>
    internal ref KeepAliveEntry KeepAliveEntry => ref _keepAliveEntry;

    private bool IsClosing => Volatile.Read(ref _state) >= (int)SessionState.Closing;

    // The metrics' transport tag.
    private string TransportKind => _transport is Hosting.WebSocketTransport ? BrokerMetrics.Transports.WebSocket : BrokerMetrics.Transports.Tcp;

    // A slow consumer's backlog is dropped: only its ERROR still goes out.
    private bool IsSlowConsumer => Volatile.Read(ref _closeReason) == (int)CloseReason.SlowConsumer;

    /// <summary>Runs the session until the peer leaves, the session is closed, or an error ends it.</summary>
    internal async Task RunAsync(CancellationToken cancellationToken)
    {
        _services.Registry.Add(this);
        _services.Metrics.ConnectionOpened(TransportKind);
        var writer = _writeLoop = Task.Run(WriteLoopAsync, CancellationToken.None);
        _keepAlive.Schedule(this, _startedAt + (long)_options.ConnectTimeout.TotalMilliseconds);
        using var registration = cancellationToken.Register(static s => ((StompSession)s!).Close(CloseReason.ServerShutdown, "server shutting down"), this);
        try
        {
            await ReadLoopAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (IsPeerGone(ex))
        {
        }
        catch (Exception ex)
        {
            Fail(ex, _currentReceipt);
        }
        finally
        {
            BeginClose(CloseReason.PeerGone);
            _keepAlive.Remove(this);
            _transactions?.Clear();
            _outbox.TryWrite(Outbound.CloseMarker);
            _outbox.TryComplete();
            if (await Task.WhenAny(writer, Task.Delay(_options.SendTimeout, CancellationToken.None)).ConfigureAwait(false) != writer)
            {
                _transport.Abort();
            }

            // After the writer stopped, delivery positions are final: record them, then let go of the subscriptions.
            PersistOnClose();
            ReleaseSubscriptions();
            ReleaseMemory();
            await _transport.CloseAsync().ConfigureAwait(false);
            var reason = ClosedBecause ?? CloseReason.PeerGone;
            Volatile.Write(ref _state, (int)SessionState.Closed);
            _services.Registry.Remove(this);
            _services.Application.Closed(this, reason);
            _services.Metrics.ConnectionClosed(TransportKind, reason);
            Interlocked.CompareExchange(ref _finished, s_finished, null)?.TrySetResult();
            Log.Closed(_logger, Id, reason);
        }
    }

    /// <summary>Sends ERROR with <paramref name="reason"/> and closes the connection.</summary>
    public void Close(string reason) => Close(CloseReason.Application, reason);

    internal void Close(CloseReason reason, string message) => SendError(message, null, null, reason);

    /// <summary>True when <paramref name="exception"/> only says that the peer or its connection went away.</summary>
    internal static bool IsPeerGone(Exception exception) =>
        exception is IOException or OperationCanceledException or ObjectDisposedException or System.Net.WebSockets.WebSocketException;

    private async Task ReadLoopAsync()
    {
        var input = _transport.Input;
        ReadResult? carried = null;
        while (!IsClosing)
        {
            ReadResult result;
            if (carried is { } next)
            {
                // What followed a CONNECT that was authenticated meanwhile (ReadWhileConnectingAsync), not yet parsed.
                result = next;
                carried = null;
            }
            else
            {
                result = await input.ReadAsync().ConfigureAwait(false);
                Volatile.Write(ref _lastReadAt, _keepAlive.NowMs());
                if (result.IsCanceled && !WokenByConnect())
                {
                    return;
                }
            }

            var buffer = result.Buffer;
            var length = buffer.Length;
            var frame = _partialFrame ?? FrameCache.Rent();
            _partialFrame = null;
            Task? connecting = null;
            try
            {
                while (!IsClosing && _reader.TryRead(ref buffer, frame))
                {
                    _services.Activity.Mark();
                    var handled = HandleFrameAsync(frame);
                    if (!handled.IsCompletedSuccessfully)
                    {
                        // A CONNECT waiting for its authenticator or the session store: go on reading meanwhile (below).
                        if (State == SessionState.Connecting && !_transport.BoundsInputBeforeConnect)
                        {
                            connecting = handled.AsTask();
                            break;
                        }

                        await handled.ConfigureAwait(false);
                    }

                    // Flow control (FlowControl part): after a SEND, nothing more is read while memory is short.
                    if (frame.Command == StompCommand.Send && _services.Memory.IsAboveHighWatermark && !await AwaitMemoryAsync().ConfigureAwait(false))
                    {
                        return;
                    }
                }
            }
            finally
            {
                input.AdvanceTo(buffer.Start, buffer.End);
                if (connecting is not null)
                {
                    // The CONNECT frame stays in use until ConnectAsync is done with it; it was read whole.
                }
                else if (_reader.PartialFrameBytes > 0)
                {
                    _partialFrame = frame;
                }
                else
                {
                    FrameCache.Return(frame);
                }

                _services.Metrics.BytesReceived(length - buffer.Length);
                CountPartialFrame();
            }

            if (connecting is not null)
            {
                carried = await ReadWhileConnectingAsync(connecting, input, buffer.Length).ConfigureAwait(false);
                FrameCache.Return(frame);
                if (carried is null)
                {
                    return;
                }

                continue;
            }

            if (result.IsCompleted)
            {
                if (!buffer.IsEmpty && !IsClosing)
                {
                    throw new StompProtocolException("connection closed in the middle of a frame");
                }

                return;
            }
        }
    }

    private ValueTask HandleFrameAsync(StompFrame frame)
    {
        Log.FrameReceived(_logger, Id, frame.Command);
        _currentReceipt = frame.Command is StompCommand.Connect or StompCommand.Stomp ? null : frame.GetString(StompHeaders.Receipt);

        if (State == SessionState.Connecting)
        {
            return frame.Command is StompCommand.Connect or StompCommand.Stomp
                ? ConnectAsync(frame)
                : throw new StompProtocolException($"expected CONNECT, got {Name(frame.Command)}");
        }

        // A RECEIPT confirms every frame before it, and a COMMIT's messages follow the SENDs before it: earlier
        // SENDs still awaiting the broker's confirmation come first.
        if ((_currentReceipt is not null || frame.Command == StompCommand.Commit) && Volatile.Read(ref _unconfirmed) > 0)
        {
            return HandleAfterConfirmationsAsync(frame);
        }

        return HandleConnectedFrameAsync(frame);
    }

    private async ValueTask HandleAfterConfirmationsAsync(StompFrame frame)
    {
        await AwaitConfirmationsAsync().ConfigureAwait(false);
        if (!IsClosing)
        {
            await HandleConnectedFrameAsync(frame).ConfigureAwait(false);
        }
    }

    private ValueTask HandleConnectedFrameAsync(StompFrame frame)
    {
        switch (frame.Command)
        {
            case StompCommand.Send:
                return SendAsync(frame);
            case StompCommand.Subscribe:
                return SubscribeAsync(frame);
            case StompCommand.Unsubscribe:
                Unsubscribe(frame);
                break;
            case StompCommand.Ack:
            case StompCommand.Nack:
                AckOrNack(frame);
                break;
            case StompCommand.Begin:
                Begin(frame);
                break;
            case StompCommand.Commit:
                return CommitAsync(frame);
            case StompCommand.Abort:
                Abort(frame);
                break;
            case StompCommand.Disconnect:
                return DisconnectAsync();
            case StompCommand.Connect:
            case StompCommand.Stomp:
                throw new StompProtocolException("already connected");
            default:
                throw new StompProtocolException($"{Name(frame.Command)} is a server frame; clients must not send it");
        }

        SendReceiptIfRequested();
        return ValueTask.CompletedTask;
    }

    // STOMP 1.2 "DISCONNECT": send the RECEIPT (if asked for), then close.
    private void Disconnect()
    {
        SendReceiptIfRequested();
        BeginClose(CloseReason.Disconnect);
        _outbox.TryWrite(Outbound.CloseMarker);
    }

    // STOMP 1.2 "RECEIPT": also confirms every frame before it, which in-order handling guarantees.
    private void SendReceiptIfRequested()
    {
        if (_currentReceipt is { } receipt)
        {
            EnqueueFrame(StompCommand.Receipt, w => w.Header(StompHeaders.ReceiptId, receipt), body: null);
        }
    }

    /// <summary>Moves the session to Closing and records why; false when it was already closing (the first reason stands).</summary>
    private bool BeginClose(CloseReason reason)
    {
        if (!TryClaimClose(reason))
        {
            return false;
        }

        EnterClosing();
        return true;
    }

    // Records why the session closes; false when another close came first. The caller then queues its last frame,
    // if it has one, and calls EnterClosing.
    private bool TryClaimClose(CloseReason reason) => Interlocked.CompareExchange(ref _closeReason, (int)reason, 0) == 0;

    // For the close this caller claimed: the state says Closing from now on (it only moves forward).
    private void EnterClosing()
    {
        var state = Volatile.Read(ref _state);
        while (state < (int)SessionState.Closing)
        {
            var seen = Interlocked.CompareExchange(ref _state, (int)SessionState.Closing, state);
            if (seen == state)
            {
                break;
            }

            state = seen;
        }

        Volatile.Read(ref _closingSignal)?.TrySetResult();
        if (Volatile.Read(ref _connectCanceller) is { } canceller)
        {
            // Not inline: the authenticator's continuations must not run under whatever called this.
            _ = canceller.CancelAsync();
        }

        Volatile.Read(ref _application)?.Closing();
    }

    // The one place a failure becomes an ERROR: see ErrorReply for what the client is told.
    private void Fail(Exception exception, string? receiptId)
    {
        var reply = ErrorReply.For(exception);
        if (reply.IsInternal)
        {
            Log.SessionFailed(_logger, exception, Id);
        }
        else if (exception.InnerException is { } cause)
        {
            Log.BrokerRefused(_logger, cause, Id, reply.Message);
        }

        if (reply.Limit is { } limit)
        {
            _services.Metrics.LimitExceeded(limit);
        }

        SendError(reply.Message, reply.Detail, receiptId);
    }

    // STOMP 1.2 "ERROR": message header, receipt-id when the culprit had a receipt; then close.
    private void SendError(string message, string? detail, string? receiptId, CloseReason reason = CloseReason.Error)
    {
        if (TryClaimClose(reason))
        {
            CloseWithError(message, detail, receiptId);
        }
    }

    // For the close this caller claimed: queues the ERROR and the close marker behind it, and only then enters
    // Closing. Whoever acts on Closing (a read loop that was busy ends, and RunAsync completes the outbox) so comes
    // after the ERROR: entering Closing first let a shutdown complete the outbox before the ERROR was in it.
    private void CloseWithError(string message, string? detail, string? receiptId)
    {
        _services.Metrics.Error();
        Log.ProtocolError(_logger, Id, message);
        var body = System.Text.Encoding.UTF8.GetBytes(detail ?? message);
        // Past Enqueue's slow-consumer check: the ERROR is what a slow consumer still gets.
        WriteToOutbox(new Outbound(Serialize(StompCommand.Error, w =>
        {
            w.Header(StompHeaders.Message, message);
            if (receiptId is not null)
            {
                w.Header(StompHeaders.ReceiptId, receiptId);
            }

            w.Header(StompHeaders.ContentType, "text/plain");
        }, body)));
        _outbox.TryWrite(Outbound.CloseMarker);
        EnterClosing();
        _transport.Input.CancelPendingRead();
    }

    /// <summary>Completes when the session has ended; made on first use (only a takeover waits for it).</summary>
    internal Task Finished
    {
        get
        {
            var finished = Volatile.Read(ref _finished);
            if (finished is null)
            {
                var made = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                finished = Interlocked.CompareExchange(ref _finished, made, null) ?? made;
            }

            return finished.Task;
        }
    }

    private static TaskCompletionSource Completed()
    {
        var completed = new TaskCompletionSource();
        completed.SetResult();
        return completed;
    }

    private static string Name(StompCommand command) => command.ToString().ToUpperInvariant();

    private static string RequireHeader(StompFrame frame, ReadOnlySpan<byte> name)
    {
        var value = frame.GetString(name);
        if (string.IsNullOrEmpty(value))
        {
            throw new StompProtocolException($"{Name(frame.Command)} requires the '{System.Text.Encoding.UTF8.GetString(name)}' header");
        }

        return value;
    }

    private delegate void HeaderWriter(StompFrameWriter writer);

    private void EnqueueFrame(StompCommand command, HeaderWriter headers, byte[]? body) => Enqueue(new Outbound(Serialize(command, headers, body)));

    private byte[] Serialize(StompCommand command, HeaderWriter headers, byte[]? body)
    {
        var buffer = new ArrayBufferWriter<byte>(128 + (body?.Length ?? 0));
        var writer = new StompFrameWriter(buffer, Version).Command(command);
        headers(writer);
        if (body is null)
        {
            writer.EndWithoutBody();
        }
        else
        {
            writer.End(body);
        }

        return buffer.WrittenSpan.ToArray();
    }
}
