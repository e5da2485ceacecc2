using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.WebSockets;
using System.Security.Claims;
using Broker.Sessions;

namespace Broker.Hosting;

/// <summary>
/// A session transport over a WebSocket we own, so each batch of frames goes out as a text message
/// when it is all UTF-8 and as a binary message otherwise (stomp.js drops the connection on a text
/// message that is not UTF-8). Incoming messages, text or binary, are pumped into a pipe: one
/// message may hold several frames, and one frame may span several messages.
/// </summary>
internal sealed class WebSocketTransport : IStompTransport, IDisposable
{
    // What a closing connection reads and drops, at most, waiting for the peer's close frame.
    private const int DrainLimit = 64 * 1024;

    // The pump's read size: what one receive may add to the input at most.
    private const int ReadSize = 4096;

    // The gate's state once the session is CONNECTED or closing: the pump reads freely (up to the pipe's pause).
    private static readonly TaskCompletionSource s_open = Opened();
    private readonly WebSocket _socket;
    private readonly BrokerMetrics? _metrics;

    // Before CONNECTED the pump reads at most this many bytes (max-frame-size-before-connect and one read), then
    // waits at _gate until the session is CONNECTED or closes: a client that has not authenticated can make the
    // server hold no more than that, whatever frame limit applies after CONNECT.
    private readonly long _budgetBeforeConnect;
    private long _readBeforeConnect;

    // Null until the pump waits (an idle or ordinary connection allocates no gate); s_open once opened.
    private TaskCompletionSource? _gate;
    private readonly Pipe _input;
    private readonly PooledBufferWriter _output = new();
    private static readonly Lock PipeOptionsGate = new();
    private static PipeOptions? s_pipeOptions;
    private Task? _pump;
    private volatile bool _draining;
    private volatile bool _peerClosed;

    // Set before we abort the socket ourselves: the pump's resulting exception is then no error.
    // (Aborting the socket, rather than cancelling a token, ends pending operations without keeping a
    // CancellationTokenSource and its callback nodes alive for every idle connection.)
    private volatile bool _aborting;

    public WebSocketTransport(WebSocket socket, StompSessionServices services, EndPoint? remoteEndPoint, ClaimsPrincipal? user)
        : this(socket, services.Options.MaxFrameSize, services.Options.MaxFrameSizeBeforeConnect, services.Metrics, remoteEndPoint, user)
    {
    }

    public WebSocketTransport(WebSocket socket, int maxFrameSize, int maxFrameSizeBeforeConnect, BrokerMetrics? metrics, EndPoint? remoteEndPoint, ClaimsPrincipal? user)
    {
        _socket = socket;
        _metrics = metrics;
        RemoteEndPoint = remoteEndPoint;
        User = user;
        _budgetBeforeConnect = (long)Math.Min(maxFrameSize, maxFrameSizeBeforeConnect) + ReadSize;

        // Once CONNECTED the reader must be able to hold a whole frame before it consumes anything, so the
        // pipe must not pause below the frame limit; the reader enforces the limit itself.
        _input = new Pipe(SharedPipeOptions(maxFrameSize));
    }

    private static TaskCompletionSource Opened()
    {
        var open = new TaskCompletionSource();
        open.SetResult();
        return open;
    }

    // One PipeOptions for every connection (they only differ if the frame limit changes); blocks from the BlockPool.
    private static PipeOptions SharedPipeOptions(int maxFrameSize)
    {
        var pause = (long)maxFrameSize + 64 * 1024;
        lock (PipeOptionsGate)
        {
            if (s_pipeOptions is null || s_pipeOptions.PauseWriterThreshold != pause)
            {
                s_pipeOptions = new PipeOptions(BlockPool.Instance, pauseWriterThreshold: pause, resumeWriterThreshold: pause / 2, minimumSegmentSize: BlockPool.BlockSize, useSynchronizationContext: false);
            }

            return s_pipeOptions;
        }
    }

    public PipeReader Input => _input.Reader;

    public IBufferWriter<byte> Output => _output;

    public EndPoint? RemoteEndPoint { get; }

    public ClaimsPrincipal? User { get; }

    public void Start() => _pump = PumpAsync();

    private async Task PumpAsync()
    {
        var writer = _input.Writer;
        Exception? error = null;
        try
        {
            while (!_draining)
            {
                // Wait for data with a zero-byte read first, so an idle connection holds no receive
                // buffer (the pipe's 4 KiB block is taken only once bytes are there to fill it).
                var ready = await _socket.ReceiveAsync(Memory<byte>.Empty, CancellationToken.None).ConfigureAwait(false);
                if (ready.MessageType == WebSocketMessageType.Close)
                {
                    _peerClosed = true;
                    return;
                }

                var memory = writer.GetMemory(ReadSize);
                if (Volatile.Read(ref _gate) != s_open)
                {
                    // Not CONNECTED yet: read no more than the budget, then wait for the session.
                    var left = _budgetBeforeConnect - _readBeforeConnect;
                    if (left <= 0)
                    {
                        await WaitForSessionAsync().ConfigureAwait(false);
                        continue;
                    }

                    memory = memory[..(int)Math.Min(left, memory.Length)];
                }

                var result = await _socket.ReceiveAsync(memory, CancellationToken.None).ConfigureAwait(false);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    _peerClosed = true;
                    return;
                }

                if (Volatile.Read(ref _gate) != s_open)
                {
                    _readBeforeConnect += result.Count;
                    _metrics?.BytesReadBeforeConnect(result.Count);
                }

                writer.Advance(result.Count);
                await writer.FlushAsync().ConfigureAwait(false);
            }

            // Closing: read and discard until the peer's close frame. Closing a socket with unread
            // input makes the kernel send a reset, which can destroy an ERROR frame still in flight.
            // At most DrainLimit bytes, though: a peer still pushing a large frame (a 2 MiB CONNECT
            // body) is not reading its ERROR anyway, and must not cost the server its whole frame.
            var discard = new byte[4096];
            for (var drained = 0; drained < DrainLimit;)
            {
                var result = await _socket.ReceiveAsync(discard.AsMemory(), CancellationToken.None).ConfigureAwait(false);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    return;
                }

                drained += result.Count;
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException or ObjectDisposedException)
        {
            error = ex is OperationCanceledException || _aborting ? null : ex;
        }
        finally
        {
            await writer.CompleteAsync(error).ConfigureAwait(false);
        }
    }

    // Waits until the session is CONNECTED (Connected) or closing (CloseAsync, Abort) opens the gate.
    private Task WaitForSessionAsync()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        return (Interlocked.CompareExchange(ref _gate, gate, null) ?? gate).Task;
    }

    private void OpenGate() => Interlocked.Exchange(ref _gate, s_open)?.TrySetResult();

    /// <summary>The session is CONNECTED: from now on the pump reads up to the pipe's pause (a whole frame of max-frame-size).</summary>
    public void Connected() => OpenGate();

    public bool BoundsInputBeforeConnect => true;

    public async ValueTask<bool> FlushAsync(bool binary, CancellationToken cancellationToken)
    {
        if (_output.WrittenCount == 0)
        {
            return true;
        }

        // The peer has said goodbye: whatever we send now it will not read, so it does not count as delivered.
        if (_peerClosed)
        {
            _output.Reset();
            return false;
        }

        try
        {
            if (_socket.State != WebSocketState.Open)
            {
                return false;
            }

            await _socket.SendAsync(_output.WrittenMemory, binary ? WebSocketMessageType.Binary : WebSocketMessageType.Text, true, CancellationToken.None).ConfigureAwait(false);
            return true;
        }
        finally
        {
            _output.Reset();
        }
    }

    public async ValueTask CloseAsync()
    {
        _draining = true;
        OpenGate();
        await _input.Reader.CompleteAsync().ConfigureAwait(false);
        var pumpEnded = _pump is null;
        try
        {
            if (_socket.State is WebSocketState.Open or WebSocketState.CloseReceived)
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                await _socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, timeout.Token).ConfigureAwait(false);
            }

            // Give the peer a moment to answer the close handshake, then drop the connection.
            if (_pump is not null)
            {
                await _pump.WaitAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
                pumpEnded = true;
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException or ObjectDisposedException or TimeoutException)
        {
        }

        // Dropping the connection resets it, and a reset throws away what is still on its way out: the ERROR and
        // the close frame, when a peer that keeps sending ends the drain at DrainLimit at once. So only a pump still
        // waiting for the peer is cut off; otherwise the endpoint returns and Kestrel closes after the output.
        if (pumpEnded)
        {
            return;
        }

        _aborting = true;
        _socket.Abort();
        if (_pump is not null)
        {
            try
            {
                await _pump.ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is ObjectDisposedException or InvalidOperationException or WebSocketException or IOException)
            {
            }
        }
    }

    public void Abort()
    {
        _aborting = true;
        OpenGate();
        _socket.Abort();
        _input.Reader.CancelPendingRead();
    }

    public void Dispose() => _output.Dispose();
}
