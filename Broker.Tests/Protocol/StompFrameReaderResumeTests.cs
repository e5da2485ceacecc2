using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using Broker.Protocol;
using NUnit.Framework;

namespace Broker.Tests.Protocol;

/// <summary>
/// Issue 11 item 6: a frame trickled in costs the reader work in proportion to its size, not its square.
/// Work is the reader's own count of bytes it searched or copied, not a timer.
/// </summary>
[TestFixture]
public sealed class StompFrameReaderResumeTests
{
    private const int MiB = 1024 * 1024;

    // Each byte is searched at most once, for an EOL (headers) or the NUL (body); with content-length, not at all.
    private const int WorkPerByte = 1;

    private static readonly StompReaderLimits s_large = new() { MaxFrameSize = 8 * MiB, MaxHeaderLineLength = 512 * 1024, MaxHeaders = 1000 };

    public static IEnumerable<TestCaseData> LargeFrames()
    {
        yield return new TestCaseData("SEND\ndestination:/queue/a\n\n", MiB, false).SetName("1 MiB body ending at its NUL");
        yield return new TestCaseData("SEND\ndestination:/queue/a\ncontent-length:1048576\n\n", MiB, true).SetName("1 MiB body with content-length");
        yield return new TestCaseData("SEND\ndestination:/queue/a\nlong:" + new string('h', 256 * 1024) + "\n\n", 1024, false).SetName("256 KiB header line");
        yield return new TestCaseData("SEND\n" + string.Concat(Enumerable.Range(0, 900).Select(i => $"header-{i}:{new string('v', 200)}\n")) + "\n", 1024, false).SetName("900 headers");
    }

    [TestCaseSource(nameof(LargeFrames))]
    public void AFrameArrivingByteByByteThroughAPipeCostsLinearWork(string head, int bodyLength, bool nulsInBody)
    {
        var wire = Wire(head, bodyLength, nulsInBody);
        var reader = new StompFrameReader(s_large);

        var frames = Trickle(reader, wire, _ => 1, minimumSegmentSize: 4096);

        AssertReadBack(frames, head, bodyLength, nulsInBody);
        Assert.That(reader.BytesExamined, Is.LessThanOrEqualTo((long)WorkPerByte * wire.Length), $"{wire.Length} bytes");
    }

    [TestCaseSource(nameof(LargeFrames))]
    public void AFrameArrivingInRandomSmallChunksThroughAPipeOfSmallSegmentsCostsLinearWork(string head, int bodyLength, bool nulsInBody)
    {
        var wire = Wire(head, bodyLength, nulsInBody);
        var reader = new StompFrameReader(s_large);
        var random = new Random(11);

        var frames = Trickle(reader, wire, _ => random.Next(1, 64), minimumSegmentSize: 256);

        AssertReadBack(frames, head, bodyLength, nulsInBody);
        Assert.That(reader.BytesExamined, Is.LessThanOrEqualTo((long)WorkPerByte * wire.Length), $"{wire.Length} bytes");
    }

    [Test]
    public void AGrowingArrayBufferResumesToo()
    {
        var wire = Wire("SEND\ndestination:/queue/a\nreceipt:r\n\n", 256 * 1024, false);
        var reader = new StompFrameReader(s_large);
        var frame = new StompFrame();

        for (var length = 1; length < wire.Length; length++)
        {
            var partial = new ReadOnlySequence<byte>(wire, 0, length);
            Assert.That(reader.TryRead(ref partial, frame), Is.False);
        }

        var whole = new ReadOnlySequence<byte>(wire);
        Assert.That(reader.TryRead(ref whole, frame), Is.True);
        Assert.That(frame.Body.Length, Is.EqualTo(256 * 1024));
        Assert.That(reader.BytesExamined, Is.LessThanOrEqualTo((long)WorkPerByte * wire.Length));
    }

    [Test]
    public void ManyFramesTrickledOneAfterAnotherReadBackInOrder()
    {
        var output = new ArrayBufferWriter<byte>();
        var expected = new List<string>();
        for (var i = 0; i < 50; i++)
        {
            var body = new string((char)('a' + (i % 26)), i * 97);
            expected.Add(body);
            var frame = i % 3 == 0
                ? $"SEND\ndestination:/q/{i}\ncontent-length:{body.Length}\n\n{body}\0\n"
                : $"\r\nSEND\r\ndestination:/q/{i}\r\nx:{i}\r\n\r\n{body}\0";
            output.Write(Encoding.UTF8.GetBytes(frame));
        }

        var wire = output.WrittenSpan.ToArray();
        var reader = new StompFrameReader(s_large);
        var random = new Random(7);

        var frames = Trickle(reader, wire, _ => random.Next(1, 40), minimumSegmentSize: 64);

        Assert.That(frames.Select(f => f.Body), Is.EqualTo(expected));
        Assert.That(frames.Select(f => f.Destination), Is.EqualTo(Enumerable.Range(0, 50).Select(i => $"/q/{i}")));
        Assert.That(reader.BytesExamined, Is.LessThanOrEqualTo((long)WorkPerByte * wire.Length));
    }

    [Test]
    public void ADifferentBufferStartsAFreshFrame()
    {
        // The same frame object and reader, but the second buffer is another frame: nothing carries over.
        var reader = new StompFrameReader();
        var frame = new StompFrame();
        var first = Sequences.Single("SEND\ndestination:/queue/first\nreceipt:1\n".Bytes());
        Assert.That(reader.TryRead(ref first, frame), Is.False);

        var second = Sequences.Single("SUBSCRIBE\nid:0\ndestination:/topic/second\n\n\0".Bytes());
        Assert.That(reader.TryRead(ref second, frame), Is.True);

        Assert.That(DecodedFrame.Of(frame), Is.EqualTo(DecodedFrame.Expected(StompCommand.Subscribe, [("id", "0"), ("destination", "/topic/second")], [])));
    }

    [Test]
    public void AShorterBufferAtTheSameStartStartsAFreshFrame()
    {
        var wire = "SEND\ndestination:/queue/a\nreceipt:1\n\nbody\0".Bytes();
        var reader = new StompFrameReader();
        var frame = new StompFrame();
        var longer = new ReadOnlySequence<byte>(wire, 0, 30);
        Assert.That(reader.TryRead(ref longer, frame), Is.False);

        var shorter = new ReadOnlySequence<byte>(wire, 0, 10);
        Assert.That(reader.TryRead(ref shorter, frame), Is.False);
        var whole = new ReadOnlySequence<byte>(wire);
        Assert.That(reader.TryRead(ref whole, frame), Is.True);

        Assert.That(frame.HeaderCount, Is.EqualTo(2));
        Assert.That(Encoding.UTF8.GetString(frame.Body.ToArray()), Is.EqualTo("body"));
    }

    [Test]
    public void AfterAnErrorTheSameInputIsReadAgainFromItsStart()
    {
        // A partial frame, then the same frame whole with a bad content-length: the error must come
        // again on a retry, not be skipped over by resuming after the headers that caused it.
        var wire = "SEND\ndestination:/queue/a\ncontent-length:x\nreceipt:1\n\nbody\0".Bytes();
        var reader = new StompFrameReader();
        var frame = new StompFrame();
        var partial = new ReadOnlySequence<byte>(wire, 0, 20);
        Assert.That(reader.TryRead(ref partial, frame), Is.False);

        for (var attempt = 0; attempt < 2; attempt++)
        {
            var whole = new ReadOnlySequence<byte>(wire);
            var e = Assert.Throws<StompProtocolException>(() => reader.TryRead(ref whole, frame), $"attempt {attempt}");
            Assert.That(e!.Message, Does.Contain("invalid content-length"));
        }
    }

    // --- PartialFrameBytes ---------------------------------------------------------------------

    [Test]
    public void PartialFrameBytesIsWhatAnUnfinishedFrameLeavesInTheInput()
    {
        var reader = new StompFrameReader();
        var frame = new StompFrame();
        Assert.That(reader.PartialFrameBytes, Is.Zero, "nothing read yet");

        var partial = Sequences.Single("\n\nSEND\ndestination:/queue/a\n\nhal".Bytes());
        Assert.That(reader.TryRead(ref partial, frame), Is.False);
        Assert.That(reader.PartialFrameBytes, Is.EqualTo(partial.Length).And.EqualTo(30), "the heart-beats before it were consumed");

        var wholeThenPart = Sequences.Split("SEND\ndestination:/queue/a\n\nhallo\0SUBSCRIBE\nid:".Bytes(), 20);
        Assert.That(reader.TryRead(ref wholeThenPart, frame), Is.True);
        Assert.That(reader.PartialFrameBytes, Is.Zero, "a frame was read");
        Assert.That(reader.TryRead(ref wholeThenPart, frame), Is.False);
        Assert.That(reader.PartialFrameBytes, Is.EqualTo("SUBSCRIBE\nid:".Length));

        var whole = Sequences.Single("SUBSCRIBE\nid:0\ndestination:/topic/t\n\n\0\n".Bytes());
        Assert.That(reader.TryRead(ref whole, frame), Is.True);
        Assert.That(reader.TryRead(ref whole, frame), Is.False);
        Assert.That(reader.PartialFrameBytes, Is.Zero, "only a heart-beat followed, and it was consumed");

        var cr = Sequences.Single("\r".Bytes());
        Assert.That(reader.TryRead(ref cr, frame), Is.False);
        Assert.That(reader.PartialFrameBytes, Is.EqualTo(1), "a CR waiting for its LF");
    }

    [Test]
    public void PartialFrameBytesGrowsAsATrickledFrameDoes()
    {
        var reader = new StompFrameReader();
        var frame = new StompFrame();
        var wire = "SEND\ndestination:/queue/a\ncontent-length:100\n\n".Bytes().Concat(new byte[100]).Append((byte)0).ToArray();

        for (var length = 1; length < wire.Length; length++)
        {
            var partial = new ReadOnlySequence<byte>(wire, 0, length);
            Assert.That(reader.TryRead(ref partial, frame), Is.False);
            Assert.That(reader.PartialFrameBytes, Is.EqualTo(length));
        }
    }

    // --- helpers -------------------------------------------------------------------------------

    private sealed record Read(string? Destination, string Body, int HeaderCount);

    private static byte[] Wire(string head, int bodyLength, bool nulsInBody)
    {
        var wire = new byte[Encoding.UTF8.GetByteCount(head) + bodyLength + 1];
        Encoding.UTF8.GetBytes(head, wire);
        var body = wire.AsSpan(wire.Length - 1 - bodyLength, bodyLength);
        for (var i = 0; i < body.Length; i++)
        {
            body[i] = nulsInBody && i % 1000 == 0 ? (byte)0 : (byte)('a' + (i % 26));
        }

        return wire;
    }

    private static void AssertReadBack(List<Read> frames, string head, int bodyLength, bool nulsInBody)
    {
        Assert.That(frames, Has.Count.EqualTo(1));
        var expected = Encoding.UTF8.GetString(Wire("", bodyLength, nulsInBody), 0, bodyLength);
        Assert.That(frames[0].Body == expected, Is.True, "the body reads back");
        Assert.That(frames[0].HeaderCount, Is.EqualTo(head.Count(c => c == '\n') - 2));
    }

    // Writes the wire into a pipe in chunks and runs a read loop after each, as StompSession's does:
    // AdvanceTo(buffer.Start, buffer.End), so an unfinished frame is presented again with more bytes.
    private static List<Read> Trickle(StompFrameReader reader, byte[] wire, Func<int, int> chunkSize, int minimumSegmentSize)
    {
        var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 0, resumeWriterThreshold: 0, minimumSegmentSize: minimumSegmentSize, useSynchronizationContext: false));
        var frame = new StompFrame();
        var frames = new List<Read>();
        var written = 0;
        while (written < wire.Length)
        {
            var size = Math.Min(chunkSize(written), wire.Length - written);
            pipe.Writer.Write(wire.AsSpan(written, size));
            written += size;
            var flushed = pipe.Writer.FlushAsync();
            Assert.That(flushed.IsCompleted, Is.True);

            Assert.That(pipe.Reader.TryRead(out var result), Is.True);
            var buffer = result.Buffer;
            try
            {
                while (reader.TryRead(ref buffer, frame))
                {
                    frames.Add(new Read(frame.GetString(StompHeaders.Destination), Encoding.UTF8.GetString(frame.Body.ToArray()), frame.HeaderCount));
                }
            }
            finally
            {
                pipe.Reader.AdvanceTo(buffer.Start, buffer.End);
            }
        }

        return frames;
    }
}
