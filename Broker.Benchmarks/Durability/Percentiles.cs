using System.Globalization;

namespace Broker.Benchmarks.Durability;

/// <summary>Latency samples in Stopwatch ticks, summarised in milliseconds.</summary>
internal sealed class Percentiles(string name)
{
    private readonly List<long> _ticks = [];

    public string Name { get; } = name;

    public int Count => _ticks.Count;

    public void Add(long ticks) => _ticks.Add(ticks);

    /// <summary>Nearest-rank percentile, in milliseconds.</summary>
    public double At(double percentile)
    {
        if (_ticks.Count == 0)
        {
            return double.NaN;
        }

        var sorted = _ticks.Order().ToArray();
        var rank = (int)Math.Ceiling(percentile / 100.0 * sorted.Length);
        return Ms(sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)]);
    }

    public double Max => _ticks.Count == 0 ? double.NaN : Ms(_ticks.Max());

    public double Mean => _ticks.Count == 0 ? double.NaN : Ms((long)_ticks.Average());

    public static double Ms(long ticks) => ticks * 1000.0 / System.Diagnostics.Stopwatch.Frequency;

    public static string F(double ms) => ms.ToString("0.000", CultureInfo.InvariantCulture);

    public string Row(string label) =>
        $"| {label} | {Name} | {Count} | {F(At(50))} | {F(At(90))} | {F(At(99))} | {F(Max)} | {F(Mean)} |";

    public const string Header = "| store | measure | n | p50 ms | p90 ms | p99 ms | max ms | mean ms |\n|---|---|--:|--:|--:|--:|--:|--:|";
}
