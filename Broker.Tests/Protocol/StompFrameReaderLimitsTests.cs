using System.Buffers;
using System.Text;
using Broker.Protocol;
using NUnit.Framework;

namespace Broker.Tests.Protocol;

/// <summary>STOMP-CHECKLIST item 12: each limit, just within and just beyond, whole and partial.</summary>
[TestFixture]
public sealed class StompFrameReaderLimitsTests
{
    private static string Repeat(char c, int count) => new(c, count);

    // --- max-headers ---------------------------------------------------------------------------

    [Test]
    public void MaxHeadersAllowsExactlyTheLimit()
    {
        var reader = new StompFrameReader(new StompReaderLimits { MaxHeaders = 3 });

        var frame = reader.ReadOne("SEND\na:1\nb:2\nc:3\n\n\0");

        Assert.That(frame.HeaderCount, Is.EqualTo(3));
    }

    [Test]
    public void MaxHeadersExceededNamesTheLimit()
    {
        var reader = new StompFrameReader(new StompReaderLimits { MaxHeaders = 3 });

        var e = reader.ReadThrows("SEND\na:1\nb:2\nc:3\nd:4\n\n\0");

        Assert.That(e.Limit, Is.EqualTo("max-headers"));
    }

    [Test]
    public void MaxHeadersExceededInAPartialFrameThrowsWithoutWaiting()
    {
        var reader = new StompFrameReader(new StompReaderLimits { MaxHeaders = 3 });
        var buffer = Sequences.Single("SEND\na:1\nb:2\nc:3\nd:4\n".Bytes());

        var e = Assert.Throws<StompProtocolException>(() => reader.TryRead(ref buffer, new StompFrame()));

        Assert.That(e!.Limit, Is.EqualTo("max-headers"));
    }

    // --- max-header-line-length ----------------------------------------------------------------

    [TestCase("\n")]
    [TestCase("\r\n")]
    public void MaxHeaderLineLengthAllowsExactlyTheLimitWhateverTheEol(string eol)
    {
        var reader = new StompFrameReader(new StompReaderLimits { MaxHeaderLineLength = 16 });
        var line = "destination:" + Repeat('q', 4); // 16 bytes

        var frame = reader.ReadOne($"SEND{eol}{line}{eol}{eol}\0");

        Assert.That(frame.GetString(StompHeaders.Destination), Is.EqualTo("qqqq"));
    }

    [TestCase("\n")]
    [TestCase("\r\n")]
    public void MaxHeaderLineLengthExceededByOneNamesTheLimit(string eol)
    {
        var reader = new StompFrameReader(new StompReaderLimits { MaxHeaderLineLength = 16 });
        var line = "destination:" + Repeat('q', 5); // 17 bytes

        var e = reader.ReadThrows($"SEND{eol}{line}{eol}{eol}\0");

        Assert.That(e.Limit, Is.EqualTo("max-header-line-length"));
    }

    [Test]
    public void MaxHeaderLineLengthCountsTheLineBeforeUnescaping()
    {
        var reader = new StompFrameReader(new StompReaderLimits { MaxHeaderLineLength = 16 });

        var e = reader.ReadThrows("SEND\ndestination:\\c\\c\\c\n\n\0"); // 18 bytes on the wire, 15 decoded

        Assert.That(e.Limit, Is.EqualTo("max-header-line-length"));
    }

    [Test]
    public void APartialLineLongerThanTheLimitThrowsWithoutWaiting()
    {
        var reader = new StompFrameReader(new StompReaderLimits { MaxHeaderLineLength = 16 });
        var wire = ("SEND\ndestination:" + Repeat('q', 100)).Bytes();

        foreach (var buffer in new[] { Sequences.Single(wire), Sequences.Split(wire, 7), Sequences.Split(wire, 20, 40) })
        {
            var input = buffer;
            var e = Assert.Throws<StompProtocolException>(() => reader.TryRead(ref input, new StompFrame()));
            Assert.That(e!.Limit, Is.EqualTo("max-header-line-length"));
        }
    }

    [Test]
    public void APartialLineAtTheLimitPlusItsCrWaits()
    {
        var reader = new StompFrameReader(new StompReaderLimits { MaxHeaderLineLength = 16 });
        var buffer = Sequences.Single(("SEND\ndestination:" + Repeat('q', 4) + "\r").Bytes());

        Assert.That(reader.TryRead(ref buffer, new StompFrame()), Is.False, "the CR may be the start of a CR LF");
    }

    [Test]
    public void APartialLineAtTheLimitPlusOneOtherByteThrows()
    {
        var reader = new StompFrameReader(new StompReaderLimits { MaxHeaderLineLength = 16 });
        var buffer = Sequences.Single(("SEND\ndestination:" + Repeat('q', 5)).Bytes());

        var e = Assert.Throws<StompProtocolException>(() => reader.TryRead(ref buffer, new StompFrame()));

        Assert.That(e!.Limit, Is.EqualTo("max-header-line-length"));
    }

    [Test]
    public void TheCommandLineIsALineToo()
    {
        var reader = new StompFrameReader(new StompReaderLimits { MaxHeaderLineLength = 16 });
        var buffer = Sequences.Single(Repeat('X', 40).Bytes());

        var e = Assert.Throws<StompProtocolException>(() => reader.TryRead(ref buffer, new StompFrame()));

        Assert.That(e!.Limit, Is.EqualTo("max-header-line-length"));
    }

    // --- max-frame-size ------------------------------------------------------------------------

    private const string Head = "SEND\ndestination:/q\n\n"; // 21 bytes

    [Test]
    public void MaxFrameSizeAllowsExactlyTheLimitNulIncluded()
    {
        var reader = new StompFrameReader(new StompReaderLimits { MaxFrameSize = 32 });

        var frame = reader.ReadOne(Head + Repeat('b', 10) + "\0"); // 21 + 10 + 1 = 32

        Assert.That(frame.Body.Length, Is.EqualTo(10));
    }

    [Test]
    public void MaxFrameSizeExceededByOneNamesTheLimit()
    {
        var reader = new StompFrameReader(new StompReaderLimits { MaxFrameSize = 32 });

        var e = reader.ReadThrows(Head + Repeat('b', 11) + "\0");

        Assert.That(e.Limit, Is.EqualTo("max-frame-size"));
    }

    [TestCase(0, true)]
    [TestCase(1, false)]
    public void MaxFrameSizeWithContentLengthCountsTheNulsInTheBody(int overLimit, bool allowed)
    {
        const string head = "SEND\ncontent-length:22\n\n";
        var reader = new StompFrameReader(new StompReaderLimits { MaxFrameSize = head.Length + 22 + 1 - overLimit });
        var wire = head + Repeat('\0', 22) + "\0";

        if (allowed)
        {
            Assert.That(reader.ReadOne(wire).Body.Length, Is.EqualTo(22));
        }
        else
        {
            Assert.That(reader.ReadThrows(wire).Limit, Is.EqualTo("max-frame-size"));
        }
    }

    [Test]
    public void ContentLengthBeyondTheLimitThrowsBeforeTheBodyArrives()
    {
        var reader = new StompFrameReader(new StompReaderLimits { MaxFrameSize = 1024 });
        var buffer = Sequences.Single("SEND\ncontent-length:100000\n\nabc".Bytes());

        var e = Assert.Throws<StompProtocolException>(() => reader.TryRead(ref buffer, new StompFrame()));

        Assert.That(e!.Limit, Is.EqualTo("max-frame-size"));
    }

    [Test]
    public void APartialBodyLargerThanTheLimitThrowsRatherThanWaitingForever()
    {
        var reader = new StompFrameReader(new StompReaderLimits { MaxFrameSize = 1024 });
        var wire = (Head + Repeat('b', 2000)).Bytes();

        foreach (var buffer in new[] { Sequences.Single(wire), Sequences.Split(wire, 10), Sequences.Split(wire, 500, 1500) })
        {
            var input = buffer;
            var e = Assert.Throws<StompProtocolException>(() => reader.TryRead(ref input, new StompFrame()));
            Assert.That(e!.Limit, Is.EqualTo("max-frame-size"));
        }
    }

    [Test]
    public void APartialBodyJustBelowTheLimitWaits()
    {
        var reader = new StompFrameReader(new StompReaderLimits { MaxFrameSize = 32 });
        var buffer = Sequences.Single((Head + Repeat('b', 10)).Bytes()); // 31 bytes: the NUL makes 32

        Assert.That(reader.TryRead(ref buffer, new StompFrame()), Is.False);
    }

    [Test]
    public void APartialHeaderSectionLargerThanTheLimitThrowsRatherThanWaitingForever()
    {
        // Every line is within max-header-line-length, and the header count within max-headers,
        // but the frame as a whole already exceeds max-frame-size before its blank line.
        var reader = new StompFrameReader(new StompReaderLimits { MaxFrameSize = 256, MaxHeaderLineLength = 1024 });
        var lines = string.Concat(Enumerable.Range(0, 20).Select(i => $"header-{i:00}:{Repeat('v', 20)}\n"));

        foreach (var wire in new[] { "SEND\n" + lines, "SEND\n" + lines + "partial", "SEND\nx:" + Repeat('v', 500) })
        {
            var bytes = wire.Bytes();
            foreach (var buffer in new[] { Sequences.Single(bytes), Sequences.Split(bytes, bytes.Length / 2) })
            {
                var input = buffer;
                var e = Assert.Throws<StompProtocolException>(() => reader.TryRead(ref input, new StompFrame()), wire);
                Assert.That(e!.Limit, Is.EqualTo("max-frame-size"), wire);
            }
        }
    }

    [Test]
    public void DefaultLimitsAreGenerous()
    {
        var limits = StompReaderLimits.Default;

        Assert.Multiple(() =>
        {
            Assert.That(limits.MaxFrameSize, Is.EqualTo(4 * 1024 * 1024));
            Assert.That(limits.MaxHeaders, Is.EqualTo(64));
            Assert.That(limits.MaxHeaderLineLength, Is.EqualTo(8 * 1024));
        });
    }

    [Test]
    public void OtherErrorsNameNoLimit()
    {
        var e = new StompFrameReader().ReadThrows("NOPE\n\n\0");

        Assert.That(e.Limit, Is.Null);
    }

    [Test]
    public void ALimitErrorMessageNamesTheLimit()
    {
        var reader = new StompFrameReader(new StompReaderLimits { MaxHeaders = 1 });

        var e = reader.ReadThrows("SEND\na:1\nb:2\n\n\0");

        Assert.That(e.Message, Does.Contain("max-headers"));
    }

    [Test]
    public void AFrameWithinLimitsIsReadWhenItArrivesByteByByte()
    {
        var reader = new StompFrameReader(new StompReaderLimits { MaxFrameSize = 64, MaxHeaderLineLength = 24, MaxHeaders = 2 });
        var wire = "SEND\ndestination:/queue/a\nreceipt:1\n\n0123456789\0".Bytes();
        var frame = new StompFrame();

        for (var length = 1; length < wire.Length; length++)
        {
            var partial = new ReadOnlySequence<byte>(wire, 0, length);
            Assert.That(reader.TryRead(ref partial, frame), Is.False, $"{length} bytes");
        }

        var whole = Sequences.Single(wire);
        Assert.That(reader.TryRead(ref whole, frame), Is.True);
        Assert.That(Encoding.UTF8.GetString(frame.Body.ToArray()), Is.EqualTo("0123456789"));
    }
}
