using System.Buffers;
using Broker.Protocol;
using Microsoft.Extensions.Logging;

namespace Broker.Sessions;

/// <summary>
/// One STOMP connection's protocol state machine. A single read loop parses frames and handles
/// them in order; deliveries from the broker are queued to one writer loop (see the Output part).
/// </summary>
public sealed partial class StompSession
{
    private readonly IStompTransport _transport;
    private readonly StompSessionServices _services;
    private readonly StompBrokerOptions _options;
    private readonly ILogger _logger;
    private readonly StompFrameReader _reader;
    private readonly StompFrame _frame = new();
    private readonly long _startedAt = Environment.TickCount64;
    private volatile bool _closing;
    private bool _connected;
    private volatile bool _established;
    private long _lastReadAt = Environment.TickCount64;

    internal StompSession(IStompTransport transport, StompSessionServices services)
    {
        _transport = transport;
        _services = services;
        _options = services.Options;
        _logger = services.Logger;
        _reader = new StompFrameReader(services.ReaderLimits);
        Id = StompSessionServices.NewSessionId();
    }

    /// <summary>The public session id (sent in CONNECTED's <c>session</c> header).</summary>
    public string Id { get; private set; }

    /// <summary>The authenticated principal's name; null before CONNECT or when anonymous.</summary>
    public string? Principal { get; private set; }

    /// <summary>The negotiated protocol version.</summary>
    public StompVersion Version { get; private set; } = StompVersion.V12;

    /// <summary>Runs the session until the peer leaves, the session is closed, or an error ends it.</summary>
    internal async Task RunAsync(CancellationToken cancellationToken)
    {
        _services.Registry.Add(this);
        _services.Metrics.ConnectionOpened();
        var writer = Task.Run(WriteLoopAsync, CancellationToken.None);
        StartTimer();
        using var registration = cancellationToken.Register(static s => ((StompSession)s!).Close("server shutting down"), this);
        try
        {
            await ReadLoopAsync().ConfigureAwait(false);
        }
        catch (StompProtocolException ex)
        {
            SendError(ex.Message, ex.Limit is null ? null : $"The '{ex.Limit}' limit was exceeded.", _currentReceipt);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException or System.Net.WebSockets.WebSocketException or Microsoft.AspNetCore.Connections.ConnectionResetException)
        {
            // The peer went away.
        }
        catch (Exception ex)
        {
            Log.SessionFailed(_logger, ex, Id);
            SendError("internal error", null, _currentReceipt);
        }
        finally
        {
            _closing = true;
            StopTimer();
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
            await _transport.CloseAsync().ConfigureAwait(false);
            _services.Registry.Remove(this);
            _services.Metrics.ConnectionClosed();
            _finished.TrySetResult();
            Log.Closed(_logger, Id);
        }
    }

    /// <summary>Sends ERROR with <paramref name="reason"/> and closes the connection.</summary>
    public void Close(string reason)
    {
        if (_closing)
        {
            return;
        }

        SendError(reason, null, null);
    }

    private async Task ReadLoopAsync()
    {
        var input = _transport.Input;
        while (!_closing)
        {
            var result = await input.ReadAsync().ConfigureAwait(false);
            _lastReadAt = Environment.TickCount64;
            if (result.IsCanceled)
            {
                return;
            }

            var buffer = result.Buffer;
            try
            {
                while (!_closing && _reader.TryRead(ref buffer, _frame))
                {
                    var handled = HandleFrameAsync(_frame);
                    if (!handled.IsCompletedSuccessfully)
                    {
                        await handled.ConfigureAwait(false);
                    }
                }
            }
            finally
            {
                input.AdvanceTo(buffer.Start, buffer.End);
            }

            if (result.IsCompleted)
            {
                if (!buffer.IsEmpty && !_closing)
                {
                    throw new StompProtocolException("connection closed in the middle of a frame");
                }

                return;
            }
        }
    }

    private string? _currentReceipt;

    private ValueTask HandleFrameAsync(StompFrame frame)
    {
        Log.FrameReceived(_logger, Id, frame.Command);
        _currentReceipt = frame.Command is StompCommand.Connect or StompCommand.Stomp ? null : frame.GetString(StompHeaders.Receipt);

        if (!_connected)
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
        if (!_closing)
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
                Disconnect();
                return ValueTask.CompletedTask;
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
        _disconnected = true;
        _closing = true;
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

    // STOMP 1.2 "ERROR": message header, receipt-id when the culprit had a receipt; then close.
    private void SendError(string message, string? detail, string? receiptId)
    {
        if (Interlocked.Exchange(ref _errorSent, 1) != 0)
        {
            return;
        }

        _services.Metrics.Error();
        Log.ProtocolError(_logger, Id, message);
        var body = System.Text.Encoding.UTF8.GetBytes(detail ?? message);
        EnqueueFrame(StompCommand.Error, w =>
        {
            w.Header(StompHeaders.Message, message);
            if (receiptId is not null)
            {
                w.Header(StompHeaders.ReceiptId, receiptId);
            }

            w.Header(StompHeaders.ContentType, "text/plain");
        }, body);
        _closing = true;
        _outbox.TryWrite(Outbound.CloseMarker);
        _transport.Input.CancelPendingRead();
    }

    private int _errorSent;

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

    private void EnqueueFrame(StompCommand command, HeaderWriter headers, byte[]? body)
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

        Enqueue(new Outbound(buffer.WrittenSpan.ToArray()));
    }
}
