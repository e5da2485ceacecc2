using System.Diagnostics;

namespace Broker.Benchmarks.Load;

/// <summary>
/// The first 32 bytes of every load-tool body, in ASCII hex so that bodies stay text:
/// the publisher's <see cref="Stopwatch"/> timestamp (16 digits), its index (8) and the message's
/// sequence number (8). The rest of the body is filler.
/// </summary>
internal static class MessageStamp
{
    public const int Length = 32;

    public static void Write(Span<byte> body, long timestamp, int publisher, long sequence)
    {
        WriteHex(body[..16], (ulong)timestamp);
        WriteHex(body.Slice(16, 8), (uint)publisher);
        WriteHex(body.Slice(24, 8), (ulong)sequence);
    }

    public static bool TryRead(ReadOnlySpan<byte> body, out long timestamp, out int publisher, out long sequence)
    {
        timestamp = 0;
        publisher = 0;
        sequence = 0;
        if (body.Length < Length ||
            !TryReadHex(body[..16], out var t) ||
            !TryReadHex(body.Slice(16, 8), out var p) ||
            !TryReadHex(body.Slice(24, 8), out var s))
        {
            return false;
        }

        timestamp = (long)t;
        publisher = (int)p;
        sequence = (long)s;
        return true;
    }

    private static void WriteHex(Span<byte> destination, ulong value)
    {
        for (var i = destination.Length - 1; i >= 0; i--)
        {
            destination[i] = (byte)"0123456789abcdef"[(int)(value & 0xF)];
            value >>= 4;
        }
    }

    private static bool TryReadHex(ReadOnlySpan<byte> source, out ulong value)
    {
        value = 0;
        foreach (var c in source)
        {
            int digit = c switch
            {
                >= (byte)'0' and <= (byte)'9' => c - '0',
                >= (byte)'a' and <= (byte)'f' => c - 'a' + 10,
                _ => -1,
            };
            if (digit < 0)
            {
                return false;
            }

            value = (value << 4) | (uint)digit;
        }

        return true;
    }
}
