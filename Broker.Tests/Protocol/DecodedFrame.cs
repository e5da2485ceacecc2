using System.Buffers;
using System.Text;
using Broker.Protocol;

namespace Broker.Tests.Protocol;

/// <summary>
/// A copy of what <see cref="StompFrameReader"/> decoded, comparable by value, so that reads of the
/// same bytes split differently can be compared (and failures print readably).
/// </summary>
public sealed record DecodedFrame(StompCommand Command, string Headers, string Body)
{
    public static DecodedFrame Of(StompFrame frame)
    {
        var headers = new StringBuilder();
        for (var i = 0; i < frame.HeaderCount; i++)
        {
            headers.Append('[').Append(Show(frame.HeaderName(i))).Append(" = ").Append(Show(frame.HeaderValue(i))).Append(']');
        }

        return new DecodedFrame(frame.Command, headers.ToString(), Show(frame.Body.ToArray()));
    }

    public static DecodedFrame Expected(StompCommand command, IEnumerable<(string Name, string Value)> headers, byte[]? body = null)
    {
        var text = new StringBuilder();
        foreach (var (name, value) in headers)
        {
            text.Append('[').Append(Show(Encoding.UTF8.GetBytes(name))).Append(" = ").Append(Show(Encoding.UTF8.GetBytes(value))).Append(']');
        }

        return new DecodedFrame(command, text.ToString(), Show(body ?? []));
    }

    // Printable ASCII as is, everything else (and the backslash) as \xNN, so that bytes survive.
    private static string Show(ReadOnlySpan<byte> bytes)
    {
        var text = new StringBuilder(bytes.Length);
        foreach (var b in bytes)
        {
            if (b is >= 0x20 and < 0x7F && b != (byte)'\\')
            {
                text.Append((char)b);
            }
            else
            {
                text.Append("\\x").Append(b.ToString("X2"));
            }
        }

        return text.ToString();
    }
}
