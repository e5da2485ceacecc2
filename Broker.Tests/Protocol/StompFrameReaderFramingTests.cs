using System.Buffers;
using System.Text;
using Broker.Protocol;
using NUnit.Framework;

namespace Broker.Tests.Protocol;

/// <summary>
/// Every frame type, fed whole, as every truncated prefix, and split at every point into two and
/// three segments (checklist items 1, 5 and 13: a frame may arrive in any number of pieces).
/// </summary>
[TestFixture]
public sealed class StompFrameReaderFramingTests
{
    public sealed record FrameCase(string Name, string Wire, DecodedFrame Expected)
    {
        public byte[] Bytes => Encoding.UTF8.GetBytes(Wire);

        public override string ToString() => Name;
    }

    private static DecodedFrame Frame(StompCommand command, string body, params (string, string)[] headers) =>
        DecodedFrame.Expected(command, headers, Encoding.UTF8.GetBytes(body));

    public static IEnumerable<FrameCase> Frames()
    {
        // CONNECT is never unescaped: the passcode keeps its ':' and '\c' raw.
        yield return new("CONNECT", "CONNECT\naccept-version:1.0,1.1,1.2\nhost:broker\nlogin:guest\npasscode:a:b\\c\nheart-beat:10000,10000\n\n\0",
            Frame(StompCommand.Connect, "", ("accept-version", "1.0,1.1,1.2"), ("host", "broker"), ("login", "guest"), ("passcode", "a:b\\c"), ("heart-beat", "10000,10000")));
        yield return new("STOMP (CR LF)", "STOMP\r\naccept-version:1.2\r\nhost:/\r\n\r\n\0",
            Frame(StompCommand.Stomp, "", ("accept-version", "1.2"), ("host", "/")));
        yield return new("SEND with body", "SEND\ndestination:/queue/a\ncontent-type:text/plain\nreceipt:r-1\n\nhello world\0",
            Frame(StompCommand.Send, "hello world", ("destination", "/queue/a"), ("content-type", "text/plain"), ("receipt", "r-1")));
        yield return new("SEND with content-length and NULs", "SEND\ndestination:/queue/b\ncontent-length:7\n\nab\0cd\0e\0",
            Frame(StompCommand.Send, "ab\0cd\0e", ("destination", "/queue/b"), ("content-length", "7")));
        yield return new("SEND with empty body (content-length 0)", "SEND\ndestination:/queue/c\ncontent-length:0\n\n\0",
            Frame(StompCommand.Send, "", ("destination", "/queue/c"), ("content-length", "0")));
        yield return new("SUBSCRIBE", "SUBSCRIBE\nid:0\ndestination:/topic/x\nack:client-individual\nreceipt:r1\n\n\0",
            Frame(StompCommand.Subscribe, "", ("id", "0"), ("destination", "/topic/x"), ("ack", "client-individual"), ("receipt", "r1")));
        yield return new("UNSUBSCRIBE", "UNSUBSCRIBE\nid:0\n\n\0",
            Frame(StompCommand.Unsubscribe, "", ("id", "0")));
        yield return new("ACK (escaped id)", "ACK\nid:m\\c1\ntransaction:tx1\n\n\0",
            Frame(StompCommand.Ack, "", ("id", "m:1"), ("transaction", "tx1")));
        yield return new("NACK", "NACK\nid:m-2\n\n\0",
            Frame(StompCommand.Nack, "", ("id", "m-2")));
        yield return new("BEGIN", "BEGIN\ntransaction:tx1\n\n\0",
            Frame(StompCommand.Begin, "", ("transaction", "tx1")));
        yield return new("COMMIT", "COMMIT\ntransaction:tx1\nreceipt:c\n\n\0",
            Frame(StompCommand.Commit, "", ("transaction", "tx1"), ("receipt", "c")));
        yield return new("ABORT (CR LF)", "ABORT\r\ntransaction:tx1\r\n\r\n\0",
            Frame(StompCommand.Abort, "", ("transaction", "tx1")));
        yield return new("DISCONNECT", "DISCONNECT\nreceipt:77\n\n\0",
            Frame(StompCommand.Disconnect, "", ("receipt", "77")));
        yield return new("DISCONNECT without headers", "DISCONNECT\n\n\0",
            Frame(StompCommand.Disconnect, ""));
        yield return new("MESSAGE", "MESSAGE\ndestination:/queue/a\nmessage-id:007\nsubscription:0\nack:a1\ncontent-length:5\n\nhello\0",
            Frame(StompCommand.Message, "hello", ("destination", "/queue/a"), ("message-id", "007"), ("subscription", "0"), ("ack", "a1"), ("content-length", "5")));
        yield return new("RECEIPT", "RECEIPT\nreceipt-id:77\n\n\0",
            Frame(StompCommand.Receipt, "", ("receipt-id", "77")));
        yield return new("ERROR", "ERROR\nmessage:bad\\nthing\ncontent-type:text/plain\ncontent-length:12\n\nwhat went on\0",
            Frame(StompCommand.Error, "what went on", ("message", "bad\nthing"), ("content-type", "text/plain"), ("content-length", "12")));
        yield return new("CONNECTED (never unescaped)", "CONNECTED\nversion:1.2\nheart-beat:0,0\nserver:Broker/1.0\nsession:a\\b:c\n\n\0",
            Frame(StompCommand.Connected, "", ("version", "1.2"), ("heart-beat", "0,0"), ("server", "Broker/1.0"), ("session", "a\\b:c")));
    }

    [TestCaseSource(nameof(Frames))]
    public void WholeFrameInOneSegmentDecodes(FrameCase frameCase)
    {
        var buffer = Sequences.Single(frameCase.Bytes);

        var (read, decoded) = Read(ref buffer);

        Assert.Multiple(() =>
        {
            Assert.That(read, Is.True);
            Assert.That(decoded, Is.EqualTo(frameCase.Expected));
            Assert.That(buffer.Length, Is.Zero, "the whole frame is consumed");
        });
    }

    [TestCaseSource(nameof(Frames))]
    public void EveryTruncatedPrefixWaitsForMore(FrameCase frameCase)
    {
        // Leading heart-beats (LF and CR LF) are consumed; the partial frame itself is not.
        var bytes = Encoding.UTF8.GetBytes("\n\r\n\n").Concat(frameCase.Bytes).ToArray();
        for (var length = 0; length < bytes.Length; length++)
        {
            var prefix = bytes[..length];
            var expectedRest = prefix[LeadingHeartbeatBytes(prefix)..];
            foreach (var buffer in new[] { Sequences.Single(prefix), Sequences.Split(prefix, length / 2), Sequences.Split(prefix, length / 3, 2 * length / 3) })
            {
                var input = buffer;
                bool read;
                try
                {
                    read = new StompFrameReader().TryRead(ref input, new StompFrame());
                }
                catch (StompProtocolException e)
                {
                    Assert.Fail($"prefix of {length} bytes threw: {e.Message}");
                    return;
                }

                Assert.That(read, Is.False, $"prefix of {length} bytes");
                Assert.That(input.ToArray(), Is.EqualTo(expectedRest), $"prefix of {length} bytes: only heart-beats are consumed");
            }
        }
    }

    [TestCaseSource(nameof(Frames))]
    public void EveryTwoSegmentSplitDecodesTheSame(FrameCase frameCase)
    {
        var bytes = frameCase.Bytes;
        for (var split = 0; split <= bytes.Length; split++)
        {
            var buffer = Sequences.Split(bytes, split);

            var (read, decoded) = Read(ref buffer);

            Assert.That(read, Is.True, $"split at {split}");
            Assert.That(decoded, Is.EqualTo(frameCase.Expected), $"split at {split}");
            Assert.That(buffer.Length, Is.Zero, $"split at {split}");
        }
    }

    [TestCaseSource(nameof(Frames))]
    public void EveryThreeSegmentSplitDecodesTheSame(FrameCase frameCase)
    {
        var bytes = frameCase.Bytes;
        var reader = new StompFrameReader();
        var frame = new StompFrame();
        for (var first = 0; first <= bytes.Length; first++)
        {
            for (var second = first; second <= bytes.Length; second++)
            {
                var buffer = Sequences.Split(bytes, first, second);

                var read = reader.TryRead(ref buffer, frame);

                if (!read || buffer.Length != 0 || DecodedFrame.Of(frame) != frameCase.Expected)
                {
                    Assert.Fail($"split at {first} and {second}: read {read}, {buffer.Length} bytes left, decoded {(read ? DecodedFrame.Of(frame) : null)}");
                }
            }
        }
    }

    [TestCaseSource(nameof(Frames))]
    public void FrameAfterHeartbeatsAndFollowedByEolsDecodes(FrameCase frameCase)
    {
        var bytes = Encoding.UTF8.GetBytes("\r\n\n\r\n").Concat(frameCase.Bytes).Concat(Encoding.UTF8.GetBytes("\n\r\n\n")).ToArray();
        var buffer = Sequences.Single(bytes);
        var reader = new StompFrameReader();
        var frame = new StompFrame();

        Assert.That(reader.TryRead(ref buffer, frame), Is.True);
        Assert.That(DecodedFrame.Of(frame), Is.EqualTo(frameCase.Expected));
        Assert.That(reader.TryRead(ref buffer, frame), Is.False, "trailing EOLs are heart-beats, not a frame");
        Assert.That(buffer.Length, Is.Zero, "trailing EOLs are consumed");
    }

    private static (bool Read, DecodedFrame? Decoded) Read(ref ReadOnlySequence<byte> buffer)
    {
        var frame = new StompFrame();
        var read = new StompFrameReader().TryRead(ref buffer, frame);
        return (read, read ? DecodedFrame.Of(frame) : null);
    }

    // The number of leading bytes that are whole heart-beat EOLs (LF, or CR LF).
    private static int LeadingHeartbeatBytes(byte[] bytes)
    {
        var i = 0;
        while (true)
        {
            if (i < bytes.Length && bytes[i] == (byte)'\n')
            {
                i++;
            }
            else if (i + 1 < bytes.Length && bytes[i] == (byte)'\r' && bytes[i + 1] == (byte)'\n')
            {
                i += 2;
            }
            else
            {
                return i;
            }
        }
    }
}
