using System.Text;
using Broker.Protocol;
using NUnit.Framework;

namespace Broker.Tests.Protocol;

/// <summary>
/// Issue 11 item 6: before CONNECTED the reader enforces max-frame-size-before-connect, and a frame that
/// may not have a body (CONNECT above all) is refused at its first body byte, not after reading it.
/// </summary>
[TestFixture]
public sealed class StompFrameReaderBeforeConnectTests
{
    private static readonly StompReaderLimits s_limits = new() { MaxFrameSize = 4096, MaxFrameSizeBeforeConnect = 64, MaxHeaderLineLength = 1024 };

    private static string Repeat(char c, int count) => new(c, count);

    // 64 bytes in all: "CONNECT\n" (8) + "login:" (6) + 47 + "\n\n" (2) + NUL (1).
    private static readonly string s_connectAtTheLimit = "CONNECT\nlogin:" + Repeat('u', 47) + "\n\n\0";

    [Test]
    public void AFrameAtTheLimitIsRead()
    {
        Assert.That(s_connectAtTheLimit.Bytes(), Has.Length.EqualTo(64));

        var frame = new StompFrameReader(s_limits).ReadOne(s_connectAtTheLimit);

        Assert.That(frame.GetString(StompHeaders.Login), Has.Length.EqualTo(47));
    }

    [Test]
    public void AFrameOneByteOverTheLimitIsRefusedNamingIt()
    {
        var wire = "CONNECT\nlogin:" + Repeat('u', 48) + "\n\n\0";

        var e = new StompFrameReader(s_limits).ReadThrows(wire);

        Assert.That(e.Limit, Is.EqualTo("max-frame-size-before-connect"));
        Assert.That(e.Message, Does.Contain("max-frame-size-before-connect"));
    }

    [Test]
    public void APartialHeaderSectionAtTheLimitIsRefusedWithoutWaiting()
    {
        var reader = new StompFrameReader(s_limits);
        var buffer = Sequences.Single(("CONNECT\na:" + Repeat('v', 100)).Bytes());

        var e = Assert.Throws<StompProtocolException>(() => reader.TryRead(ref buffer, new StompFrame()));

        Assert.That(e!.Limit, Is.EqualTo("max-frame-size-before-connect"));
    }

    [Test]
    public void AHeaderSectionTrickledByteByByteIsRefusedWhenItReachesTheLimit()
    {
        var reader = new StompFrameReader(s_limits);
        var wire = ("CONNECT\n" + string.Concat(Enumerable.Range(0, 20).Select(i => $"h{i}:v\n"))).Bytes();
        var frame = new StompFrame();

        for (var length = 1; length < 64; length++)
        {
            var partial = new System.Buffers.ReadOnlySequence<byte>(wire, 0, length);
            Assert.That(reader.TryRead(ref partial, frame), Is.False, $"{length} bytes");
        }

        var atLimit = new System.Buffers.ReadOnlySequence<byte>(wire, 0, 64);
        var e = Assert.Throws<StompProtocolException>(() => reader.TryRead(ref atLimit, frame));
        Assert.That(e!.Limit, Is.EqualTo("max-frame-size-before-connect"));
    }

    [Test]
    public void AContentLengthOverTheLimitIsRefusedBeforeTheBodyArrives()
    {
        var reader = new StompFrameReader(s_limits);
        var buffer = Sequences.Single("SEND\ncontent-length:100\n\n".Bytes());

        var e = Assert.Throws<StompProtocolException>(() => reader.TryRead(ref buffer, new StompFrame()));

        Assert.That(e!.Limit, Is.EqualTo("max-frame-size-before-connect"));
    }

    [Test]
    public void AfterConnectedTheFullLimitApplies()
    {
        var reader = new StompFrameReader(s_limits);
        Assert.That(reader.ReadOne(s_connectAtTheLimit).Command, Is.EqualTo(StompCommand.Connect));

        reader.Connected();
        var frame = reader.ReadOne("SEND\ndestination:/queue/a\n\n" + Repeat('b', 4000) + "\0");

        Assert.That(frame.Body.Length, Is.EqualTo(4000));
        Assert.That(reader.ReadThrows("SEND\ndestination:/queue/a\n\n" + Repeat('b', 4096) + "\0").Limit, Is.EqualTo("max-frame-size"));
    }

    [Test]
    public void ABeforeConnectLimitNoSmallerThanTheFrameLimitChangesNothing()
    {
        var reader = new StompFrameReader(new StompReaderLimits { MaxFrameSize = 64, MaxFrameSizeBeforeConnect = 1000 });

        var e = reader.ReadThrows("CONNECT\nlogin:" + Repeat('u', 48) + "\n\n\0");

        Assert.That(e.Limit, Is.EqualTo("max-frame-size"));
    }

    [Test]
    public void WithoutABeforeConnectLimitOnlyTheFrameLimitApplies()
    {
        // A client reading a server has no CONNECT phase: its reader is built without the limit.
        var reader = new StompFrameReader(new StompReaderLimits { MaxFrameSize = 1024 * 1024 });

        var frame = reader.ReadOne("MESSAGE\nsubscription:0\n\n" + Repeat('m', 200_000) + "\0");

        Assert.That(frame.Body.Length, Is.EqualTo(200_000));
    }

    // --- frames that may not have a body ----------------------------------------------------------

    [TestCase("CONNECT\naccept-version:1.2\nhost:/\n\n")]
    [TestCase("STOMP\r\naccept-version:1.2\r\n\r\n")]
    [TestCase("SUBSCRIBE\nid:0\ndestination:/topic/a\n\n")]
    [TestCase("DISCONNECT\n\n")]
    public void ABodyIsRefusedAtItsFirstByte(string head)
    {
        var reader = new StompFrameReader(StompReaderLimits.Default);
        var bytes = (head + "x").Bytes();

        foreach (var buffer in new[] { Sequences.Single(bytes), Sequences.Split(bytes, bytes.Length - 1), Sequences.Split(bytes, head.Length / 2, bytes.Length - 1) })
        {
            var input = buffer;
            var e = Assert.Throws<StompProtocolException>(() => reader.TryRead(ref input, new StompFrame()));
            Assert.That(e!.Message, Does.Contain("must not have a body"));
        }
    }

    [Test]
    public void ABodylessFrameWaitsForItsNulAfterTheBlankLine()
    {
        var reader = new StompFrameReader(StompReaderLimits.Default);
        var frame = new StompFrame();
        var wire = "CONNECT\naccept-version:1.2\n\n\0".Bytes();

        var head = new System.Buffers.ReadOnlySequence<byte>(wire, 0, wire.Length - 1);
        Assert.That(reader.TryRead(ref head, frame), Is.False);

        var whole = Sequences.Single(wire);
        Assert.That(reader.TryRead(ref whole, frame), Is.True);
        Assert.That(frame.Command, Is.EqualTo(StompCommand.Connect));
    }

    [Test]
    public void AContentLengthOnABodylessFrameIsRefusedBeforeItsBody()
    {
        var reader = new StompFrameReader(StompReaderLimits.Default);
        var buffer = Sequences.Single("CONNECT\naccept-version:1.2\ncontent-length:2097152\n\n".Bytes());

        var e = Assert.Throws<StompProtocolException>(() => reader.TryRead(ref buffer, new StompFrame()));

        Assert.That(e!.Message, Does.Contain("must not have a body"));
    }

    [Test]
    public void AZeroContentLengthOnABodylessFrameIsFine()
    {
        var frame = new StompFrameReader().ReadOne("CONNECT\naccept-version:1.2\ncontent-length:0\n\n\0");

        Assert.That(frame.Body.Length, Is.Zero);
    }

    [Test]
    public void TheBodyRuleWorksWhateverTheSplitWithTheBeforeConnectLimit()
    {
        var reader = new StompFrameReader(new StompReaderLimits { MaxFrameSizeBeforeConnect = 64 * 1024 });
        var wire = "CONNECT\naccept-version:1.2\nhost:/\n\n" + Repeat('b', 2000);

        var e = reader.ReadThrows(wire);

        Assert.That(e.Message, Does.Contain("CONNECT frames must not have a body"));
        Assert.That(Encoding.UTF8.GetByteCount(wire), Is.LessThan(64 * 1024), "the body rule, not the size limit, refused it");
    }
}
