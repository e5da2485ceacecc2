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
        if (!SkipHeartbeats(ref buffer))
        {
            return false;
        }

        frame.Reset();

        // Fast path: the command and headers lie in the first span (Kestrel's HttpParser does the
        // same). When they run past it, parse them again from the sequence.
        var headerSize = ReadHeaders(buffer.FirstSpan, buffer.IsSingleSegment, frame);
        if (headerSize < 0)
        {
            frame.Reset();
            headerSize = ReadHeaders(buffer, frame);
        }

        if (headerSize == 0)
        {
            return Incomplete(buffer);
        }

        return ReadBody(ref buffer, headerSize, frame);
    }

    // STOMP 1.2 "Heart-beating": EOLs between frames are heart-beats. False when nothing else is buffered.
    private static bool SkipHeartbeats(ref ReadOnlySequence<byte> buffer)
    {
        var first = buffer.FirstSpan;
        if (first.Length > 0 && first[0] != (byte)'\n' && first[0] != (byte)'\r')
        {
            return true;
        }

        var reader = new SequenceReader<byte>(buffer);
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
        return !reader.End;
    }

    // STOMP 1.2 "STOMP Frames": the command line and header lines up to the blank line, from one span.
    // Returns the bytes they take, 0 when more input is needed, -1 when they continue past the span
    // (only when it is not the whole buffer).
    private long ReadHeaders(ReadOnlySpan<byte> span, bool isWholeBuffer, StompFrame frame)
    {
        var position = 0;
        var escaped = false;
        while (true)
        {
            var rest = span[position..];
            var lf = rest.IndexOf((byte)'\n');
            if (lf < 0)
            {
                if (!isWholeBuffer)
                {
                    return -1;
                }

                CheckPartialLine(rest.Length, rest.Length > 0 ? rest[^1] : (byte)0);
                return 0;
            }

            var line = rest[..lf];
            if (line.Length > 0 && line[^1] == (byte)'\r')
            {
                line = line[..^1];
            }

            CheckLine(line.Length);
            position += lf + 1;

            if (frame.Command == StompCommand.Unknown)
            {
                frame.Command = ParseCommand(line);
                escaped = StompCommands.IsEscaped(frame.Command, Version);
            }
            else if (line.IsEmpty)
            {
                return position;
            }
            else
            {
                CheckHeaderCount(frame);
                var copy = frame.Reserve(line.Length, out var offset);
                line.CopyTo(copy);
                AddHeader(frame, copy, offset, escaped);
            }
        }
    }

    // The same as above, for headers that straddle segments.
    private long ReadHeaders(in ReadOnlySequence<byte> buffer, StompFrame frame)
    {
        var reader = new SequenceReader<byte>(buffer);
        if (!TryReadLine(ref reader, out var commandLine))
        {
            return 0;
        }

        frame.Command = ParseCommand(commandLine);
        var escaped = StompCommands.IsEscaped(frame.Command, Version);

        while (true)
        {
            if (!TryReadLine(ref reader, out var line))
            {
                return 0;
            }

            if (line.IsEmpty)
            {
                return reader.Consumed;
            }

            CheckHeaderCount(frame);
            var copy = frame.Reserve((int)line.Length, out var offset);
            line.CopyTo(copy);
            AddHeader(frame, copy, offset, escaped);
        }
    }

    // STOMP 1.2 "Header content-length": read exactly that many octets, then require a NUL;
    // without it, the body ends at the first NUL. Only SEND, MESSAGE and ERROR have bodies.
    private bool ReadBody(ref ReadOnlySequence<byte> buffer, long headerSize, StompFrame frame)
    {
        ReadOnlySequence<byte> body;
        long frameSize;
        if (frame.TryGetHeader(StompHeaders.ContentLength, out var lengthText))
        {
            if (lengthText.IsEmpty || !Utf8Parser.TryParse(lengthText, out long length, out var used) || used != lengthText.Length || length < 0)
            {
                throw new StompProtocolException("malformed frame: invalid content-length");
            }

            frameSize = headerSize + length + 1;
            if (frameSize > _limits.MaxFrameSize)
            {
                throw StompProtocolException.LimitExceeded("max-frame-size", frameSize, _limits.MaxFrameSize);
            }

            if (buffer.Length < frameSize)
            {
                return false;
            }

            if (ByteAt(buffer, frameSize - 1) != 0)
            {
                throw new StompProtocolException("malformed frame: body longer than content-length (no NUL after it)");
            }

            body = buffer.Slice(headerSize, length);
        }
        else
        {
            var rest = buffer.Slice(headerSize);
            var nul = rest.PositionOf((byte)0);
            if (nul is null)
            {
                return Incomplete(buffer);
            }

            body = rest.Slice(0, nul.Value);
            frameSize = headerSize + body.Length + 1;
            if (frameSize > _limits.MaxFrameSize)
            {
                throw StompProtocolException.LimitExceeded("max-frame-size", frameSize, _limits.MaxFrameSize);
            }
        }

        if (body.Length > 0 && !StompCommands.MayHaveBody(frame.Command))
        {
            throw new StompProtocolException($"malformed frame: {frame.Command.ToString().ToUpperInvariant()} frames must not have a body");
        }

        frame.Body = body;
        buffer = buffer.Slice(frameSize);
        return true;
    }

    private void CheckHeaderCount(StompFrame frame)
    {
        if (frame.HeaderCount == _limits.MaxHeaders)
        {
            throw StompProtocolException.LimitExceeded("max-headers", frame.HeaderCount + 1, _limits.MaxHeaders);
        }
    }

    // A whole line (without its EOL) must be within max-header-line-length.
    private void CheckLine(long length)
    {
        if (length > _limits.MaxHeaderLineLength)
        {
            throw StompProtocolException.LimitExceeded("max-header-line-length", length, _limits.MaxHeaderLineLength);
        }
    }

    // A partial line can still be valid if it is at most the limit, plus a CR of its EOL.
    private void CheckPartialLine(long length, byte last)
    {
        if (length > _limits.MaxHeaderLineLength + 1L || (length == _limits.MaxHeaderLineLength + 1L && last != (byte)'\r'))
        {
            throw StompProtocolException.LimitExceeded("max-header-line-length", length, _limits.MaxHeaderLineLength);
        }
    }

    // Reads up to the next LF; the line excludes the LF and a CR before it.
    private bool TryReadLine(ref SequenceReader<byte> reader, out ReadOnlySequence<byte> line)
    {
        if (!reader.TryReadTo(out line, (byte)'\n'))
        {
            var remaining = reader.Remaining;
            CheckPartialLine(remaining, remaining > 0 ? LastByte(reader.UnreadSequence) : (byte)0);
            return false;
        }

        if (line.Length > 0 && LastByte(line) == (byte)'\r')
        {
            line = line.Slice(0, line.Length - 1);
        }

        CheckLine(line.Length);
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

    private static byte LastByte(in ReadOnlySequence<byte> bytes) => ByteAt(bytes, bytes.Length - 1);

    private static byte ByteAt(in ReadOnlySequence<byte> bytes, long offset)
    {
        if (bytes.IsSingleSegment)
        {
            return bytes.FirstSpan[(int)offset];
        }

        // CopyTo skips empty segments, which a slice starting at a segment boundary may begin with.
        Span<byte> one = stackalloc byte[1];
        bytes.Slice(offset, 1).CopyTo(one);
        return one[0];
    }

    private static StompCommand ParseCommand(in ReadOnlySequence<byte> line)
    {
        if (line.IsSingleSegment)
        {
            return ParseCommand(line.FirstSpan);
        }

        if (line.Length > 16)
        {
            return ParseCommand(ReadOnlySpan<byte>.Empty);
        }

        Span<byte> copy = stackalloc byte[16];
        line.CopyTo(copy);
        return ParseCommand(copy[..(int)line.Length]);
    }

    private static StompCommand ParseCommand(ReadOnlySpan<byte> line)
    {
        var command = StompCommands.Parse(line);
        if (command == StompCommand.Unknown)
        {
            throw new StompProtocolException("malformed frame: unknown command");
        }

        return command;
    }

    // A header line (already copied into the frame's storage at offset) is split at its first ':'
    // and unescaped in place.
    private void AddHeader(StompFrame frame, Span<byte> line, int offset, bool escaped)
    {
        frame.Commit(line.Length);

        var colon = line.IndexOf((byte)':');
        if (colon < 0)
        {
            throw new StompProtocolException("malformed frame: header line without ':'");
        }

        var name = line[..colon];
        var value = line[(colon + 1)..];
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
