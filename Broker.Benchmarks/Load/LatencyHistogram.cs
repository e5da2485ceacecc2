using System.Numerics;

namespace Broker.Benchmarks.Load;

/// <summary>
/// Log-linear latency histogram in microseconds: exact below 256 µs, then 128 buckets per power of two
/// (under 0.8 % error), up to about 19 hours. Recording is one array increment: no allocation, no lock.
/// One histogram per receive loop; <see cref="Add(LatencyHistogram)"/> merges them at the end.
/// </summary>
internal sealed class LatencyHistogram
{
    private const int Linear = 256;
    private const int SubBuckets = 128;
    private const int MaxShift = 29;
    private readonly long[] _counts = new long[Linear + MaxShift * SubBuckets];

    public long Count { get; private set; }

    public long MaxMicroseconds { get; private set; }

    public void Record(long microseconds)
    {
        if (microseconds < 0)
        {
            microseconds = 0;
        }

        _counts[Index(microseconds)]++;
        Count++;
        if (microseconds > MaxMicroseconds)
        {
            MaxMicroseconds = microseconds;
        }
    }

    public void Add(LatencyHistogram other)
    {
        for (var i = 0; i < _counts.Length; i++)
        {
            _counts[i] += other._counts[i];
        }

        Count += other.Count;
        MaxMicroseconds = Math.Max(MaxMicroseconds, other.MaxMicroseconds);
    }

    /// <summary>Nearest-rank percentile in milliseconds (the bucket's upper bound, capped at the maximum seen).</summary>
    public double PercentileMs(double percentile)
    {
        if (Count == 0)
        {
            return double.NaN;
        }

        var rank = Math.Max(1, (long)Math.Ceiling(percentile / 100.0 * Count));
        long seen = 0;
        for (var i = 0; i < _counts.Length; i++)
        {
            seen += _counts[i];
            if (seen >= rank)
            {
                return Math.Min(UpperBound(i), MaxMicroseconds) / 1000.0;
            }
        }

        return MaxMicroseconds / 1000.0;
    }

    public double MaxMs => Count == 0 ? double.NaN : MaxMicroseconds / 1000.0;

    internal static int Index(long value)
    {
        if (value < Linear)
        {
            return (int)value;
        }

        var shift = Math.Min(63 - BitOperations.LeadingZeroCount((ulong)value) - 7, MaxShift);
        var mantissa = Math.Min(value >> shift, 2 * SubBuckets - 1);
        return Linear + (shift - 1) * SubBuckets + (int)(mantissa - SubBuckets);
    }

    internal static long UpperBound(int index)
    {
        if (index < Linear)
        {
            return index;
        }

        var shift = (index - Linear) / SubBuckets + 1;
        var mantissa = (index - Linear) % SubBuckets + SubBuckets;
        return ((mantissa + 1) << shift) - 1;
    }
}
