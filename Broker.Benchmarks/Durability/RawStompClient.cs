using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Broker.Protocol;

namespace Broker.Benchmarks.Durability;

/// <summary>
/// A tight STOMP 1.2 client for measurements: a raw <see cref="TcpClient"/> (Nagle off), the project's
/// <see cref="StompFrameReader"/> over a <see cref="PipeReader"/> and <see cref="StompFrameWriter"/> into
/// one reused buffer. No background loop: the caller reads when it expects something.
/// </summary>
internal sealed class RawStompClient : IAsyncDisposable
{
    private readonly TcpClient _socket;
    private readonly NetworkStream _stream;
    private readonly PipeReader _input;
    private readonly StompFrameReader _reader = new(new StompReaderLimits { MaxFrameSize = 64 * 1024 * 1024 });
    private readonly StompFrame _frame = new();
    private readonly ArrayBufferWriter<byte> _output = new(4096);

    private RawStompClient(TcpClient socket)
    {
        _socket = socket;
        _stream = socket.GetStream();
        _input = PipeReader.Create(_stream, new StreamPipeReaderOptions(bufferSize: 64 * 1024, minimumReadSize: 16 * 1024));
    }

    public static async Task<RawStompClient> OpenAsync(int port, CancellationToken cancellationToken)
    {
        var socket = new TcpClient { NoDelay = true };
        try
        {
            await socket.ConnectAsync(IPAddress.Loopback, port, cancellationToken);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        return new RawStompClient(socket);
    }

    /// <summary>Opens a connection, sends CONNECT (no heart-beats) and returns CONNECTED.</summary>
    public static async Task<(RawStompClient Client, Received Connected)> ConnectAsync(int port, CancellationToken cancellationToken, string? sessionToken = null)
    {
        var client = await OpenAsync(port, cancellationToken);
        try
        {
            await client.SendConnectAsync(sessionToken, cancellationToken);
            var connected = await client.ReceiveAsync(cancellationToken);
            if (connected.Command != StompCommand.Connected)
            {
                throw new InvalidOperationException("CONNECT failed: " + connected);
            }

            return (client, connected);
        }
        catch
        {
            await client.DisposeAsync();
            throw;
        }
    }

    public ValueTask SendConnectAsync(string? sessionToken, CancellationToken cancellationToken)
    {
        var w = Begin(StompCommand.Connect);
        w.Header("accept-version"u8, "1.2");
        w.Header("host"u8, "localhost");
        w.Header("login"u8, "guest");
        w.Header("passcode"u8, "guest");
        w.Header("heart-beat"u8, "0,0");
        if (sessionToken is not null)
        {
            w.Header("session-token"u8, sessionToken);
        }

        w.EndWithoutBody();
        return FlushAsync(cancellationToken);
    }

    public ValueTask SendSubscribeAsync(string id, string destination, string? receipt, CancellationToken cancellationToken)
    {
        WriteSubscribe(id, destination, receipt);
        return FlushAsync(cancellationToken);
    }

    /// <summary>Buffers a SUBSCRIBE; <see cref="FlushAsync"/> sends what was buffered.</summary>
    public void WriteSubscribe(string id, string destination, string? receipt)
    {
        var w = Begin(StompCommand.Subscribe);
        w.Header("id"u8, id);
        w.Header("destination"u8, destination);
        w.Header("ack"u8, "auto");
        if (receipt is not null)
        {
            w.Header("receipt"u8, receipt);
        }

        w.EndWithoutBody();
    }

    public ValueTask SendAsync(string destination, ReadOnlySpan<byte> body, CancellationToken cancellationToken)
    {
        var w = Begin(StompCommand.Send);
        w.Header("destination"u8, destination);
        w.End(body);
        return FlushAsync(cancellationToken);
    }

    public ValueTask SendDisconnectAsync(string receipt, CancellationToken cancellationToken)
    {
        var w = Begin(StompCommand.Disconnect);
        w.Header("receipt"u8, receipt);
        w.EndWithoutBody();
        return FlushAsync(cancellationToken);
    }

    /// <summary>Writes raw bytes (pre-encoded frames) straight to the socket.</summary>
    public ValueTask WriteRawAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken) => _stream.WriteAsync(bytes, cancellationToken);

    public async ValueTask FlushAsync(CancellationToken cancellationToken)
    {
        await _stream.WriteAsync(_output.WrittenMemory, cancellationToken);
        _output.ResetWrittenCount();
    }

    /// <summary>The next frame (heart-beat EOLs skipped).</summary>
    public async ValueTask<Received> ReceiveAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await _input.ReadAsync(cancellationToken);
            var buffer = result.Buffer;
            if (_reader.TryRead(ref buffer, _frame))
            {
                var received = Received.From(_frame);
                _input.AdvanceTo(buffer.Start);
                return received;
            }

            _input.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted)
            {
                throw new IOException("the server closed the connection");
            }
        }
    }

    /// <summary>The next frame, which must be a RECEIPT for <paramref name="receipt"/>.</summary>
    public async ValueTask ExpectReceiptAsync(string receipt, CancellationToken cancellationToken)
    {
        var frame = await ReceiveAsync(cancellationToken);
        if (frame.Command != StompCommand.Receipt || frame.Header("receipt-id") != receipt)
        {
            throw new InvalidOperationException($"expected RECEIPT {receipt}, got {frame}");
        }
    }

    /// <summary>Reads until <paramref name="count"/> MESSAGE frames arrived, without allocating per frame.</summary>
    public async Task<long> CountMessagesAsync(long count, CancellationToken cancellationToken)
    {
        long seen = 0;
        while (seen < count)
        {
            var result = await _input.ReadAsync(cancellationToken);
            var buffer = result.Buffer;
            while (_reader.TryRead(ref buffer, _frame))
            {
                switch (_frame.Command)
                {
                    case StompCommand.Message:
                        seen++;
                        break;
                    case StompCommand.Error:
                        throw new InvalidOperationException("ERROR from the broker: " + _frame.GetString("message"u8));
                }
            }

            _input.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted)
            {
                throw new IOException($"the server closed the connection after {seen} of {count} messages");
            }
        }

        return seen;
    }

    /// <summary>Drops the connection without DISCONNECT: a reset, as a crashed client or lost network looks.</summary>
    public void Abort()
    {
        // Already disposed (a chaos cut may land while the client is reconnecting): nothing left to cut.
        if (_socket.Client is not { } socket)
        {
            return;
        }

        try
        {
            socket.LingerState = new LingerOption(true, 0);
        }
        catch (ObjectDisposedException)
        {
        }

        _socket.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        await _input.CompleteAsync();
        _socket.Dispose();
    }

    private StompFrameWriter Begin(StompCommand command) => new StompFrameWriter(_output, StompVersion.V12).Command(command);

    /// <summary>A frame copied out of the reader's buffers.</summary>
    public sealed record Received(StompCommand Command, KeyValuePair<string, string>[] Headers, string Body)
    {
        public static Received From(StompFrame frame)
        {
            var headers = new KeyValuePair<string, string>[frame.HeaderCount];
            for (var i = 0; i < headers.Length; i++)
            {
                headers[i] = new(Encoding.UTF8.GetString(frame.HeaderName(i)), Encoding.UTF8.GetString(frame.HeaderValue(i)));
            }

            return new Received(frame.Command, headers, Encoding.UTF8.GetString(frame.Body));
        }

        public string? Header(string name)
        {
            foreach (var (key, value) in Headers)
            {
                if (key == name)
                {
                    return value;
                }
            }

            return null;
        }

        public override string ToString() =>
            $"{Command} {string.Join(", ", Headers.Select(h => h.Key + ":" + h.Value))}{(Body.Length > 0 ? " body: " + Body : "")}";
    }
}
