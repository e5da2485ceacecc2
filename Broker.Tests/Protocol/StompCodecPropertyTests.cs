using System.Buffers;
using System.Text;
using Broker.Protocol;
using NUnit.Framework;

namespace Broker.Tests.Protocol;

/// <summary>
/// Random frames written by <see cref="StompFrameWriter"/>, concatenated with heart-beats, split at
/// random points into random segments, must read back identically (fixed seeds: reproducible).
/// </summary>
[TestFixture]
public sealed class StompCodecPropertyTests
{
    // Pieces header text is made of: plain, special to STOMP, whitespace, multi-byte UTF-8.
    private static readonly string[] s_atoms = ["a", "Z", "0", "-", "/", ".", " ", "\t", ":", "\\", "\n", "\r", "é", "€", "😀", "c", "n", "r"];

    private static readonly StompCommand[] s_commands = Enum.GetValues<StompCommand>().Where(c => c != StompCommand.Unknown).ToArray();

    public static IEnumerable<int> Seeds() => Enumerable.Range(1, 200);

    [TestCaseSource(nameof(Seeds))]
    public void RandomFramesSplitAtRandomPointsReadBackIdentically(int seed)
    {
        var random = new Random(seed);
        var version = (StompVersion)random.Next(10, 13);
        var output = new ArrayBufferWriter<byte>();
        var expected = new List<DecodedFrame>();

        var count = random.Next(1, 12);
        for (var f = 0; f < count; f++)
        {
            for (var beats = random.Next(0, 3); beats > 0; beats--)
            {
                StompFrameWriter.WriteHeartbeat(output);
            }

            expected.Add(WriteRandomFrame(random, version, output));
        }

        var bytes = output.WrittenSpan.ToArray();
        for (var attempt = 0; attempt < 5; attempt++)
        {
            var buffer = Sequences.RandomSplit(bytes, random, maxSegments: 2 + (bytes.Length / 8));
            var frames = new StompFrameReader { Version = version }.ReadAll(buffer);
            Assert.That(frames, Is.EqualTo(expected), $"seed {seed}, version {version}, attempt {attempt}");
        }

        // And as a stream arriving in random chunks, each read resuming where the last stopped.
        var reader = new StompFrameReader { Version = version };
        var frame = new StompFrame();
        var streamed = new List<DecodedFrame>();
        var start = 0;
        var end = 0;
        while (end < bytes.Length)
        {
            end = Math.Min(bytes.Length, end + random.Next(1, 64));
            var window = Sequences.RandomSplit(bytes[start..end], random, 4);
            var length = window.Length;
            while (reader.TryRead(ref window, frame))
            {
                streamed.Add(DecodedFrame.Of(frame));
            }

            start += (int)(length - window.Length);
        }

        Assert.That(streamed, Is.EqualTo(expected), $"seed {seed}, streamed");
        Assert.That(start, Is.EqualTo(bytes.Length), "everything consumed");
    }

    private static DecodedFrame WriteRandomFrame(Random random, StompVersion version, IBufferWriter<byte> output)
    {
        var command = s_commands[random.Next(s_commands.Length)];
        var escaped = StompCommands.IsEscaped(command, version);
        var frame = new StompFrameWriter(output, version).Command(command);

        var headers = new List<(string Name, string Value)>();
        for (var h = random.Next(0, 8); h > 0; h--)
        {
            var name = RandomText(random, version, escaped, isName: true);
            var value = RandomText(random, version, escaped, isName: false);
            if (name == "content-length")
            {
                continue;
            }

            headers.Add((name, value));
            if (random.Next(2) == 0)
            {
                frame.Header(name, value);
            }
            else
            {
                frame.Header(Encoding.UTF8.GetBytes(name), Encoding.UTF8.GetBytes(value));
            }
        }

        var body = Array.Empty<byte>();
        if (StompCommands.MayHaveBody(command) || random.Next(4) == 0)
        {
            body = StompCommands.MayHaveBody(command) ? new byte[random.Next(0, random.Next(2) == 0 ? 16 : 3000)] : [];
            random.NextBytes(body);
            if (random.Next(2) == 0)
            {
                frame.End(body);
            }
            else
            {
                frame.End(Sequences.RandomSplit(body, random, 4));
            }

            headers.Add(("content-length", body.Length.ToString()));
        }
        else
        {
            frame.EndWithoutBody();
        }

        return DecodedFrame.Expected(command, headers, body);
    }

    // Text that the version can carry losslessly: unescaped headers (1.0, CONNECT, CONNECTED) can
    // hold no EOL, and their names no ':'; 1.1 has no escape for CR, and a raw CR before the LF
    // would be read as part of a CR LF EOL.
    private static string RandomText(Random random, StompVersion version, bool escaped, bool isName)
    {
        var text = new StringBuilder();
        for (var n = random.Next(isName ? 1 : 0, 12); n > 0; n--)
        {
            var atom = s_atoms[random.Next(s_atoms.Length)];
            var allowed = atom switch
            {
                "\n" => escaped,
                "\r" => escaped && version == StompVersion.V12,
                ":" => escaped || !isName,
                _ => true,
            };
            if (allowed)
            {
                text.Append(atom);
            }
        }

        return text.ToString();
    }
}
