using System.Buffers;
using System.Text;
using Broker.Protocol;
using NUnit.Framework;

namespace Broker.Tests.Protocol;

/// <summary>STOMP-CHECKLIST items 2 and 5 for the writer, and writer → reader round trips.</summary>
[TestFixture]
public sealed class StompFrameWriterTests
{
    private const string Awkward = "/queue/a:b\nc\\d";

    private static string Write(StompVersion version, Action<StompFrameWriter> write)
    {
        var output = new ArrayBufferWriter<byte>();
        write(new StompFrameWriter(output, version));
        return Encoding.UTF8.GetString(output.WrittenSpan);
    }

    private static DecodedFrame ReadBack(StompVersion version, string wire)
    {
        var frames = new StompFrameReader { Version = version }.ReadAll(wire);
        Assert.That(frames, Has.Count.EqualTo(1), wire);
        return frames[0];
    }

    [Test]
    public void HeartbeatIsASingleLf()
    {
        var output = new ArrayBufferWriter<byte>();

        StompFrameWriter.WriteHeartbeat(output);

        Assert.That(output.WrittenSpan.ToArray(), Is.EqualTo(new[] { (byte)'\n' }));
    }

    [Test]
    public void Version12EscapesColonNewlineCarriageReturnAndBackslash()
    {
        var wire = Write(StompVersion.V12, w => w.Command(StompCommand.Send).Header("dest:x", "a:b\nc\rd\\e"));

        Assert.That(wire, Is.EqualTo("SEND\ndest\\cx:a\\cb\\nc\\rd\\\\e\n"));
    }

    [Test]
    public void Version11EscapesColonNewlineAndBackslashButNotCarriageReturn()
    {
        var wire = Write(StompVersion.V11, w => w.Command(StompCommand.Message).Header("destination"u8, "a:b\nc\\d\re"u8));

        Assert.That(wire, Is.EqualTo("MESSAGE\ndestination:a\\cb\\nc\\\\d\re\n"));
    }

    [Test]
    public void Version10EscapesNothingAndKeepsTheFrameIntact()
    {
        var wire = Write(StompVersion.V10, w => w.Command(StompCommand.Message).Header("destination", Awkward));

        Assert.That(wire, Is.EqualTo("MESSAGE\ndestination:/queue/a:b c\\d\n"), "1.0 cannot carry an EOL in a header: it becomes a space");
    }

    [TestCase(StompVersion.V11)]
    [TestCase(StompVersion.V12)]
    public void ADestinationWithColonNewlineAndBackslashRoundTrips(StompVersion version)
    {
        var wire = Write(version, w =>
        {
            var frame = w.Command(StompCommand.Send);
            frame.Header(StompHeaders.Destination, Awkward);
            frame.End("hi"u8);
        });

        Assert.That(wire, Does.StartWith("SEND\ndestination:/queue/a\\cb\\nc\\\\d\n"));
        Assert.That(ReadBack(version, wire), Is.EqualTo(DecodedFrame.Expected(StompCommand.Send, [("destination", Awkward), ("content-length", "2")], "hi"u8.ToArray())));
    }

    [Test]
    public void Version10DestinationWithColonAndBackslashRoundTrips()
    {
        const string destination = "/queue/a:b\\c";
        var wire = Write(StompVersion.V10, w =>
        {
            var frame = w.Command(StompCommand.Send);
            frame.Header(StompHeaders.Destination, destination);
            frame.EndWithoutBody();
        });

        Assert.That(ReadBack(StompVersion.V10, wire), Is.EqualTo(DecodedFrame.Expected(StompCommand.Send, [("destination", destination)])));
    }

    [TestCase(StompVersion.V10)]
    [TestCase(StompVersion.V11)]
    [TestCase(StompVersion.V12)]
    public void ConnectedAndConnectAreNeverEscaped(StompVersion version)
    {
        var connected = Write(version, w =>
        {
            var frame = w.Command(StompCommand.Connected);
            frame.Header(StompHeaders.Version, "1.2");
            frame.Header(StompHeaders.Session, "a:b\\c");
            frame.EndWithoutBody();
        });
        var connect = Write(version, w =>
        {
            var frame = w.Command(StompCommand.Connect);
            frame.Header(StompHeaders.Passcode, "a:b\\c"u8);
            frame.EndWithoutBody();
        });

        Assert.Multiple(() =>
        {
            Assert.That(connected, Is.EqualTo("CONNECTED\nversion:1.2\nsession:a:b\\c\n\n\0"));
            Assert.That(connect, Is.EqualTo("CONNECT\npasscode:a:b\\c\n\n\0"));
            Assert.That(ReadBack(version, connected), Is.EqualTo(DecodedFrame.Expected(StompCommand.Connected, [("version", "1.2"), ("session", "a:b\\c")])));
            Assert.That(ReadBack(version, connect), Is.EqualTo(DecodedFrame.Expected(StompCommand.Connect, [("passcode", "a:b\\c")])));
        });
    }

    [Test]
    public void ContentLengthIsTheBodysOctetCount()
    {
        var body = "zé\0€\0😀\0"u8.ToArray(); // multi-byte characters and NULs
        var output = new ArrayBufferWriter<byte>();
        var frame = new StompFrameWriter(output, StompVersion.V12).Command(StompCommand.Message);
        frame.Header(StompHeaders.Destination, "/q");
        frame.End(body);

        var read = new StompFrame();
        var buffer = new ReadOnlySequence<byte>(output.WrittenMemory);
        Assert.That(new StompFrameReader().TryRead(ref buffer, read), Is.True);
        Assert.Multiple(() =>
        {
            Assert.That(read.GetString(StompHeaders.ContentLength), Is.EqualTo(body.Length.ToString()));
            Assert.That(read.Body.ToArray(), Is.EqualTo(body));
            Assert.That(output.WrittenSpan[^1], Is.Zero, "the frame ends with the NUL");
            Assert.That(buffer.Length, Is.Zero);
        });
    }

    [Test]
    public void AMultiSegmentBodyIsWrittenWithItsTotalLength()
    {
        var body = Sequences.Split("0123456789\0abc".Bytes(), 3, 3, 9);
        var wire = Write(StompVersion.V12, w => w.Command(StompCommand.Send).End(body));

        Assert.That(wire, Is.EqualTo("SEND\ncontent-length:14\n\n0123456789\0abc\0"));
    }

    [Test]
    public void AnEmptyBodyGetsContentLengthZero()
    {
        var wire = Write(StompVersion.V12, w => w.Command(StompCommand.Error).End(ReadOnlySpan<byte>.Empty));

        Assert.That(wire, Is.EqualTo("ERROR\ncontent-length:0\n\n\0"));
    }

    [Test]
    public void EndWithoutBodyWritesTheBlankLineAndNul()
    {
        var wire = Write(StompVersion.V12, w =>
        {
            var frame = w.Command(StompCommand.Receipt);
            frame.Header(StompHeaders.ReceiptId, "77");
            frame.EndWithoutBody();
        });

        Assert.That(wire, Is.EqualTo("RECEIPT\nreceipt-id:77\n\n\0"));
    }

    [Test]
    public void NumericAndNonAsciiHeaderValues()
    {
        var wire = Write(StompVersion.V12, w =>
        {
            var frame = w.Command(StompCommand.Message);
            frame.Header("message-id"u8, 1234567890123L);
            frame.Header("x-name", "Zoë 😀");
            frame.EndWithoutBody();
        });

        Assert.That(wire, Is.EqualTo("MESSAGE\nmessage-id:1234567890123\nx-name:Zoë 😀\n\n\0"));
    }

    [TestCase(StompVersion.V10)]
    [TestCase(StompVersion.V11)]
    [TestCase(StompVersion.V12)]
    public void EveryFrameTypeRoundTrips(StompVersion version)
    {
        var output = new ArrayBufferWriter<byte>();
        var expected = new List<DecodedFrame>();
        var value = version == StompVersion.V10 ? "v:a\\b" : "v:a\\b\nc";
        foreach (var command in Enum.GetValues<StompCommand>().Where(c => c != StompCommand.Unknown))
        {
            var frame = new StompFrameWriter(output, version).Command(command);
            var escaped = StompCommands.IsEscaped(command, version);
            var headerValue = escaped ? value : "raw:a\\c";
            frame.Header("x-h", headerValue);
            frame.Header("receipt", "r");
            if (StompCommands.MayHaveBody(command))
            {
                frame.End("b\0dy"u8);
                expected.Add(DecodedFrame.Expected(command, [("x-h", headerValue), ("receipt", "r"), ("content-length", "4")], "b\0dy"u8.ToArray()));
            }
            else
            {
                frame.EndWithoutBody();
                expected.Add(DecodedFrame.Expected(command, [("x-h", headerValue), ("receipt", "r")]));
            }

            StompFrameWriter.WriteHeartbeat(output);
        }

        var frames = new StompFrameReader { Version = version }.ReadAll(new ReadOnlySequence<byte>(output.WrittenMemory));

        Assert.That(frames, Is.EqualTo(expected));
    }

    [Test]
    public void WritesCorrectlyIntoAnOutputThatHandsOutTinySpans()
    {
        var tiny = new TinySpanWriter();
        var frame = new StompFrameWriter(tiny, StompVersion.V12).Command(StompCommand.Send);
        frame.Header(StompHeaders.Destination, Awkward);
        frame.Header("x"u8, "y:z"u8);
        frame.End(Enumerable.Range(0, 300).Select(i => (byte)i).ToArray());

        var reference = new ArrayBufferWriter<byte>();
        var same = new StompFrameWriter(reference, StompVersion.V12).Command(StompCommand.Send);
        same.Header(StompHeaders.Destination, Awkward);
        same.Header("x"u8, "y:z"u8);
        same.End(Enumerable.Range(0, 300).Select(i => (byte)i).ToArray());

        Assert.That(tiny.Written.ToArray(), Is.EqualTo(reference.WrittenSpan.ToArray()));
    }

    // An IBufferWriter that gives out no more than it is asked for (at least one byte).
    private sealed class TinySpanWriter : IBufferWriter<byte>
    {
        private byte[] _buffer = new byte[16];
        private int _written;
        private int _handedOut;

        public ReadOnlySpan<byte> Written => _buffer.AsSpan(0, _written);

        public void Advance(int count)
        {
            Assert.That(count, Is.InRange(0, _handedOut), "advanced past the span handed out");
            _written += count;
            _handedOut = 0;
        }

        public Memory<byte> GetMemory(int sizeHint = 0)
        {
            var size = Math.Max(sizeHint, 1);
            if (_buffer.Length - _written < size)
            {
                Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _written + size));
            }

            _handedOut = size;
            return _buffer.AsMemory(_written, size);
        }

        public Span<byte> GetSpan(int sizeHint = 0) => GetMemory(sizeHint).Span;
    }
}
