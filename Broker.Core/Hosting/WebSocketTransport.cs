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
    private readonly WebSocket _socket;
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

    public WebSocketTransport(WebSocket socket, int maxFrameSize, EndPoint? remoteEndPoint, ClaimsPrincipal? user)
    {
        _socket = socket;
        RemoteEndPoint = remoteEndPoint;
        User = user;

        // The reader must be able to hold a whole frame before it consumes anything, so the pipe
        // must not pause below the frame limit; the reader enforces the limit itself.
        _input = new Pipe(SharedPipeOptions(maxFrameSize));
    }

    // One PipeOptions for every connection (they only differ if the frame limit changes).
    private static PipeOptions SharedPipeOptions(int maxFrameSize)
    {
        var pause = (long)maxFrameSize + 64 * 1024;
        lock (PipeOptionsGate)
        {
            if (s_pipeOptions is null || s_pipeOptions.PauseWriterThreshold != pause)
            {
                s_pipeOptions = new PipeOptions(pauseWriterThreshold: pause, resumeWriterThreshold: pause / 2, useSynchronizationContext: false);
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

                var memory = writer.GetMemory(4096);
                var result = await _socket.ReceiveAsync(memory, CancellationToken.None).ConfigureAwait(false);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    _peerClosed = true;
                    return;
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
        await _input.Reader.CompleteAsync().ConfigureAwait(false);
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
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException or ObjectDisposedException or TimeoutException)
        {
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
        _socket.Abort();
        _input.Reader.CancelPendingRead();
    }

    public void Dispose() => _output.Dispose();
}
