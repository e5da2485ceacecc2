using Microsoft.Extensions.Logging;

namespace Broker.Resources;

internal static partial class Log
{
    [LoggerMessage(400, LogLevel.Warning, "Memory held for clients ({Used} bytes) reached the limit ({Limit} bytes): publishers are flow-controlled until it falls below the low watermark ({Components})")]
    public static partial void AboveHighWatermark(ILogger logger, long used, long limit, string components);

    [LoggerMessage(401, LogLevel.Information, "Memory held for clients ({Used} bytes) and the process's memory ({Process} bytes resident; 0: not sampled) are below the low watermark ({LowWatermark} bytes): {Blocked} flow-controlled publishers resume")]
    public static partial void BelowLowWatermark(ILogger logger, long used, long process, long lowWatermark, int blocked);

    [LoggerMessage(402, LogLevel.Information, "Memory above its limit: {Bytes} bytes of topic replay history given up (resumed subscriptions are told recovered:false)")]
    public static partial void Reclaimed(ILogger logger, long bytes);

    [LoggerMessage(403, LogLevel.Warning, "The process's memory ({Process} bytes resident) reached the memory limit ({Limit} bytes): publishers are flow-controlled until it falls below the low watermark (held for clients: {Used} bytes, {Components})")]
    public static partial void ProcessAboveHighWatermark(ILogger logger, long process, long limit, long used, string components);

    [LoggerMessage(404, LogLevel.Debug, "The process's memory at the limit: a full collection took its resident memory from {Before} to {After} bytes")]
    public static partial void Collected(ILogger logger, long before, long after);

    [LoggerMessage(405, LogLevel.Warning, "The process already uses {Process} bytes at start, above the memory limit's low watermark (Broker:MemoryLimit {Limit} bytes): publishers will be flow-controlled until it is raised (or Broker:MemoryCalculation=Budget)")]
    public static partial void ProcessAboveLimitAtStart(ILogger logger, long process, long limit);

    [LoggerMessage(406, LogLevel.Information, "Idle compaction after {QuietMs} ms without frames: {Returned} bytes given back (working set {WorkingSetBefore} -> {WorkingSetAfter}, GC committed {CommittedBefore} -> {CommittedAfter}, heap holes {FragmentedBefore} -> {FragmentedAfter}); pause {PauseMs:F1} ms")]
    public static partial void IdleCompacted(ILogger logger, long quietMs, long returned, long workingSetBefore, long workingSetAfter, long committedBefore, long committedAfter, long fragmentedBefore, long fragmentedAfter, double pauseMs);

    [LoggerMessage(407, LogLevel.Error, "Idle compaction failed")]
    public static partial void IdleCompactionFailed(ILogger logger, Exception exception);

    [LoggerMessage(408, LogLevel.Debug, "Idle compaction not needed after {QuietMs} ms without frames: the GC keeps {ReclaimableBytes} of its {CommittedBytes} committed bytes beyond the live objects ({FragmentedBytes} in holes); at least {MinReclaimableBytes}, and a tenth, wanted")]
    public static partial void IdleCompactionSkipped(ILogger logger, long quietMs, long reclaimableBytes, long committedBytes, long fragmentedBytes, long minReclaimableBytes);

    [LoggerMessage(409, LogLevel.Error, "Sampling the process's memory failed; the last sample stands")]
    public static partial void ProcessSampleFailed(ILogger logger, Exception exception);
}
