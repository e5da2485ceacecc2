using Microsoft.Extensions.Logging;

namespace Broker.Resources;

internal static partial class Log
{
    [LoggerMessage(400, LogLevel.Warning, "Memory held for clients ({Used} bytes) reached the limit ({Limit} bytes): publishers are flow-controlled until it falls below the low watermark ({Components})")]
    public static partial void AboveHighWatermark(ILogger logger, long used, long limit, string components);

    [LoggerMessage(401, LogLevel.Information, "Memory held for clients ({Used} bytes) fell below the low watermark ({LowWatermark} bytes): {Blocked} flow-controlled publishers resume")]
    public static partial void BelowLowWatermark(ILogger logger, long used, long lowWatermark, int blocked);

    [LoggerMessage(402, LogLevel.Information, "Memory above its limit: {Bytes} bytes of topic replay history given up (resumed subscriptions are told recovered:false)")]
    public static partial void Reclaimed(ILogger logger, long bytes);

    [LoggerMessage(406, LogLevel.Information, "Idle compaction after {QuietMs} ms without frames: {Returned} bytes given back (working set {WorkingSetBefore} -> {WorkingSetAfter}, GC committed {CommittedBefore} -> {CommittedAfter}, heap holes {FragmentedBefore} -> {FragmentedAfter}); pause {PauseMs:F1} ms")]
    public static partial void IdleCompacted(ILogger logger, long quietMs, long returned, long workingSetBefore, long workingSetAfter, long committedBefore, long committedAfter, long fragmentedBefore, long fragmentedAfter, double pauseMs);

    [LoggerMessage(407, LogLevel.Error, "Idle compaction failed")]
    public static partial void IdleCompactionFailed(ILogger logger, Exception exception);

    [LoggerMessage(408, LogLevel.Debug, "Idle compaction not needed after {QuietMs} ms without frames: the GC keeps {ReclaimableBytes} of its {CommittedBytes} committed bytes beyond the live objects ({FragmentedBytes} in holes); at least {MinReclaimableBytes}, and a tenth, wanted")]
    public static partial void IdleCompactionSkipped(ILogger logger, long quietMs, long reclaimableBytes, long committedBytes, long fragmentedBytes, long minReclaimableBytes);
}
