using System.Buffers;
using System.Text;
using Broker.Protocol;
using NUnit.Framework;

namespace Broker.Tests.Protocol;

internal static class ReaderTestExtensions
{
    public static byte[] Bytes(this string wire) => Encoding.UTF8.GetBytes(wire);

    /// <summary>Reads every frame in <paramref name="wire"/>; the rest must be only a partial frame or nothing.</summary>
    public static List<DecodedFrame> ReadAll(this StompFrameReader reader, ReadOnlySequence<byte> buffer)
    {
        var frame = new StompFrame();
        var frames = new List<DecodedFrame>();
        while (reader.TryRead(ref buffer, frame))
        {
            frames.Add(DecodedFrame.Of(frame));
        }

        Assert.That(buffer.Length, Is.Zero, "nothing left over");
        return frames;
    }

    public static List<DecodedFrame> ReadAll(this StompFrameReader reader, string wire) =>
        reader.ReadAll(Sequences.Single(wire.Bytes()));

    /// <summary>Reads one frame that must be whole.</summary>
    public static StompFrame ReadOne(this StompFrameReader reader, string wire)
    {
        var buffer = Sequences.Single(wire.Bytes());
        var frame = new StompFrame();
        Assert.That(reader.TryRead(ref buffer, frame), Is.True, "a whole frame");
        return frame;
    }

    /// <summary>Reads <paramref name="wire"/>, whole and split at every point; each must throw. Returns the first exception.</summary>
    public static StompProtocolException ReadThrows(this StompFrameReader reader, string wire)
    {
        var bytes = wire.Bytes();
        StompProtocolException? first = null;
        for (var split = 0; split <= bytes.Length; split++)
        {
            var buffer = split == 0 ? Sequences.Single(bytes) : Sequences.Split(bytes, split);
            var frame = new StompFrame();
            var e = Assert.Throws<StompProtocolException>(() =>
            {
                while (reader.TryRead(ref buffer, frame))
                {
                }
            }, $"split at {split}");
            first ??= e!;
        }

        return first!;
    }
}
