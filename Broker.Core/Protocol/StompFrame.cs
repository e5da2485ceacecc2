using System.Buffers;
using System.Text;

namespace Broker.Protocol;

/// <summary>
/// A frame read by <see cref="StompFrameReader"/>: the command, the headers (decoded, as byte ranges
/// in a buffer the frame owns and reuses) and the body (a slice of the input). The same instance is
/// refilled by each read: the body is valid only until the input buffer is advanced.
/// </summary>
public sealed class StompFrame
{
    private byte[] _bytes = new byte[256];
    private int _length;
    private HeaderRange[] _headers = new HeaderRange[8];

    public StompCommand Command { get; internal set; }

    public int HeaderCount { get; private set; }

    /// <summary>The body, without the terminating NUL. Valid until the reader's input is advanced.</summary>
    public ReadOnlySequence<byte> Body { get; internal set; }

    /// <summary>Header <paramref name="index"/>'s name, decoded.</summary>
    public ReadOnlySpan<byte> HeaderName(int index)
    {
        ref readonly var h = ref _headers[index];
        return _bytes.AsSpan(h.NameStart, h.NameLength);
    }

    /// <summary>Header <paramref name="index"/>'s value, decoded.</summary>
    public ReadOnlySpan<byte> HeaderValue(int index)
    {
        ref readonly var h = ref _headers[index];
        return _bytes.AsSpan(h.ValueStart, h.ValueLength);
    }

    // STOMP 1.2 "Repeated Header Entries": only the first occurrence counts.
    public bool TryGetHeader(ReadOnlySpan<byte> name, out ReadOnlySpan<byte> value)
    {
        for (var i = 0; i < HeaderCount; i++)
        {
            if (HeaderName(i).SequenceEqual(name))
            {
                value = HeaderValue(i);
                return true;
            }
        }

        value = default;
        return false;
    }

    public bool HasHeader(ReadOnlySpan<byte> name) => TryGetHeader(name, out _);

    /// <summary>The first value of the header as a string, or null when absent.</summary>
    public string? GetString(ReadOnlySpan<byte> name) =>
        TryGetHeader(name, out var value) ? Encoding.UTF8.GetString(value) : null;

    internal void Reset()
    {
        Command = StompCommand.Unknown;
        HeaderCount = 0;
        _length = 0;
        Body = ReadOnlySequence<byte>.Empty;
    }

    /// <summary>Reserves room for <paramref name="size"/> bytes and returns the offset to write at.</summary>
    internal Span<byte> Reserve(int size, out int offset)
    {
        if (_bytes.Length - _length < size)
        {
            Array.Resize(ref _bytes, Math.Max(_bytes.Length * 2, _length + size));
        }

        offset = _length;
        return _bytes.AsSpan(_length, size);
    }

    internal void Commit(int length) => _length += length;

    internal void AddHeader(int nameStart, int nameLength, int valueStart, int valueLength)
    {
        if (HeaderCount == _headers.Length)
        {
            Array.Resize(ref _headers, _headers.Length * 2);
        }

        _headers[HeaderCount++] = new HeaderRange(nameStart, nameLength, valueStart, valueLength);
    }

    public override string ToString() => $"{Command} ({HeaderCount} headers, {Body.Length} body bytes)";

    private readonly record struct HeaderRange(int NameStart, int NameLength, int ValueStart, int ValueLength);
}
