using System.Buffers;
using System.Text.Unicode;
using Broker.Protocol;

namespace Broker.Routing;

/// <summary>
/// A published message, shared by every delivery of it. The MESSAGE frame's shared part
/// (headers other than <c>subscription</c> and <c>ack</c>, the body and the NUL) is serialised
/// once per protocol version on first use, never per subscriber.
/// </summary>
public sealed class BrokerMessage
{
    private byte[]?[]? _encoded;
    private int _bodyIsText; // 0 unknown, 1 text, 2 binary
    private int _outboxHolders;

    public BrokerMessage(string destination, string messageId, IReadOnlyList<KeyValuePair<string, string>> headers, ReadOnlyMemory<byte> body)
    {
        Destination = destination;
        MessageId = messageId;
        Headers = headers;
        Body = body;
    }

    public string Destination { get; }

    public string MessageId { get; }

    /// <summary>Headers the publisher set that travel with the message (content-type and user headers).</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Headers { get; }

    public ReadOnlyMemory<byte> Body { get; }

    /// <summary>The history epoch of the destination the message was published to (topics only).</summary>
    public string? Epoch { get; internal set; }

    /// <summary>The message's offset in its destination's history (topics only; 0 otherwise).</summary>
    public long Offset { get; internal set; }

    /// <summary>
    /// How many times a queue message went back to its queue unacknowledged (a NACK, or its consumer leaving): a
    /// MESSAGE of it after the first carries <c>redelivered:true</c>. Changed only under its queue's lock.
    /// </summary>
    internal int Redeliveries { get; set; }

    /// <summary>The span of the SEND that published it, while tracing is on (see <see cref="BrokerTelemetry"/>).</summary>
    internal System.Diagnostics.ActivityContext TraceContext { get; set; }

    /// <summary>
    /// Counts one more session outbox holding this message; true for the first (which counts the message against the
    /// memory budget, so that a fan-out to N subscribers counts it once, not N times).
    /// </summary>
    internal bool HoldInOutbox() => Interlocked.Increment(ref _outboxHolders) == 1;

    /// <summary>Counts one outbox fewer; true for the last (which gives the message back to the budget).</summary>
    internal bool ReleaseFromOutbox() => Interlocked.Decrement(ref _outboxHolders) == 0;

    /// <summary>True when the body is valid UTF-8, so a WebSocket text message can carry it.</summary>
    public bool BodyIsText
    {
        get
        {
            if (_bodyIsText == 0)
            {
                _bodyIsText = Utf8.IsValid(Body.Span) ? 1 : 2;
            }

            return _bodyIsText == 1;
        }
    }

    /// <summary>
    /// The MESSAGE frame after its per-subscriber headers: <c>destination</c>, <c>message-id</c>,
    /// the publisher's headers, <c>content-length</c>, the blank line, the body and the NUL.
    /// </summary>
    public ReadOnlySpan<byte> EncodedTail(StompVersion version)
    {
        var cache = _encoded ??= new byte[3][];
        var index = version switch { StompVersion.V10 => 0, StompVersion.V11 => 1, _ => 2 };
        var bytes = Volatile.Read(ref cache[index]);
        if (bytes is null)
        {
            bytes = Encode(version);
            Volatile.Write(ref cache[index], bytes);
        }

        return bytes;
    }

    /// <summary>
    /// <see cref="EncodedTail"/> without its first line, the <c>destination</c> header: for a subscriber
    /// that writes its own (a user destination shows the client what it subscribed to). Escaping leaves
    /// no raw LF inside a header value, so the first LF ends that line.
    /// </summary>
    public ReadOnlySpan<byte> EncodedTailAfterDestination(StompVersion version)
    {
        var tail = EncodedTail(version);
        return tail[(tail.IndexOf((byte)'\n') + 1)..];
    }

    private byte[] Encode(StompVersion version)
    {
        var buffer = new ArrayBufferWriter<byte>(Body.Length + 128);
        var writer = new StompFrameWriter(buffer, version);

        // The destination stays the first line: EncodedTailAfterDestination relies on it.
        writer.Header(StompHeaders.Destination, Destination);
        writer.Header(StompHeaders.MessageId, MessageId);
        foreach (var header in Headers)
        {
            writer.Header(header.Key, header.Value);
        }

        writer.End(Body.Span);
        return buffer.WrittenSpan.ToArray();
    }
}
