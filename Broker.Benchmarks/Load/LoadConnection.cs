using System.Buffers;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;
using Broker.Protocol;

namespace Broker.Benchmarks.Load;

/// <summary>Where the load tool connects: <c>ws://host:port/path</c> or <c>tcp://host:port</c>.</summary>
internal sealed record LoadTarget(bool WebSocket, string Host, int Port, string Path)
{
    public static LoadTarget Parse(string url)
    {
        var uri = new Uri(url);
        return uri.Scheme switch
        {
            "ws" => new LoadTarget(true, uri.Host, uri.Port, uri.PathAndQuery),
            "tcp" or "stomp" => new LoadTarget(false, uri.Host, uri.Port, ""),
            _ => throw new ArgumentException($"unsupported URL scheme '{uri.Scheme}' (use ws:// or tcp://)"),
        };
    }

    public override string ToString() => WebSocket ? $"ws://{Host}:{Port}{Path}" : $"tcp://{Host}:{Port}";
}

/// <summary>A heart-beat header's two values, in ms (STOMP 1.2 "Heart-beating"): cx (can send), cy (wants to receive).</summary>
internal readonly record struct Heartbeat(int Send, int Receive)
{
    public static Heartbeat Parse(string value)
    {
        var parts = value.Split(',');
        return parts.Length == 2 && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var send) &&
               int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var receive)
            ? new Heartbeat(send, receive)
            : throw new ArgumentException($"a heart-beat is 'cx,cy' in ms (e.g. 10000,10000), not '{value}'");
    }

    /// <summary>How often this side must send, given the other side's header: max(cx, sy), or 0 when either is 0.</summary>
    public int SendInterval(Heartbeat other) => Send == 0 || other.Receive == 0 ? 0 : Math.Max(Send, other.Receive);

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Send},{Receive}");
}

/// <summary>Reacts to the frames one <see cref="LoadConnection.ReadAsync"/> call receives.</summary>
internal abstract class FrameHandler
{
    /// <summary>Handles one frame (valid only during the call); false stops the read loop after this frame.</summary>
    public abstract bool OnFrame(StompFrame frame);

    /// <summary>Called after each chunk of received bytes has been parsed (e.g. to send the ACKs it produced).</summary>
    public virtual ValueTask AfterChunkAsync(LoadConnection connection, CancellationToken cancellationToken) => ValueTask.CompletedTask;
}

/// <summary>
/// One STOMP connection of the load tool, over raw TCP or a WebSocket on a raw socket (the upgrade is
/// written by hand, so a source address can be bound and nothing heavier than the socket is kept).
/// Incoming bytes go into one growable array and are parsed in place with the project's
/// <see cref="StompFrameReader"/>: one receive loop, no per-frame allocation. Outgoing frames are written
/// into <see cref="Output"/> and sent by <see cref="FlushAsync"/>; the owner must not flush concurrently.
/// </summary>
internal sealed class LoadConnection : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly WebSocket? _webSocket;
    private readonly StompFrameReader _reader = new(new StompReaderLimits { MaxFrameSize = 64 * 1024 * 1024 });
    private readonly StompFrame _frame = new();
    private byte[] _input;
    private int _start;
    private int _end;

    private LoadConnection(Socket socket, NetworkStream stream, WebSocket? webSocket, int receiveBufferSize)
    {
        _socket = socket;
        _stream = stream;
        _webSocket = webSocket;
        _input = new byte[receiveBufferSize];
    }

    public ArrayBufferWriter<byte> Output { get; } = new(256);

    public static async Task<LoadConnection> OpenAsync(LoadTarget target, IPAddress? localAddress, int receiveBufferSize, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            if (localAddress is not null)
            {
                socket.Bind(new IPEndPoint(localAddress, 0));
            }

            await socket.ConnectAsync(target.Host, target.Port, cancellationToken);
            var stream = new NetworkStream(socket, ownsSocket: false);
            WebSocket? webSocket = null;
            if (target.WebSocket)
            {
                var subProtocol = await UpgradeAsync(stream, target, cancellationToken);
                webSocket = WebSocket.CreateFromStream(stream, new WebSocketCreationOptions
                {
                    IsServer = false,
                    SubProtocol = subProtocol,
                    KeepAliveInterval = Timeout.InfiniteTimeSpan,
                });
            }

            return new LoadConnection(socket, stream, webSocket, receiveBufferSize);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>The HTTP/1.1 upgrade (RFC 6455 §4.1), offering the STOMP subprotocols; returns the one chosen.</summary>
    private static async Task<string?> UpgradeAsync(NetworkStream stream, LoadTarget target, CancellationToken cancellationToken)
    {
        var key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(16));
        var request = $"GET {target.Path} HTTP/1.1\r\nHost: {target.Host}:{target.Port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
                      $"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v12.stomp, v11.stomp, v10.stomp\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(request), cancellationToken);

        // Read the response head byte by byte up to the blank line: the server sends nothing after
        // the 101 until the client's CONNECT, so there is nothing to over-read, but be exact anyway.
        var head = new List<byte>(256);
        var one = new byte[1];
        while (head.Count < 8192)
        {
            if (await stream.ReadAsync(one, cancellationToken) == 0)
            {
                throw new IOException("the server closed the connection during the WebSocket upgrade");
            }

            head.Add(one[0]);
            var n = head.Count;
            if (n >= 4 && head[n - 4] == '\r' && head[n - 3] == '\n' && head[n - 2] == '\r' && head[n - 1] == '\n')
            {
                break;
            }
        }

        var text = Encoding.ASCII.GetString(head.ToArray());
        var lines = text.Split("\r\n");
        if (!lines[0].StartsWith("HTTP/1.1 101", StringComparison.Ordinal))
        {
            throw new IOException($"WebSocket upgrade refused: {lines[0]}");
        }

        foreach (var line in lines)
        {
            if (line.StartsWith("Sec-WebSocket-Protocol:", StringComparison.OrdinalIgnoreCase))
            {
                return line["Sec-WebSocket-Protocol:".Length..].Trim();
            }
        }

        return null;
    }

    /// <summary>Bytes received so far (in an idle connection: the server's heart-beat EOLs).</summary>
    public long ReceivedBytes { get; private set; }

    /// <summary>
    /// Sends CONNECT with <paramref name="heartbeat"/> (the client's "cx,cy"; default none) and waits
    /// for CONNECTED; throws with the ERROR's message otherwise. Returns how often, in ms, this client
    /// must now send a heart-beat (0: never).
    /// </summary>
    public async Task<int> ConnectStompAsync(string virtualHost, string login, string passcode, Heartbeat heartbeat, CancellationToken cancellationToken)
    {
        var w = new StompFrameWriter(Output, StompVersion.V12).Command(StompCommand.Connect);
        w.Header("accept-version"u8, "1.2");
        w.Header("host"u8, virtualHost);
        w.Header("login"u8, login);
        w.Header("passcode"u8, passcode);
        w.Header("heart-beat"u8, heartbeat.ToString());
        w.EndWithoutBody();
        await FlushAsync(cancellationToken);
        var connected = await ExpectAsync(StompCommand.Connected, cancellationToken);
        return heartbeat.SendInterval(Heartbeat.Parse(connected.HeartBeat ?? "0,0"));
    }

    /// <summary>Sends CONNECT without heart-beats and waits for CONNECTED.</summary>
    public Task<int> ConnectStompAsync(string virtualHost, string login, string passcode, CancellationToken cancellationToken) =>
        ConnectStompAsync(virtualHost, login, passcode, default, cancellationToken);

    /// <summary>Sends one heart-beat (an EOL; over WebSocket, a one-byte text message). Not concurrently with <see cref="FlushAsync"/>.</summary>
    public ValueTask SendHeartbeatAsync(CancellationToken cancellationToken) =>
        _webSocket is not null
            ? _webSocket.SendAsync(Eol, WebSocketMessageType.Text, endOfMessage: true, cancellationToken)
            : _stream.WriteAsync(Eol, cancellationToken);

    private static readonly ReadOnlyMemory<byte> Eol = new byte[] { (byte)'\n' };

    /// <summary>Writes a SUBSCRIBE with a receipt into <see cref="Output"/>.</summary>
    public void WriteSubscribe(string id, string destination, string ack, int prefetch, string? receipt)
    {
        var w = new StompFrameWriter(Output, StompVersion.V12).Command(StompCommand.Subscribe);
        w.Header("id"u8, id);
        w.Header("destination"u8, destination);
        w.Header("ack"u8, ack);
        if (prefetch > 0)
        {
            w.Header("prefetch-count"u8, prefetch);
        }

        if (receipt is not null)
        {
            w.Header("receipt"u8, receipt);
        }

        w.EndWithoutBody();
    }

    /// <summary>Reads frames until one that is not a heart-beat arrives; it must be <paramref name="command"/>.</summary>
    public async Task<ExpectHandler> ExpectAsync(StompCommand command, CancellationToken cancellationToken)
    {
        var expect = new ExpectHandler();
        if (!await ReadAsync(expect, cancellationToken))
        {
            throw new IOException($"the server closed the connection while {command} was expected");
        }

        if (expect.Command != command)
        {
            throw new InvalidOperationException(expect.Command == StompCommand.Error
                ? $"ERROR from the server: {expect.Message}"
                : $"expected {command}, got {expect.Command}");
        }

        return expect;
    }

    public async ValueTask FlushAsync(CancellationToken cancellationToken)
    {
        if (Output.WrittenCount == 0)
        {
            return;
        }

        if (_webSocket is not null)
        {
            await _webSocket.SendAsync(Output.WrittenMemory, WebSocketMessageType.Text, endOfMessage: true, cancellationToken);
        }
        else
        {
            await _stream.WriteAsync(Output.WrittenMemory, cancellationToken);
        }

        Output.ResetWrittenCount();
    }

    /// <summary>
    /// Receives and parses frames, handing each to <paramref name="handler"/>, until it returns false
    /// (true) or the connection ends (false).
    /// </summary>
    public async Task<bool> ReadAsync(FrameHandler handler, CancellationToken cancellationToken)
    {
        while (true)
        {
            // Parse whatever is already buffered first (a previous call may have stopped mid-chunk).
            if (_end > _start)
            {
                var buffer = new ReadOnlySequence<byte>(_input, _start, _end - _start);
                var stop = false;
                while (!stop && _reader.TryRead(ref buffer, _frame))
                {
                    stop = !handler.OnFrame(_frame);
                }

                _start = _end - (int)buffer.Length;
                if (_start == _end)
                {
                    _start = _end = 0;
                }

                await handler.AfterChunkAsync(this, cancellationToken);
                if (stop)
                {
                    return true;
                }
            }

            if (_end == _input.Length)
            {
                if (_start > 0)
                {
                    Buffer.BlockCopy(_input, _start, _input, 0, _end - _start);
                    _end -= _start;
                    _start = 0;
                }
                else
                {
                    Array.Resize(ref _input, _input.Length * 2);
                }
            }

            int received;
            if (_webSocket is not null)
            {
                var result = await _webSocket.ReceiveAsync(_input.AsMemory(_end), cancellationToken);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    return false;
                }

                received = result.Count;
            }
            else
            {
                received = await _socket.ReceiveAsync(_input.AsMemory(_end), SocketFlags.None, cancellationToken);
                if (received == 0)
                {
                    return false;
                }
            }

            _end += received;
            ReceivedBytes += received;
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (_webSocket is not null && _webSocket.State == WebSocketState.Open)
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(1));
                await _webSocket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, timeout.Token);
            }
        }
        catch (Exception e) when (e is IOException or WebSocketException or OperationCanceledException or ObjectDisposedException)
        {
            // The server may already have gone; the socket is closed below either way.
        }

        _webSocket?.Dispose();
        await _stream.DisposeAsync();
        _socket.Dispose();
    }

    /// <summary>Stops at the first frame and remembers its command, ERROR message and heart-beat header.</summary>
    internal sealed class ExpectHandler : FrameHandler
    {
        public StompCommand Command { get; private set; }

        public string? Message { get; private set; }

        public string? HeartBeat { get; private set; }

        public override bool OnFrame(StompFrame frame)
        {
            Command = frame.Command;
            HeartBeat = frame.GetString("heart-beat"u8);
            if (frame.Command == StompCommand.Error)
            {
                Message = frame.GetString("message"u8) ?? Encoding.UTF8.GetString(frame.Body);
            }

            return false;
        }
    }
}
