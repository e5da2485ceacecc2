using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using System.Threading.Channels;
using Broker.Protocol;

namespace Broker.Tests;

/// <summary>
/// A minimal STOMP client for tests, over TCP, WebSocket or in-memory pipes, built on the
/// project's own reader and writer. It records what arrives so tests assert what a user sees.
/// </summary>
internal sealed class StompTestClient : IAsyncDisposable
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);

    private readonly Func<ReadOnlyMemory<byte>, Task> _send;
    private readonly Func<Task> _close;
    private readonly Channel<ReceivedFrame> _frames = Channel.CreateUnbounded<ReceivedFrame>();
    private readonly Task _receiveLoop;
    private readonly StompFrameReader _reader = new(new StompReaderLimits { MaxFrameSize = 64 * 1024 * 1024 });
    private int _heartbeats;
    private TaskCompletionSource? _paused;

    private StompTestClient(Func<ReadOnlyMemory<byte>, Task> send, Func<Task> close, Func<StompTestClient, Task> receive)
    {
        _send = send;
        _close = close;
        _receiveLoop = receive(this);
    }

    public StompVersion Version { get; set; } = StompVersion.V12;

    /// <summary>Heart-beat EOLs received so far.</summary>
    public int Heartbeats => Volatile.Read(ref _heartbeats);

    /// <summary>Completed when the server closed the connection.</summary>
    public Task Closed => _receiveLoop;

    public static Task<StompTestClient> ConnectTcpAsync(int port) => ConnectTcpAsync(System.Net.IPAddress.Loopback, port);

    /// <summary>A TCP client whose socket receive buffer is <paramref name="receiveBufferSize"/> bytes (for a slow consumer: see <see cref="PauseReading"/>).</summary>
    public static async Task<StompTestClient> ConnectTcpAsync(int port, int receiveBufferSize)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, ReceiveBufferSize = receiveBufferSize };
        await socket.ConnectAsync(System.Net.IPAddress.Loopback, port);
        return OverStream(new NetworkStream(socket, ownsSocket: true));
    }

    /// <summary>Stops reading the socket (TCP only) after what is already read: the server's writes then back up, as to a slow consumer.</summary>
    public void PauseReading() => Interlocked.CompareExchange(ref _paused, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously), null);

    /// <summary>Reads the socket again after <see cref="PauseReading"/>.</summary>
    public void ResumeReading() => Interlocked.Exchange(ref _paused, null)?.TrySetResult();

    /// <summary>A TCP client to <paramref name="address"/>, optionally from the local address <paramref name="from"/>.</summary>
    public static async Task<StompTestClient> ConnectTcpAsync(System.Net.IPAddress address, int port, System.Net.IPAddress? from = null)
    {
        var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        if (from is not null)
        {
            socket.Bind(new System.Net.IPEndPoint(from, 0));
        }

        await socket.ConnectAsync(address, port);
        return OverStream(new NetworkStream(socket, ownsSocket: true));
    }

    /// <summary>A client over a connected stream (an <see cref="System.Net.Security.SslStream"/>, say); disposing the client disposes it.</summary>
    public static StompTestClient OverStream(Stream stream) =>
        new(async bytes => await stream.WriteAsync(bytes),
            async () => await stream.DisposeAsync(),
            client => client.PumpAsync(PipeReader.Create(stream)));

    public static Task<(StompTestClient Client, string? Subprotocol)> ConnectWebSocketAsync(Uri uri, params string[] subprotocols) =>
        ConnectWebSocketAsync(uri, null, subprotocols);

    /// <summary>A WebSocket client; <paramref name="configure"/> sets request headers, certificate checks and the like.</summary>
    public static async Task<(StompTestClient Client, string? Subprotocol)> ConnectWebSocketAsync(Uri uri, Action<ClientWebSocketOptions>? configure, params string[] subprotocols)
    {
        var socket = new ClientWebSocket();
        foreach (var p in subprotocols)
        {
            socket.Options.AddSubProtocol(p);
        }

        configure?.Invoke(socket.Options);

        await socket.ConnectAsync(uri, CancellationToken.None);
        var client = new StompTestClient(
            // Like stomp.js: a text message when the bytes are UTF-8, binary otherwise.
            async bytes => await socket.SendAsync(bytes, System.Text.Unicode.Utf8.IsValid(bytes.Span) ? WebSocketMessageType.Text : WebSocketMessageType.Binary, true, CancellationToken.None),
            async () =>
            {
                try
                {
                    using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                    await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, cts.Token);
                }
                catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or ObjectDisposedException)
                {
                }

                socket.Dispose();
            },
            client => client.PumpWebSocketAsync(socket));
        return (client, socket.SubProtocol);
    }

    /// <summary>A client over in-memory pipes; the other ends go to the session under test.</summary>
    public static StompTestClient OverPipes(PipeReader fromServer, PipeWriter toServer) =>
        new(async bytes => await toServer.WriteAsync(bytes),
            async () => await toServer.CompleteAsync(),
            client => client.PumpAsync(fromServer));

    public Task SendRawAsync(string text) => _send(Encoding.UTF8.GetBytes(text));

    public Task SendRawAsync(byte[] bytes) => _send(bytes);

    public Task SendFrameAsync(StompCommand command, IEnumerable<(string Name, string Value)> headers, byte[]? body = null)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var writer = new StompFrameWriter(buffer, Version).Command(command);
        foreach (var (name, value) in headers)
        {
            writer.Header(name, value);
        }

        if (body is null)
        {
            writer.EndWithoutBody();
        }
        else
        {
            writer.End(body);
        }

        return _send(buffer.WrittenMemory);
    }

    public Task SendFrameAsync(StompCommand command, params (string Name, string Value)[] headers) => SendFrameAsync(command, headers, null);

    public async Task<ReceivedFrame> ConnectAsync(string acceptVersion = "1.2", string? heartbeat = null, string? login = null, string? passcode = null, string? sessionToken = null)
    {
        var headers = new List<(string, string)> { ("accept-version", acceptVersion), ("host", "localhost") };
        if (sessionToken is not null)
        {
            headers.Add(("session-token", sessionToken));
        }

        if (heartbeat is not null)
        {
            headers.Add(("heart-beat", heartbeat));
        }

        if (login is not null)
        {
            headers.Add(("login", login));
            headers.Add(("passcode", passcode ?? ""));
        }

        await SendFrameAsync(StompCommand.Connect, headers);
        var connected = await ReceiveAsync();
        if (connected.Command == StompCommand.Connected)
        {
            Version = connected["version"] switch { "1.0" => StompVersion.V10, "1.1" => StompVersion.V11, _ => StompVersion.V12 };
            _reader.Version = Version;
        }

        return connected;
    }

    public Task SubscribeAsync(string id, string destination, string ack = "auto", string? receipt = null)
    {
        var headers = new List<(string, string)> { ("id", id), ("destination", destination), ("ack", ack) };
        if (receipt is not null)
        {
            headers.Add(("receipt", receipt));
        }

        return SendFrameAsync(StompCommand.Subscribe, headers);
    }

    /// <summary>Subscribes and waits for the receipt, so the subscription is live when this returns.</summary>
    public async Task SubscribeAndWaitAsync(string id, string destination, string ack = "auto")
    {
        var receipt = "sub-" + id;
        await SubscribeAsync(id, destination, ack, receipt);
        await ExpectReceiptAsync(receipt);
    }

    public Task PublishAsync(string destination, string body, params (string Name, string Value)[] headers) =>
        SendFrameAsync(StompCommand.Send, new[] { ("destination", destination) }.Concat(headers), Encoding.UTF8.GetBytes(body));

    public async Task ExpectReceiptAsync(string receipt)
    {
        var frame = await ReceiveAsync();
        if (frame.Command != StompCommand.Receipt || frame["receipt-id"] != receipt)
        {
            throw new InvalidOperationException($"expected RECEIPT {receipt}, got {frame}");
        }
    }

    /// <summary>The next frame; throws TimeoutException when none arrives in time.</summary>
    public async Task<ReceivedFrame> ReceiveAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? DefaultTimeout);
        try
        {
            return await _frames.Reader.ReadAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException("no frame arrived in time");
        }
        catch (ChannelClosedException)
        {
            throw new InvalidOperationException("connection closed by the server");
        }
    }

    /// <summary>The next frame, or null if none arrives within <paramref name="wait"/> (or the connection closed).</summary>
    public async Task<ReceivedFrame?> TryReceiveAsync(TimeSpan wait)
    {
        using var cts = new CancellationTokenSource(wait);
        try
        {
            return await _frames.Reader.ReadAsync(cts.Token);
        }
        catch (Exception ex) when (ex is OperationCanceledException or ChannelClosedException)
        {
            return null;
        }
    }

    /// <summary>A frame already received, without waiting; null when none is buffered.</summary>
    public ReceivedFrame? TryTake() => _frames.Reader.TryRead(out var frame) ? frame : null;

    /// <summary>Waits until the server closes the connection.</summary>
    public async Task<bool> WaitClosedAsync(TimeSpan? timeout = null)
    {
        var done = await Task.WhenAny(_receiveLoop, Task.Delay(timeout ?? DefaultTimeout));
        return done == _receiveLoop;
    }

    public async ValueTask DisposeAsync()
    {
        await _close();
        await Task.WhenAny(_receiveLoop, Task.Delay(2000));
    }

    private async Task PumpAsync(PipeReader input)
    {
        var frame = new StompFrame();
        try
        {
            while (true)
            {
                if (Volatile.Read(ref _paused) is { } paused)
                {
                    await paused.Task;
                }

                var result = await input.ReadAsync();
                var buffer = result.Buffer;
                CountHeartbeats(buffer);
                while (_reader.TryRead(ref buffer, frame))
                {
                    _frames.Writer.TryWrite(ReceivedFrame.From(frame, false));
                    CountHeartbeats(buffer);
                }

                input.AdvanceTo(buffer.Start, buffer.End);
                if (result.IsCompleted)
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException or SocketException)
        {
        }
        finally
        {
            _frames.Writer.TryComplete();
        }
    }

    // Heart-beats are EOLs where a frame could start; the reader skips them, we count the leading ones.
    private void CountHeartbeats(ReadOnlySequence<byte> buffer)
    {
        var reader = new SequenceReader<byte>(buffer);
        while (reader.TryRead(out var b) && (b == (byte)'\n' || b == (byte)'\r'))
        {
            if (b == (byte)'\n')
            {
                Interlocked.Increment(ref _heartbeats);
            }
        }
    }

    private async Task PumpWebSocketAsync(ClientWebSocket socket)
    {
        var frame = new StompFrame();
        var pending = new ArrayBufferWriter<byte>();
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                var result = await socket.ReceiveAsync(buffer, CancellationToken.None);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    break;
                }

                pending.Write(buffer.AsSpan(0, result.Count));
                if (!result.EndOfMessage)
                {
                    continue;
                }

                var binary = result.MessageType == WebSocketMessageType.Binary;
                var sequence = new ReadOnlySequence<byte>(pending.WrittenMemory);
                CountHeartbeats(sequence);
                while (_reader.TryRead(ref sequence, frame))
                {
                    _frames.Writer.TryWrite(ReceivedFrame.From(frame, binary));
                    CountHeartbeats(sequence);
                }

                var rest = sequence.ToArray();
                pending.ResetWrittenCount();
                pending.Write(rest);
            }
        }
        catch (Exception ex) when (ex is WebSocketException or ObjectDisposedException or OperationCanceledException)
        {
        }
        finally
        {
            _frames.Writer.TryComplete();
        }
    }
}
