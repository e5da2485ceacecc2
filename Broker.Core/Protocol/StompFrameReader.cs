using System.Buffers;
using System.Buffers.Text;

namespace Broker.Protocol;

/// <summary>
/// An incremental, synchronous STOMP 1.0–1.2 frame reader. It does no I/O: feed it whatever the
/// transport has buffered and it takes one frame at a time off the front.
/// </summary>
/// <remarks>
/// Usage in a read loop:
/// <code>
/// var buffer = result.Buffer;
/// try { while (reader.TryRead(ref buffer, frame)) Handle(frame); }
/// finally { input.AdvanceTo(buffer.Start, buffer.End); }
/// </code>
/// On a partial frame <paramref name="buffer"/> keeps the partial frame, so examining up to
/// <c>buffer.End</c> makes the loop wait for more data instead of spinning.
/// </remarks>
public sealed class StompFrameReader
{
    private readonly StompReaderLimits _limits;

    public StompFrameReader(StompReaderLimits? limits = null) => _limits = limits ?? StompReaderLimits.Default;

    /// <summary>The version whose header escaping applies to frames other than CONNECT/CONNECTED.</summary>
    public StompVersion Version { get; set; } = StompVersion.V12;

    /// <summary>
    /// Reads the next frame. Heart-beat EOLs before it are consumed. Returns false when no whole
    /// frame is buffered; throws <see cref="StompProtocolException"/> on malformed input or a limit.
    /// </summary>
    public bool TryRead(ref ReadOnlySequence<byte> buffer, StompFrame frame)
    {
        var reader = new SequenceReader<byte>(buffer);

        // STOMP 1.2 "Heart-beating": EOLs between frames are heart-beats.
        while (reader.TryPeek(out var b) && (b == (byte)'\n' || b == (byte)'\r'))
        {
            if (b == (byte)'\r')
            {
                if (!reader.TryPeek(1, out var next))
                {
                    break;
                }

                if (next != (byte)'\n')
                {
                    throw new StompProtocolException("malformed frame: CR not followed by LF");
                }

                reader.Advance(1);
            }

            reader.Advance(1);
        }

        buffer = buffer.Slice(reader.Position);
        if (reader.End)
        {
            return false;
        }

        reader = new SequenceReader<byte>(buffer);
        frame.Reset();

        if (!TryReadLine(ref reader, out var commandLine))
        {
            return Incomplete(buffer);
        }

        frame.Command = ParseCommand(commandLine);
        var escaped = StompCommands.IsEscaped(frame.Command, Version);

        while (true)
        {
            if (!TryReadLine(ref reader, out var line))
            {
                return Incomplete(buffer);
            }

            var lineLength = (int)line.Length;
            if (lineLength == 0)
            {
                break;
            }

            if (frame.HeaderCount == _limits.MaxHeaders)
            {
                throw StompProtocolException.LimitExceeded("max-headers", frame.HeaderCount + 1, _limits.MaxHeaders);
            }

            AddHeader(frame, line, lineLength, escaped);
        }

        var headerSize = reader.Consumed;
        ReadOnlySequence<byte> body;

        // STOMP 1.2 "Header content-length": read exactly that many octets, then require a NUL.
        if (frame.TryGetHeader(StompHeaders.ContentLength, out var lengthText))
        {
            if (lengthText.IsEmpty || !Utf8Parser.TryParse(lengthText, out long length, out var used) || used != lengthText.Length || length < 0)
            {
                throw new StompProtocolException("malformed frame: invalid content-length");
            }

            if (headerSize + length + 1 > _limits.MaxFrameSize)
            {
                throw StompProtocolException.LimitExceeded("max-frame-size", headerSize + length + 1, _limits.MaxFrameSize);
            }

            if (reader.Remaining < length + 1)
            {
                return false;
            }

            body = reader.UnreadSequence.Slice(0, length);
            reader.Advance(length);
            reader.TryRead(out var terminator);
            if (terminator != 0)
            {
                throw new StompProtocolException("malformed frame: body longer than content-length (no NUL after it)");
            }
        }
        else if (!reader.TryReadTo(out body, 0))
        {
            return Incomplete(buffer);
        }
        else if (headerSize + body.Length + 1 > _limits.MaxFrameSize)
        {
            throw StompProtocolException.LimitExceeded("max-frame-size", headerSize + body.Length + 1, _limits.MaxFrameSize);
        }

        if (body.Length > 0 && !StompCommands.MayHaveBody(frame.Command))
        {
            throw new StompProtocolException($"malformed frame: {frame.Command.ToString().ToUpperInvariant()} frames must not have a body");
        }

        frame.Body = body;
        buffer = buffer.Slice(reader.Position);
        return true;
    }

    // Reads up to the next LF; the line excludes the LF and a CR before it.
    private bool TryReadLine(ref SequenceReader<byte> reader, out ReadOnlySequence<byte> line)
    {
        if (!reader.TryReadTo(out line, (byte)'\n'))
        {
            // The partial line can still be valid if it is at most the limit, plus a CR of its EOL.
            var remaining = reader.Remaining;
            if (remaining > _limits.MaxHeaderLineLength + 1L
                || (remaining == _limits.MaxHeaderLineLength + 1L && LastByte(reader.UnreadSequence) != (byte)'\r'))
            {
                throw StompProtocolException.LimitExceeded("max-header-line-length", remaining, _limits.MaxHeaderLineLength);
            }

            return false;
        }

        if (line.Length > 0 && LastByte(line) == (byte)'\r')
        {
            line = line.Slice(0, line.Length - 1);
        }

        if (line.Length > _limits.MaxHeaderLineLength)
        {
            throw StompProtocolException.LimitExceeded("max-header-line-length", line.Length, _limits.MaxHeaderLineLength);
        }

        return true;
    }

    // STOMP 1.2 "Size Limits": a partial frame is at least one byte (its NUL) longer than what is
    // buffered, so a buffer that already reaches the limit can never become an acceptable frame.
    private bool Incomplete(in ReadOnlySequence<byte> frameSoFar)
    {
        if (frameSoFar.Length >= _limits.MaxFrameSize)
        {
            throw StompProtocolException.LimitExceeded("max-frame-size", frameSoFar.Length + 1, _limits.MaxFrameSize);
        }

        return false;
    }

    private static byte LastByte(in ReadOnlySequence<byte> bytes)
    {
        if (bytes.IsSingleSegment)
        {
            return bytes.FirstSpan[^1];
        }

        // CopyTo skips empty segments, which a slice starting at a segment boundary may begin with.
        Span<byte> last = stackalloc byte[1];
        bytes.Slice(bytes.Length - 1).CopyTo(last);
        return last[0];
    }

    private static StompCommand ParseCommand(in ReadOnlySequence<byte> line)
    {
        StompCommand command;
        if (line.IsSingleSegment)
        {
            command = StompCommands.Parse(line.FirstSpan);
        }
        else if (line.Length <= 16)
        {
            Span<byte> copy = stackalloc byte[16];
            line.CopyTo(copy);
            command = StompCommands.Parse(copy[..(int)line.Length]);
        }
        else
        {
            command = StompCommand.Unknown;
        }

        if (command == StompCommand.Unknown)
        {
            throw new StompProtocolException("malformed frame: unknown command");
        }

        return command;
    }

    private void AddHeader(StompFrame frame, in ReadOnlySequence<byte> line, int length, bool escaped)
    {
        var span = frame.Reserve(length, out var offset);
        line.CopyTo(span);
        frame.Commit(length);

        var colon = span.IndexOf((byte)':');
        if (colon < 0)
        {
            throw new StompProtocolException("malformed frame: header line without ':'");
        }

        var name = span[..colon];
        var value = span[(colon + 1)..];
        var nameLength = escaped ? Unescape(name) : name.Length;
        var valueLength = escaped ? Unescape(value) : value.Length;
        frame.AddHeader(offset, nameLength, offset + colon + 1, valueLength);
    }

    // STOMP 1.2 "Value Encoding": \r \n \c \\ decode; any other escape is a fatal error. 1.1 has no \r.
    private int Unescape(Span<byte> text)
    {
        var read = text.IndexOf((byte)'\\');
        if (read < 0)
        {
            return text.Length;
        }

        var write = read;
        while (read < text.Length)
        {
            var b = text[read++];
            if (b == (byte)'\\')
            {
                if (read == text.Length)
                {
                    throw new StompProtocolException("malformed frame: header ends with an incomplete escape");
                }

                b = text[read++] switch
                {
                    (byte)'n' => (byte)'\n',
                    (byte)'c' => (byte)':',
                    (byte)'\\' => (byte)'\\',
                    (byte)'r' when Version >= StompVersion.V12 => (byte)'\r',
                    var other => throw new StompProtocolException($"malformed frame: undefined header escape '\\{(char)other}'"),
                };
            }

            text[write++] = b;
        }

        return write;
    }
}
