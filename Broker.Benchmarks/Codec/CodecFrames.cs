using System.Buffers;
using Broker.Protocol;

namespace Broker.Benchmarks.Codec;

/// <summary>Builds the benchmark frames with the real writer, so reader and writer see the same bytes.</summary>
internal static class CodecFrames
{
    public const int Batch = 100;

    public static byte[] Body(FrameKind kind)
    {
        var body = new byte[kind == FrameKind.Send4K ? 4096 : 128];
        for (var i = 0; i < body.Length; i++)
        {
            body[i] = (byte)('a' + (i % 26));
        }

        return body;
    }

    public static void Write(FrameKind kind, IBufferWriter<byte> output, ReadOnlySpan<byte> body)
    {
        var writer = new StompFrameWriter(output, StompVersion.V12);
        if (kind == FrameKind.Message128)
        {
            var frame = writer.Command(StompCommand.Message);
            frame.Header(StompHeaders.Destination, "/topic/prices.eur-usd");
            frame.Header(StompHeaders.MessageId, "3f1c2a9e-7d3b-4c1e-9a52-000000012345");
            frame.Header(StompHeaders.Subscription, "sub-0");
            frame.Header(StompHeaders.Ack, "3f1c2a9e-7d3b-4c1e-9a52-000000012345");
            frame.Header(StompHeaders.ContentType, "application/json");
            frame.End(body);
        }
        else
        {
            var frame = writer.Command(StompCommand.Send);
            frame.Header(StompHeaders.Destination, "/queue/orders.incoming");
            frame.Header(StompHeaders.ContentType, "application/json");
            frame.Header(StompHeaders.Receipt, "receipt-12345");
            frame.End(body);
        }
    }

    public static byte[] Bytes(FrameKind kind, int count)
    {
        var output = new ArrayBufferWriter<byte>();
        var body = Body(kind);
        for (var i = 0; i < count; i++)
        {
            Write(kind, output, body);
        }

        return output.WrittenSpan.ToArray();
    }

    /// <summary>Bytes of one frame of <paramref name="kind"/> on the wire.</summary>
    public static int Size(FrameKind kind) => Bytes(kind, 1).Length;

    /// <summary>The bytes as a sequence of <paramref name="segmentSize"/>-byte segments, as a pipe hands them out.</summary>
    public static ReadOnlySequence<byte> Segmented(byte[] bytes, int segmentSize) =>
        Broker.Tests.Protocol.Sequences.Split(bytes, [.. Enumerable.Range(1, (bytes.Length - 1) / segmentSize).Select(i => i * segmentSize)]);
}
