using System.Buffers;
using System.Buffers.Text;
using System.Text;

namespace Broker.Protocol;

/// <summary>
/// Writes one STOMP frame to an <see cref="IBufferWriter{T}"/>, escaping header names and values
/// as the negotiated version requires (none for CONNECT/CONNECTED and for 1.0).
/// </summary>
/// <example><code>
/// var w = new StompFrameWriter(output, version);
/// w.Command(StompCommand.Receipt);
/// w.Header(StompHeaders.ReceiptId, receiptId);
/// w.EndWithoutBody();
/// </code></example>
public readonly ref struct StompFrameWriter
{
    private static readonly SearchValues<char> s_escape12Chars = SearchValues.Create("\\\n\r:");
    private static readonly SearchValues<char> s_escape11Chars = SearchValues.Create("\\\n:");
    private static readonly SearchValues<byte> s_escape12Bytes = SearchValues.Create("\\\n\r:"u8);
    private static readonly SearchValues<byte> s_escape11Bytes = SearchValues.Create("\\\n:"u8);
    private static readonly SearchValues<byte> s_eolBytes = SearchValues.Create("\r\n"u8);

    private readonly IBufferWriter<byte> _output;
    private readonly StompVersion _version;

    public StompFrameWriter(IBufferWriter<byte> output, StompVersion version)
    {
        _output = output;
        _version = version;
    }

    /// <summary>A heart-beat: a single EOL.</summary>
    public static void WriteHeartbeat(IBufferWriter<byte> output)
    {
        output.GetSpan(1)[0] = (byte)'\n';
        output.Advance(1);
    }

    /// <summary>Starts a frame. Headers written after this are escaped if the command and version call for it.</summary>
    public StompFrameWriter Command(StompCommand command)
    {
        Write(StompCommands.Name(command));
        WriteByte((byte)'\n');
        return new StompFrameWriter(_output, StompCommands.IsEscaped(command, _version) ? _version : StompVersion.V10);
    }

    public void Header(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        WriteEscaped(name);
        WriteByte((byte)':');
        WriteEscaped(value);
        WriteByte((byte)'\n');
    }

    public void Header(ReadOnlySpan<byte> name, string value)
    {
        WriteEscaped(name);
        WriteByte((byte)':');
        WriteEscaped(value.AsSpan());
        WriteByte((byte)'\n');
    }

    public void Header(string name, string value)
    {
        WriteEscaped(name.AsSpan());
        WriteByte((byte)':');
        WriteEscaped(value.AsSpan());
        WriteByte((byte)'\n');
    }

    public void Header(ReadOnlySpan<byte> name, long value)
    {
        WriteEscaped(name);
        WriteByte((byte)':');
        var span = _output.GetSpan(20);
        Utf8Formatter.TryFormat(value, span, out var written);
        _output.Advance(written);
        WriteByte((byte)'\n');
    }

    /// <summary>Writes bytes that are already a valid, escaped header block (lines ending in LF).</summary>
    public void Raw(ReadOnlySpan<byte> bytes) => Write(bytes);

    /// <summary>Ends a frame with no body.</summary>
    public void EndWithoutBody()
    {
        var span = _output.GetSpan(2);
        span[0] = (byte)'\n';
        span[1] = 0;
        _output.Advance(2);
    }

    /// <summary>Writes <c>content-length</c>, the blank line, the body and the NUL.</summary>
    public void End(ReadOnlySpan<byte> body)
    {
        Header(StompHeaders.ContentLength, body.Length);
        WriteByte((byte)'\n');
        Write(body);
        WriteByte(0);
    }

    /// <summary>Writes <c>content-length</c>, the blank line, the body and the NUL.</summary>
    public void End(in ReadOnlySequence<byte> body)
    {
        Header(StompHeaders.ContentLength, body.Length);
        WriteByte((byte)'\n');
        foreach (var segment in body)
        {
            Write(segment.Span);
        }

        WriteByte(0);
    }

    private void WriteEscaped(ReadOnlySpan<byte> text)
    {
        var escapes = _version switch
        {
            StompVersion.V12 => s_escape12Bytes,
            StompVersion.V11 => s_escape11Bytes,
            _ => s_eolBytes,
        };
        var next = text.IndexOfAny(escapes);
        if (next < 0)
        {
            Write(text);
            return;
        }

        while (next >= 0)
        {
            Write(text[..next]);
            var b = text[next];
            if (_version == StompVersion.V10)
            {
                // 1.0 cannot carry an EOL in a header; a space keeps the frame intact.
                WriteByte((byte)' ');
            }
            else
            {
                WriteByte((byte)'\\');
                WriteByte(b switch
                {
                    (byte)'\n' => (byte)'n',
                    (byte)'\r' => (byte)'r',
                    (byte)':' => (byte)'c',
                    _ => (byte)'\\',
                });
            }

            text = text[(next + 1)..];
            next = text.IndexOfAny(escapes);
        }

        Write(text);
    }

    private void WriteEscaped(ReadOnlySpan<char> text)
    {
        var needsEscaping = _version switch
        {
            StompVersion.V12 => text.ContainsAny(s_escape12Chars),
            StompVersion.V11 => text.ContainsAny(s_escape11Chars),
            _ => text.ContainsAny('\r', '\n'),
        };
        var max = Encoding.UTF8.GetMaxByteCount(text.Length);
        if (!needsEscaping)
        {
            var written = Encoding.UTF8.GetBytes(text, _output.GetSpan(max));
            _output.Advance(written);
            return;
        }

        var rented = ArrayPool<byte>.Shared.Rent(max);
        try
        {
            var length = Encoding.UTF8.GetBytes(text, rented);
            WriteEscaped(rented.AsSpan(0, length));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    private void Write(ReadOnlySpan<byte> bytes)
    {
        while (bytes.Length > 0)
        {
            var span = _output.GetSpan();
            var n = Math.Min(span.Length, bytes.Length);
            bytes[..n].CopyTo(span);
            _output.Advance(n);
            bytes = bytes[n..];
        }
    }

    private void WriteByte(byte b)
    {
        _output.GetSpan(1)[0] = b;
        _output.Advance(1);
    }
}
