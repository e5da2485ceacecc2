using Broker.Routing;
using StackExchange.Redis;
using StreamPosition = Broker.Routing.StreamPosition;

namespace Broker.Cluster;

/// <summary>What <see cref="ClusterScripts.ReadTopic"/> answered: a topic's position in Redis and history entries after an offset.</summary>
internal sealed class TopicHistory
{
    private TopicHistory(string epoch, long top, long epochBase, long cutoff, List<Entry> entries)
    {
        Epoch = epoch;
        Top = top;
        Base = epochBase;
        Cutoff = cutoff;
        Entries = entries;
    }

    public string Epoch { get; }

    /// <summary>The offset of the last message published.</summary>
    public long Top { get; }

    /// <summary>The offset the epoch began after.</summary>
    public long Base { get; }

    /// <summary>Redis's time less the history's max age (ms): entries older than this count as gone.</summary>
    public long Cutoff { get; }

    public List<Entry> Entries { get; }

    public StreamPosition Position => new(Epoch, Top);

    /// <summary>True when the entries hold every message after <paramref name="after"/> in this epoch, up to <see cref="Top"/>, none too old.</summary>
    public bool Covers(long after)
    {
        if (after == Top)
        {
            return true;
        }

        if (after > Top || after < Base)
        {
            return false;
        }

        var expected = after + 1;
        foreach (var entry in Entries)
        {
            if (entry.Offset != expected || entry.Time < Cutoff)
            {
                return false;
            }

            expected++;
        }

        return expected == Top + 1;
    }

    public static TopicHistory Parse(RedisResult result)
    {
        var parts = (RedisResult[])result!;
        var epoch = (string)parts[0]!;
        var top = (long)parts[1];
        var epochBase = (long)parts[2];
        var cutoff = (long)parts[3];
        var rows = (RedisResult[])parts[4]!;
        var entries = new List<Entry>(rows.Length);
        foreach (var row in rows)
        {
            var entry = (RedisResult[])row!;
            var id = (string)entry[0]!;
            var fields = (RedisResult[])entry[1]!;
            long time = 0;
            ReadOnlyMemory<byte> payload = default;
            for (var i = 0; i + 1 < fields.Length; i += 2)
            {
                switch ((string?)fields[i])
                {
                    case "t":
                        time = (long)fields[i + 1];
                        break;
                    case "d":
                        payload = (byte[])fields[i + 1]!;
                        break;
                }
            }

            entries.Add(new Entry(long.Parse(id.AsSpan(0, id.IndexOf('-')), System.Globalization.CultureInfo.InvariantCulture), time, payload));
        }

        return new TopicHistory(epoch, top, epochBase, cutoff, entries);
    }

    public readonly record struct Entry(long Offset, long Time, ReadOnlyMemory<byte> Payload);
}
