using System.Buffers;

namespace Broker.Tests.Protocol;

/// <summary>Builds multi-segment <see cref="ReadOnlySequence{T}"/>s, as a pipe hands them out.</summary>
internal static class Sequences
{
    public static ReadOnlySequence<byte> Single(byte[] bytes) => new(bytes);

    /// <summary>Splits <paramref name="bytes"/> at the given offsets (ascending; equal offsets make empty segments).</summary>
    public static ReadOnlySequence<byte> Split(byte[] bytes, params int[] offsets)
    {
        if (offsets.Length == 0)
        {
            return new ReadOnlySequence<byte>(bytes);
        }

        // Copy each piece into its own array, with a guard byte either side, so that no
        // segment can be read past its end by accident.
        Segment? first = null;
        Segment? last = null;
        var start = 0;
        foreach (var end in offsets.Append(bytes.Length))
        {
            var piece = new byte[end - start + 2];
            piece[0] = 0xEE;
            piece[^1] = 0xEE;
            bytes.AsSpan(start, end - start).CopyTo(piece.AsSpan(1));
            var memory = piece.AsMemory(1, end - start);
            if (first is null)
            {
                first = last = new Segment(memory, 0);
            }
            else
            {
                last = last!.Append(memory);
            }

            start = end;
        }

        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    /// <summary>Splits <paramref name="bytes"/> into random segments (some empty).</summary>
    public static ReadOnlySequence<byte> RandomSplit(byte[] bytes, Random random, int maxSegments)
    {
        var count = random.Next(0, maxSegments);
        var offsets = new int[count];
        for (var i = 0; i < count; i++)
        {
            offsets[i] = random.Next(0, bytes.Length + 1);
        }

        Array.Sort(offsets);
        return Split(bytes, offsets);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
