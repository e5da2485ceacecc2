using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace Broker.Benchmarks.Codec;

/// <summary>The default config plus a throughput column: frame bytes on the wire / mean time per frame.</summary>
internal static class CodecConfig
{
    public static IConfig Create() => DefaultConfig.Instance
        .AddColumn(new FrameBytesColumn(), new ThroughputColumn());

    private static FrameKind KindOf(BenchmarkCase benchmarkCase) =>
        (FrameKind)benchmarkCase.Parameters["Kind"];

    private sealed class FrameBytesColumn : IColumn
    {
        public string Id => nameof(FrameBytesColumn);
        public string ColumnName => "Frame B";
        public bool AlwaysShow => true;
        public ColumnCategory Category => ColumnCategory.Params;
        public int PriorityInCategory => 1;
        public bool IsNumeric => true;
        public UnitType UnitType => UnitType.Size;
        public string Legend => "Bytes of one frame on the wire";
        public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
        public bool IsAvailable(Summary summary) => true;
        public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => CodecFrames.Size(KindOf(benchmarkCase)).ToString();
        public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style) => GetValue(summary, benchmarkCase);
    }

    private sealed class ThroughputColumn : IColumn
    {
        public string Id => nameof(ThroughputColumn);
        public string ColumnName => "MB/s";
        public bool AlwaysShow => true;
        public ColumnCategory Category => ColumnCategory.Custom;
        public int PriorityInCategory => 0;
        public bool IsNumeric => true;
        public UnitType UnitType => UnitType.Dimensionless;
        public string Legend => "Frame bytes / mean time per frame, in 10^6 bytes per second";
        public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
        public bool IsAvailable(Summary summary) => true;

        public string GetValue(Summary summary, BenchmarkCase benchmarkCase)
        {
            var meanNanoseconds = summary[benchmarkCase]?.ResultStatistics?.Mean;
            return meanNanoseconds is > 0
                ? (CodecFrames.Size(KindOf(benchmarkCase)) / meanNanoseconds.Value * 1000).ToString("N0")
                : "-";
        }

        public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style) => GetValue(summary, benchmarkCase);
    }
}
