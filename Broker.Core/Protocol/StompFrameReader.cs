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
/// <para>
/// A partial frame is resumed, not read again: when the next call presents the same frame start
/// (the same position, as a pipe hands back what was not consumed) and the same
/// <see cref="StompFrame"/>, the header lines already read and the bytes already searched for an
/// EOL or the NUL are not examined again, so a frame trickled in byte by byte costs time in
/// proportion to its size. Any other buffer starts a new frame.
/// </para>
/// </remarks>
public sealed class StompFrameReader
{
    private readonly StompReaderLimits _limits;
    private int _maxFrameSize;
    private string _maxFrameSizeName;

    // The frame being read, kept across calls while it is partial (_pendingFrame set). _lineOffset is the
    // first byte not yet taken by a whole line (after the headers: the body's first byte); the bytes from
    // _scannedOffset on have not yet been searched for the LF ending that line (headers) or for the NUL
    // (body). Offsets count from the frame start. Their positions (_lineStart, _scanned) are worked out
    // only once the frame runs past the first span, so a frame read whole in one call stores no position.
    private StompFrame? _pendingFrame;
    private SequencePosition _frameStart;
    private long _bufferedLength;
    private SequencePosition _lineStart;
    private long _lineOffset;
    private SequencePosition _scanned;
    private long _scannedOffset;
    private bool _headersRead;
    private bool _scanInFirstSpan;
    private bool _escaped;
    private long _contentLength;

    public StompFrameReader(StompReaderLimits? limits = null)
    {
        _limits = limits ?? StompReaderLimits.Default;
        if (_limits.MaxFrameSizeBeforeConnect is { } beforeConnect && beforeConnect < _limits.MaxFrameSize)
        {
            _maxFrameSize = beforeConnect;
            _maxFrameSizeName = StompReaderLimits.MaxFrameSizeBeforeConnectName;
        }
        else
        {
            _maxFrameSize = _limits.MaxFrameSize;
            _maxFrameSizeName = StompReaderLimits.MaxFrameSizeName;
        }
    }

    /// <summary>The version whose header escaping applies to frames other than CONNECT/CONNECTED.</summary>
    public StompVersion Version { get; set; } = StompVersion.V12;

    /// <summary>
    /// Bytes of an unfinished frame (or a heart-beat's CR still waiting for its LF) that the last
    /// <see cref="TryRead"/> left unconsumed in the input: what the connection holds on the peer's
    /// behalf until the rest arrives. 0 when the last read ended at a frame boundary.
    /// </summary>
    public long PartialFrameBytes { get; private set; }

    /// <summary>Bytes the reader has searched for an EOL or a NUL so far: its work, which tests bound.</summary>
    internal long BytesExamined { get; private set; }

    /// <summary>
    /// The session is CONNECTED: from now on frames may be as large as
    /// <see cref="StompReaderLimits.MaxFrameSize"/> rather than <see cref="StompReaderLimits.MaxFrameSizeBeforeConnect"/>.
    /// </summary>
    public void Connected()
    {
        _maxFrameSize = _limits.MaxFrameSize;
        _maxFrameSizeName = StompReaderLimits.MaxFrameSizeName;
    }

    /// <summary>
    /// Reads the next frame. Heart-beat EOLs before it are consumed. Returns false when no whole
    /// frame is buffered; throws <see cref="StompProtocolException"/> on malformed input or a limit.
    /// </summary>
    public bool TryRead(ref ReadOnlySequence<byte> buffer, StompFrame frame)
    {
        if (!SkipHeartbeats(ref buffer))
        {
            _pendingFrame = null;
            PartialFrameBytes = buffer.Length;
            return false;
        }

        var resumes = Resumes(buffer, frame);

        // Set again when this call ends on a partial frame; after an exception there is nothing to resume.
        _pendingFrame = null;
        if (!resumes)
        {
            Begin(frame);
        }

        if (!_headersRead && !ReadHeaders(buffer, frame))
        {
            return Incomplete(buffer, frame);
        }

        if (!ReadBody(ref buffer, frame))
        {
            return Incomplete(buffer, frame);
        }

        PartialFrameBytes = 0;
        return true;
    }

    // The same frame as last time, with at least as many bytes: a pipe presenting what was not consumed.
    private bool Resumes(in ReadOnlySequence<byte> buffer, StompFrame frame) =>
        ReferenceEquals(_pendingFrame, frame) && buffer.Start.Equals(_frameStart) && buffer.Length >= _bufferedLength;

    private void Begin(StompFrame frame)
    {
        frame.Reset();
        _lineOffset = 0;
        _scannedOffset = 0;
        _headersRead = false;
        _scanInFirstSpan = false;
        _escaped = false;
        _contentLength = -1;
    }

    // STOMP 1.2 "Heart-beating": EOLs between frames are heart-beats. False when nothing else is buffered.
    private static bool SkipHeartbeats(ref ReadOnlySequence<byte> buffer)
    {
        var first = buffer.FirstSpan;
        if (first.Length > 0 && first[0] != (byte)'\n' && first[0] != (byte)'\r')
        {
            return true;
        }

        // Also steps over empty segments, so a frame's start position is the same on every call.
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

    // STOMP 1.2 "STOMP Frames": the command line and header lines up to the blank line. Whole lines are
    // taken from the span at the current line start (the fast path: usually the whole header section);
    // a line running past that span is found in the rest of the sequence. True once the blank line is read.
    private bool ReadHeaders(in ReadOnlySequence<byte> buffer, StompFrame frame)
    {
        while (true)
        {
            var inFirstSpan = _lineOffset == 0;
            var span = inFirstSpan ? buffer.FirstSpan : SpanAt(buffer, _lineStart);
            var searched = _scannedOffset - _lineOffset;
            if (searched < span.Length)
            {
                var taken = 0;
                var from = (int)searched;
                var blank = false;
                while (!blank)
                {
                    var lf = span[from..].IndexOf((byte)'\n');
                    if (lf < 0)
                    {
                        from = span.Length;
                        break;
                    }

                    lf += from;
                    blank = ReadLine(frame, span[taken..lf]);
                    taken = lf + 1;
                    from = taken;
                }

                BytesExamined += from - searched;
                _lineOffset += taken;
                if (blank)
                {
                    // The body's position is worked out only if its NUL is not found in this span.
                    _scanInFirstSpan = inFirstSpan;
                    if (!inFirstSpan)
                    {
                        _scanned = buffer.GetPosition(taken, _lineStart);
                    }

                    return EndHeaders(frame);
                }

                _lineStart = inFirstSpan ? buffer.GetPosition(taken) : buffer.GetPosition(taken, _lineStart);
                _scanned = buffer.GetPosition(span.Length - taken, _lineStart);
                _scannedOffset = _lineOffset + span.Length - taken;
            }

            if (_scannedOffset == buffer.Length)
            {
                CheckPartialLine(buffer);
                return false;
            }

            // The current line continues in a later segment.
            var rest = buffer.Slice(_scanned);
            var lfPosition = rest.PositionOf((byte)'\n');
            if (lfPosition is not { } end)
            {
                BytesExamined += rest.Length;
                _scanned = buffer.End;
                _scannedOffset = buffer.Length;
                CheckPartialLine(buffer);
                return false;
            }

            BytesExamined += rest.Slice(0, end).Length + 1;
            var line = buffer.Slice(_lineStart, end);
            var blankLine = ReadLine(frame, line);
            _lineStart = buffer.GetPosition(1, end);
            _lineOffset += line.Length + 1;
            _scanned = _lineStart;
            _scannedOffset = _lineOffset;
            if (blankLine)
            {
                _scanInFirstSpan = false;
                return EndHeaders(frame);
            }
        }
    }

    // A line (without its LF) that straddles segments: copied out, then read as one span.
    private bool ReadLine(StompFrame frame, in ReadOnlySequence<byte> line)
    {
        if (line.IsSingleSegment)
        {
            return ReadLine(frame, line.FirstSpan);
        }

        // A line within the limit is at most one byte (its CR) longer than it; check before copying.
        if (line.Length > _limits.MaxHeaderLineLength + 1L)
        {
            CheckLine(line.Length);
        }

        var length = (int)line.Length;
        byte[]? rented = null;
        var copy = length <= 256 ? stackalloc byte[256] : (rented = ArrayPool<byte>.Shared.Rent(length));
        try
        {
            line.CopyTo(copy);
            return ReadLine(frame, copy[..length]);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    // One line without its LF: the command line, a header line, or the blank line (returns true).
    private bool ReadLine(StompFrame frame, ReadOnlySpan<byte> line)
    {
        if (line.Length > 0 && line[^1] == (byte)'\r')
        {
            line = line[..^1];
        }

        CheckLine(line.Length);
        if (frame.Command == StompCommand.Unknown)
        {
            frame.Command = ParseCommand(line);
            _escaped = StompCommands.IsEscaped(frame.Command, Version);
            return false;
        }

        if (line.IsEmpty)
        {
            return true;
        }

        CheckHeaderCount(frame);
        var copy = frame.Reserve(line.Length, out var offset);
        line.CopyTo(copy);
        AddHeader(frame, copy, offset, _escaped);
        return false;
    }

    // STOMP 1.2 "Header content-length", "STOMP Frames": the length, if given, is checked against the
    // frame limit before the body arrives; a frame that may not have a body is refused at its first byte.
    private bool EndHeaders(StompFrame frame)
    {
        _headersRead = true;
        _scannedOffset = _lineOffset;
        CheckFrameSize(_lineOffset + 1);
        if (frame.TryGetHeader(StompHeaders.ContentLength, out var lengthText))
        {
            if (lengthText.IsEmpty || !Utf8Parser.TryParse(lengthText, out long length, out var used) || used != lengthText.Length || length < 0)
            {
                throw new StompProtocolException("malformed frame: invalid content-length");
            }

            CheckFrameSize(_lineOffset + length + 1);
            if (length > 0 && !StompCommands.MayHaveBody(frame.Command))
            {
                throw NoBodyAllowed(frame);
            }

            _contentLength = length;
        }

        return true;
    }

    // STOMP 1.2 "Header content-length": read exactly that many octets, then require a NUL;
    // without it, the body ends at the first NUL. Only SEND, MESSAGE and ERROR have bodies.
    private bool ReadBody(ref ReadOnlySequence<byte> buffer, StompFrame frame)
    {
        long bodyLength;
        if (_contentLength >= 0)
        {
            bodyLength = _contentLength;
            if (buffer.Length < _lineOffset + bodyLength + 1)
            {
                return false;
            }

            if (ByteAt(buffer, _lineOffset + bodyLength) != 0)
            {
                throw new StompProtocolException("malformed frame: body longer than content-length (no NUL after it)");
            }
        }
        else if (!StompCommands.MayHaveBody(frame.Command))
        {
            if (buffer.Length == _lineOffset)
            {
                return false;
            }

            BytesExamined++;
            if (ByteAt(buffer, _lineOffset) != 0)
            {
                throw NoBodyAllowed(frame);
            }

            bodyLength = 0;
        }
        else if (!FindNul(buffer, out bodyLength))
        {
            return false;
        }

        var frameSize = _lineOffset + bodyLength + 1;
        frame.Body = buffer.Slice(_lineOffset, bodyLength);
        buffer = buffer.Slice(frameSize);
        return true;
    }

    // The body's NUL, searched for from where the last call stopped: in that span first (usually the
    // whole body), then in the rest of the sequence.
    private bool FindNul(in ReadOnlySequence<byte> buffer, out long bodyLength)
    {
        var span = _scanInFirstSpan ? buffer.FirstSpan[(int)_scannedOffset..] : SpanAt(buffer, _scanned);
        var nul = span.IndexOf((byte)0);
        if (nul >= 0)
        {
            BytesExamined += nul + 1;
            bodyLength = _scannedOffset + nul - _lineOffset;
        }
        else
        {
            BytesExamined += span.Length;
            _scanned = _scanInFirstSpan ? buffer.GetPosition(_scannedOffset + span.Length) : buffer.GetPosition(span.Length, _scanned);
            _scannedOffset += span.Length;
            _scanInFirstSpan = false;
            var rest = buffer.Slice(_scanned);
            if (rest.PositionOf((byte)0) is not { } found)
            {
                BytesExamined += rest.Length;
                _scanned = buffer.End;
                _scannedOffset = buffer.Length;
                bodyLength = 0;
                return false;
            }

            var before = rest.Slice(0, found).Length;
            BytesExamined += before + 1;
            bodyLength = _scannedOffset + before - _lineOffset;
        }

        CheckFrameSize(_lineOffset + bodyLength + 1);
        return true;
    }

    private static StompProtocolException NoBodyAllowed(StompFrame frame) =>
        new($"malformed frame: {frame.Command.ToString().ToUpperInvariant()} frames must not have a body");

    // STOMP 1.2 "Size Limits": max-frame-size, or before CONNECTED max-frame-size-before-connect.
    private void CheckFrameSize(long frameSize)
    {
        if (frameSize > _maxFrameSize)
        {
            throw StompProtocolException.LimitExceeded(_maxFrameSizeName, frameSize, _maxFrameSize);
        }
    }

    private void CheckHeaderCount(StompFrame frame)
    {
        if (frame.HeaderCount == _limits.MaxHeaders)
        {
            throw StompProtocolException.LimitExceeded(StompReaderLimits.MaxHeadersName, frame.HeaderCount + 1, _limits.MaxHeaders);
        }
    }

    // A whole line (without its EOL) must be within max-header-line-length.
    private void CheckLine(long length)
    {
        if (length > _limits.MaxHeaderLineLength)
        {
            throw StompProtocolException.LimitExceeded(StompReaderLimits.MaxHeaderLineLengthName, length, _limits.MaxHeaderLineLength);
        }
    }

    // A partial line (from the current line start to the end of the buffer) can still be valid if
    // it is at most the limit, plus a CR of its EOL.
    private void CheckPartialLine(in ReadOnlySequence<byte> buffer)
    {
        var length = buffer.Length - _lineOffset;
        var max = (long)_limits.MaxHeaderLineLength;
        if (length > max + 1 || (length == max + 1 && LastByte(buffer) != (byte)'\r'))
        {
            throw StompProtocolException.LimitExceeded(StompReaderLimits.MaxHeaderLineLengthName, length, _limits.MaxHeaderLineLength);
        }
    }

    // STOMP 1.2 "Size Limits": a partial frame is at least one byte (its NUL) longer than what is
    // buffered, so a buffer that already reaches the limit can never become an acceptable frame.
    private bool Incomplete(in ReadOnlySequence<byte> frameSoFar, StompFrame frame)
    {
        if (frameSoFar.Length >= _maxFrameSize)
        {
            throw StompProtocolException.LimitExceeded(_maxFrameSizeName, frameSoFar.Length + 1, _maxFrameSize);
        }

        _pendingFrame = frame;
        _frameStart = frameSoFar.Start;
        _bufferedLength = frameSoFar.Length;
        PartialFrameBytes = frameSoFar.Length;
        return false;
    }

    // From position to the end of its segment (or of the buffer), without slicing the sequence.
    private static ReadOnlySpan<byte> SpanAt(in ReadOnlySequence<byte> buffer, SequencePosition position) =>
        buffer.TryGet(ref position, out var memory, advance: false) ? memory.Span : default;

    private static byte LastByte(in ReadOnlySequence<byte> bytes) => ByteAt(bytes, bytes.Length - 1);

    private static byte ByteAt(in ReadOnlySequence<byte> bytes, long offset)
    {
        var first = bytes.FirstSpan;
        if (offset < first.Length)
        {
            return first[(int)offset];
        }

        // CopyTo skips empty segments, which a slice starting at a segment boundary may begin with.
        Span<byte> one = stackalloc byte[1];
        bytes.Slice(offset, 1).CopyTo(one);
        return one[0];
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
