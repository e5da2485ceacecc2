using System.Buffers;
using System.Text;
using Broker.Protocol;
using NUnit.Framework;

namespace Broker.Tests.Protocol;

/// <summary>STOMP-CHECKLIST items 1–5 for the reader.</summary>
[TestFixture]
public sealed class StompFrameReaderTests
{
    private static DecodedFrame Frame(StompCommand command, string body, params (string, string)[] headers) =>
        DecodedFrame.Expected(command, headers, Encoding.UTF8.GetBytes(body));

    // --- 1. Line endings, heart-beats, streams of frames -------------------------------------

    [Test]
    public void ManyFramesInOneBufferWithHeartbeatsBetweenBeforeAndAfter()
    {
        const string wire =
            "\n\r\n" +
            "SEND\ndestination:/q/1\n\none\0" +
            "SEND\r\ndestination:/q/2\r\ncontent-length:3\r\n\r\nt\0o\0\n\n\r\n" +
            "\r\n" +
            "SUBSCRIBE\nid:1\ndestination:/q/1\n\n\0\n" +
            "DISCONNECT\nreceipt:9\n\n\0\r\n\r\n\n";

        var frames = new StompFrameReader().ReadAll(wire);

        Assert.That(frames, Is.EqualTo(new[]
        {
            Frame(StompCommand.Send, "one", ("destination", "/q/1")),
            Frame(StompCommand.Send, "t\0o", ("destination", "/q/2"), ("content-length", "3")),
            Frame(StompCommand.Subscribe, "", ("id", "1"), ("destination", "/q/1")),
            Frame(StompCommand.Disconnect, "", ("receipt", "9")),
        }));
    }

    [Test]
    public void ManyFramesSplitAtEveryPointReadTheSame()
    {
        var wire = ("\nSEND\ndestination:/q/1\n\none\0\r\nMESSAGE\nsubscription:0\ncontent-length:2\n\n\0\0\0\n" +
                    "ACK\nid:7\n\n\0\n\nERROR\nmessage:x\n\nboom\0").Bytes();
        var expected = new StompFrameReader().ReadAll(Sequences.Single(wire));
        Assert.That(expected, Has.Count.EqualTo(4));

        for (var first = 0; first <= wire.Length; first++)
        {
            for (var second = first; second <= wire.Length; second += 3)
            {
                var frames = new StompFrameReader().ReadAll(Sequences.Split(wire, first, second));
                Assert.That(frames, Is.EqualTo(expected), $"split at {first} and {second}");
            }
        }
    }

    [TestCase("\n")]
    [TestCase("\r\n")]
    [TestCase("\n\r\n\n\r\n\r\n")]
    public void HeartbeatsAloneAreConsumedAndYieldNoFrame(string heartbeats)
    {
        var buffer = Sequences.Single(heartbeats.Bytes());

        Assert.That(new StompFrameReader().TryRead(ref buffer, new StompFrame()), Is.False);
        Assert.That(buffer.Length, Is.Zero);
    }

    [Test]
    public void ACrWithoutItsLfYetIsKept()
    {
        var buffer = Sequences.Single("\n\r".Bytes());

        Assert.That(new StompFrameReader().TryRead(ref buffer, new StompFrame()), Is.False);
        Assert.That(buffer.ToArray(), Is.EqualTo("\r".Bytes()));
    }

    [Test]
    public void ACrHeartbeatNotFollowedByLfIsAnError()
    {
        var e = new StompFrameReader().ReadThrows("\rSEND\n\n\0");

        Assert.That(e.Limit, Is.Null);
    }

    [Test]
    public void LfAndCrLfLineEndingsMayMixInOneFrame()
    {
        var frame = new StompFrameReader().ReadOne("SEND\r\ndestination:/q\nreceipt:1\r\nx:y\n\r\nbody\r\n\0");

        Assert.That(DecodedFrame.Of(frame), Is.EqualTo(Frame(StompCommand.Send, "body\r\n", ("destination", "/q"), ("receipt", "1"), ("x", "y"))),
            "EOLs end header lines; the body is octets, CR LF included");
    }

    // --- 2. Header escaping --------------------------------------------------------------------

    [Test]
    public void Version12DecodesAllFourEscapesInNamesAndValues()
    {
        var reader = new StompFrameReader { Version = StompVersion.V12 };

        var frame = reader.ReadOne("SEND\nde\\cst\\\\:a\\r\\n\\c\\\\b\n\n\0");

        Assert.That(DecodedFrame.Of(frame), Is.EqualTo(Frame(StompCommand.Send, "", ("de:st\\", "a\r\n:\\b"))));
    }

    [Test]
    public void Version11DecodesNewlineColonAndBackslash()
    {
        var reader = new StompFrameReader { Version = StompVersion.V11 };

        var frame = reader.ReadOne("MESSAGE\nk\\c:a\\nb\\cc\\\\d\n\n\0");

        Assert.That(DecodedFrame.Of(frame), Is.EqualTo(Frame(StompCommand.Message, "", ("k:", "a\nb:c\\d"))));
    }

    [Test]
    public void Version11HasNoCarriageReturnEscape()
    {
        var reader = new StompFrameReader { Version = StompVersion.V11 };

        var e = reader.ReadThrows("SEND\ndestination:a\\rb\n\n\0");

        Assert.That(e.Message, Does.Contain("escape"));
    }

    [Test]
    public void Version10DecodesNothing()
    {
        var reader = new StompFrameReader { Version = StompVersion.V10 };

        var frame = reader.ReadOne("SEND\ndestination:a\\nb\\cc\\\\d\\re\\tf\\\n\n\0");

        Assert.That(frame.GetString(StompHeaders.Destination), Is.EqualTo("a\\nb\\cc\\\\d\\re\\tf\\"));
    }

    [TestCase(StompVersion.V11, "SEND\ndestination:a\\tb\n\n\0")]
    [TestCase(StompVersion.V12, "SEND\ndestination:a\\tb\n\n\0")]
    [TestCase(StompVersion.V12, "SEND\ndes\\tination:ab\n\n\0")]
    [TestCase(StompVersion.V12, "SEND\ndestination:a\\\n\n\0")]
    [TestCase(StompVersion.V12, "SEND\ndestination:\\C\n\n\0")]
    [TestCase(StompVersion.V11, "ACK\nid:\\x\n\n\0")]
    public void AnUndefinedEscapeIsAFatalError(StompVersion version, string wire)
    {
        var e = new StompFrameReader { Version = version }.ReadThrows(wire);

        Assert.That(e.Limit, Is.Null);
    }

    [TestCase(StompVersion.V10)]
    [TestCase(StompVersion.V11)]
    [TestCase(StompVersion.V12)]
    public void ConnectStompAndConnectedAreNeverUnescaped(StompVersion version)
    {
        var reader = new StompFrameReader { Version = version };

        var connect = DecodedFrame.Of(reader.ReadOne("CONNECT\nlogin:u\\n\npasscode:a:b\\c\\t\n\n\0"));
        var stomp = DecodedFrame.Of(reader.ReadOne("STOMP\npasscode:a:b\\c\n\n\0"));
        var connected = DecodedFrame.Of(reader.ReadOne("CONNECTED\nsession:s\\c1\\r\n\n\0"));

        Assert.Multiple(() =>
        {
            Assert.That(connect, Is.EqualTo(Frame(StompCommand.Connect, "", ("login", "u\\n"), ("passcode", "a:b\\c\\t"))));
            Assert.That(stomp, Is.EqualTo(Frame(StompCommand.Stomp, "", ("passcode", "a:b\\c"))));
            Assert.That(connected, Is.EqualTo(Frame(StompCommand.Connected, "", ("session", "s\\c1\\r"))));
        });
    }

    [Test]
    public void AValueMayContainRawColons()
    {
        var frame = new StompFrameReader().ReadOne("SEND\ndestination:a:b::c\n\n\0");

        Assert.That(frame.GetString(StompHeaders.Destination), Is.EqualTo("a:b::c"), "only the first ':' separates name and value");
    }

    // --- 3. Whitespace -------------------------------------------------------------------------

    [Test]
    public void WhitespaceInNamesAndValuesIsPreserved()
    {
        var frame = new StompFrameReader().ReadOne("SEND\ndestination: /q \n key\t:\t two  words \nempty:\nspaces:   \n\n\0");

        Assert.That(DecodedFrame.Of(frame), Is.EqualTo(Frame(StompCommand.Send, "",
            ("destination", " /q "), (" key\t", "\t two  words "), ("empty", ""), ("spaces", "   "))));
    }

    // --- 4. Repeated headers -------------------------------------------------------------------

    [Test]
    public void RepeatedHeaderFirstOccurrenceWins()
    {
        var frame = new StompFrameReader().ReadOne("MESSAGE\nfoo:World\nfoo:Hello\ndestination:/a\ndestination:/b\n\n\0");

        Assert.Multiple(() =>
        {
            Assert.That(frame.GetString("foo"u8), Is.EqualTo("World"));
            Assert.That(frame.GetString(StompHeaders.Destination), Is.EqualTo("/a"));
            Assert.That(frame.TryGetHeader("foo"u8, out var value), Is.True);
            Assert.That(Encoding.UTF8.GetString(value), Is.EqualTo("World"));
            Assert.That(frame.HeaderCount, Is.EqualTo(4), "all occurrences are kept, in order");
            Assert.That(Encoding.UTF8.GetString(frame.HeaderValue(1)), Is.EqualTo("Hello"));
            Assert.That(frame.GetString("missing"u8), Is.Null);
        });
    }

    [Test]
    public void RepeatedContentLengthFirstOccurrenceWins()
    {
        var frame = new StompFrameReader().ReadOne("SEND\ncontent-length:3\ncontent-length:1\n\na\0b\0");

        Assert.That(frame.Body.ToArray(), Is.EqualTo("a\0b".Bytes()));
    }

    [Test]
    public void EscapedHeaderNamesAreComparedDecoded()
    {
        var frame = new StompFrameReader().ReadOne("SEND\na\\cb:1\na:b:2\n\n\0");

        Assert.That(frame.GetString("a:b"u8), Is.EqualTo("1"));
    }

    // --- 5. content-length and bodies ----------------------------------------------------------

    [Test]
    public void ContentLengthReadsExactlyThatManyOctetsNulsIncluded()
    {
        var body = new byte[] { 0, 0, 1, 0, 255, 0, 0 };
        var wire = "SEND\ndestination:/q\ncontent-length:7\n\n".Bytes().Concat(body).Concat(new byte[] { 0 }).ToArray();
        var buffer = Sequences.Single(wire);
        var frame = new StompFrame();

        Assert.That(new StompFrameReader().TryRead(ref buffer, frame), Is.True);
        Assert.That(frame.Body.ToArray(), Is.EqualTo(body));
    }

    [Test]
    public void WithoutContentLengthTheBodyEndsAtTheFirstNul()
    {
        var frames = new StompFrameReader().ReadAll("SEND\n\nab\0");

        Assert.That(frames, Is.EqualTo(new[] { Frame(StompCommand.Send, "ab") }));
    }

    [TestCase("SEND\ncontent-length:3\n\nabcd\0")]
    [TestCase("SEND\ncontent-length:0\n\na\0")]
    [TestCase("SEND\ncontent-length:2\n\nabc\0SEND\n\n\0")]
    public void ContentLengthNotFollowedByNulIsAnError(string wire)
    {
        var e = new StompFrameReader().ReadThrows(wire);

        Assert.That(e.Message, Does.Contain("content-length"));
    }

    [Test]
    public void ContentLengthLongerThanTheBufferWaits()
    {
        var buffer = Sequences.Single("SEND\ncontent-length:5\n\nab\0".Bytes());

        Assert.That(new StompFrameReader().TryRead(ref buffer, new StompFrame()), Is.False, "the NUL is part of the body");
    }

    [TestCase("abc")]
    [TestCase("-1")]
    [TestCase("1.5")]
    [TestCase(" 3")]
    [TestCase("3 ")]
    [TestCase("3a")]
    [TestCase("")]
    [TestCase("0x3")]
    [TestCase("99999999999999999999999")]
    public void InvalidContentLengthIsAnError(string contentLength)
    {
        var e = new StompFrameReader().ReadThrows($"SEND\ncontent-length:{contentLength}\n\nabc\0");

        Assert.That(e.Message, Does.Contain("content-length"));
    }

    [TestCase("CONNECT")]
    [TestCase("STOMP")]
    [TestCase("CONNECTED")]
    [TestCase("SUBSCRIBE")]
    [TestCase("UNSUBSCRIBE")]
    [TestCase("ACK")]
    [TestCase("NACK")]
    [TestCase("BEGIN")]
    [TestCase("COMMIT")]
    [TestCase("ABORT")]
    [TestCase("DISCONNECT")]
    [TestCase("RECEIPT")]
    public void ABodyOnAFrameThatMustNotHaveOneIsAnError(string command)
    {
        var reader = new StompFrameReader();

        var withoutLength = reader.ReadThrows($"{command}\nx:y\n\nbody\0");
        var withLength = reader.ReadThrows($"{command}\ncontent-length:2\n\n\0\0\0");

        Assert.That(withoutLength.Message, Does.Contain("body"));
        Assert.That(withLength.Message, Does.Contain("body"));
        Assert.That(DecodedFrame.Of(reader.ReadOne($"{command}\ncontent-length:0\n\n\0")).Body, Is.Empty, "an empty body is no body");
    }

    [TestCase("SEND")]
    [TestCase("MESSAGE")]
    [TestCase("ERROR")]
    public void SendMessageAndErrorMayHaveABody(string command)
    {
        var frame = new StompFrameReader().ReadOne($"{command}\n\nbody\0");

        Assert.That(frame.Body.ToArray(), Is.EqualTo("body".Bytes()));
    }

    // --- Malformed frames ----------------------------------------------------------------------

    [TestCase("FOO\n\n\0")]
    [TestCase("send\n\n\0")]
    [TestCase("SEND \n\n\0")]
    [TestCase(" SEND\n\n\0")]
    [TestCase("SENDX\n\n\0")]
    [TestCase("CONNECTEDX\n\n\0")]
    [TestCase("\0\n\n\0")]
    [TestCase("SEND\r\r\n\n\0")]
    public void UnknownCommandIsAnError(string wire)
    {
        var e = new StompFrameReader().ReadThrows(wire);

        Assert.That(e.Message, Does.Contain("command"));
        Assert.That(e.Limit, Is.Null);
    }

    [TestCase("SEND\ndestination\n\n\0")]
    [TestCase("SEND\ndestination:/q\nno-colon-here\n\n\0")]
    [TestCase("SEND\n \n\n\0")]
    public void HeaderWithoutColonIsAnError(string wire)
    {
        var e = new StompFrameReader().ReadThrows(wire);

        Assert.That(e.Message, Does.Contain("':'"));
    }

    [Test]
    public void HeaderWithEmptyNameIsKept()
    {
        var frame = new StompFrameReader().ReadOne("SEND\n:v\n\n\0");

        Assert.That(DecodedFrame.Of(frame), Is.EqualTo(Frame(StompCommand.Send, "", ("", "v"))));
    }

    [Test]
    public void TheFrameInstanceIsReusedAndFullyRefilled()
    {
        var reader = new StompFrameReader();
        var buffer = Sequences.Single("SEND\na:1\nb:2\ncontent-length:1\n\nx\0ACK\nid:3\n\n\0".Bytes());
        var frame = new StompFrame();

        Assert.That(reader.TryRead(ref buffer, frame), Is.True);
        Assert.That(reader.TryRead(ref buffer, frame), Is.True);

        Assert.That(DecodedFrame.Of(frame), Is.EqualTo(Frame(StompCommand.Ack, "", ("id", "3"))));
    }

    [Test]
    public void ManyAndLongHeadersWithinLimitsAreRead()
    {
        var headers = Enumerable.Range(0, 40).Select(i => ($"h{i}", new string((char)('a' + (i % 26)), 300 + i))).ToArray();
        var wire = "SEND\n" + string.Concat(headers.Select(h => $"{h.Item1}:{h.Item2}\n")) + "\n\0";

        var frame = new StompFrameReader().ReadOne(wire);

        Assert.That(DecodedFrame.Of(frame), Is.EqualTo(Frame(StompCommand.Send, "", headers)));
    }
}
