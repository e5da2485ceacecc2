using System.Buffers;
using System.Buffers.Text;
using System.Text;
using Broker.Routing;

namespace Broker.Cluster;

/// <summary>
/// The wire format of a message between nodes. A message is stored (history stream field <c>d</c>, queue
/// stream field <c>d</c>) as: version byte 1, the message id, the header count and each header's name and
/// value (every string a varint length and UTF-8 bytes), then the body to the end. A topic message on a
/// channel is that, prefixed by the publish script with <c>&lt;offset&gt;:&lt;epoch&gt;:</c>, which only
/// Redis knows when it appends the message.
/// </summary>
internal static class ClusterMessageCodec
{
    private const byte Version = 1;

    public static byte[] Encode(BrokerMessage message)
    {
        var buffer = new ArrayBufferWriter<byte>(message.Body.Length + 64);
        buffer.GetSpan(1)[0] = Version;
        buffer.Advance(1);
        WriteString(buffer, message.MessageId);
        WriteVarint(buffer, (uint)message.Headers.Count);
        foreach (var (name, value) in message.Headers)
        {
            WriteString(buffer, name);
            WriteString(buffer, value);
        }

        buffer.Write(message.Body.Span);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Reads a stored message; null when the bytes are not one (another version, or damaged).</summary>
    public static BrokerMessage? Decode(string destination, ReadOnlyMemory<byte> payload)
    {
        var span = payload.Span;
        if (span.IsEmpty || span[0] != Version)
        {
            return null;
        }

        var position = 1;
        if (!TryReadString(span, ref position, out var messageId) || !TryReadVarint(span, ref position, out var count) || count > 4096)
        {
            return null;
        }

        var headers = new KeyValuePair<string, string>[count];
        for (var i = 0; i < count; i++)
        {
            if (!TryReadString(span, ref position, out var name) || !TryReadString(span, ref position, out var value))
            {
                return null;
            }

            headers[i] = new(name, value);
        }

        return new BrokerMessage(destination, messageId, headers, payload[position..]);
    }

    /// <summary>Splits a topic channel message into its offset, its epoch and the stored message.</summary>
    public static bool TrySplitPublished(ReadOnlyMemory<byte> published, out long offset, out string epoch, out ReadOnlyMemory<byte> payload)
    {
        var span = published.Span;
        epoch = "";
        payload = default;
        if (!Utf8Parser.TryParse(span, out offset, out var digits) || digits >= span.Length || span[digits] != (byte)':')
        {
            return false;
        }

        var rest = span[(digits + 1)..];
        var colon = rest.IndexOf((byte)':');
        if (colon <= 0)
        {
            return false;
        }

        epoch = Encoding.ASCII.GetString(rest[..colon]);
        payload = published[(digits + 1 + colon + 1)..];
        return offset > 0;
    }

    private static void WriteString(ArrayBufferWriter<byte> buffer, string value)
    {
        var length = Encoding.UTF8.GetByteCount(value);
        WriteVarint(buffer, (uint)length);
        Encoding.UTF8.GetBytes(value, buffer.GetSpan(length));
        buffer.Advance(length);
    }

    private static void WriteVarint(ArrayBufferWriter<byte> buffer, uint value)
    {
        var span = buffer.GetSpan(5);
        var i = 0;
        while (value >= 0x80)
        {
            span[i++] = (byte)(value | 0x80);
            value >>= 7;
        }

        span[i++] = (byte)value;
        buffer.Advance(i);
    }

    private static bool TryReadVarint(ReadOnlySpan<byte> span, ref int position, out int value)
    {
        uint result = 0;
        for (var shift = 0; shift < 35; shift += 7)
        {
            if (position >= span.Length)
            {
                break;
            }

            var b = span[position++];
            result |= (uint)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                value = (int)Math.Min(result, int.MaxValue);
                return result <= int.MaxValue;
            }
        }

        value = 0;
        return false;
    }

    private static bool TryReadString(ReadOnlySpan<byte> span, ref int position, out string value)
    {
        value = "";
        if (!TryReadVarint(span, ref position, out var length) || length > span.Length - position)
        {
            return false;
        }

        value = Encoding.UTF8.GetString(span.Slice(position, length));
        position += length;
        return true;
    }
}
